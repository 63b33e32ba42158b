"""Waiting between tries: one delay schedule and one pause that the run's deadline or a cancel cuts short.

Every loop that tries again (a connection attempt, the atomic head after a lock timeout, a
poll for another deploy's lock, a cloud metadata endpoint) waits the same way: `Backoff`
says how long (grows by a factor, capped, optionally jittered so contending clients spread
out) and `pause()` waits that long inside `Deadline.wait` (pgmilib/conn/deadline.py), so the
run's `--timeout` and a cancel (Ctrl-C, an MCP cancel) end the wait at once instead of after
it. What a cut-short pause means (exit 16, 130, a busy lock) stays the caller's decision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pgmilib.conn.deadline import TIMED_OUT, Deadline
from pgmilib.records import record


@record(frozen=True)
class Backoff:
    """Delay `index` (0-based) = min(first x factor^index, cap) x (1 +- jitter), in seconds."""

    first: float
    factor: float = 2.0
    cap: float = float("inf")
    jitter: float = 0.0  # a fraction: 0.1 spreads each delay over +-10 %

    def delay(self, index: int, rng: Callable[[], float] | None = None) -> float:
        """The wait before try `index + 1`; `rng` returns a uniform number in [0, 1) (default
        `random.random`, imported only for a jittered delay: a run that never retries never loads it)."""
        try:
            grown = min(self.first * self.factor ** index, self.cap)
        except OverflowError:  # a factor^index beyond a float is past any cap
            grown = self.cap
        if not self.jitter:
            return grown
        if rng is None:
            import random

            rng = random.random
        return grown * (1 + self.jitter * (2 * rng() - 1))


def pause(seconds: float, deadline: Deadline | None = None) -> bool:
    """Wait `seconds`; True if the whole pause passed.

    False when the deadline is nearer than `seconds` (the pause ends when it passes) or the run
    was cancelled (at once, also when it already was): the caller then reports the deadline or
    the cancel. Without a deadline this is `time.sleep`.
    """
    if deadline is None:
        time.sleep(max(0.0, seconds))
        return True
    woken = threading.Event()
    with deadline.wait(woken.set, max(0.0, seconds)) as wait:
        woken.wait()
    return wait.reason == TIMED_OUT and not wait.by_deadline
