"""One clock for a whole run, and the network waits it may cut short.

`Deadline` is started by the deploy's watchdog (`--timeout`) and read by every network
wait of the run: PostgreSQL connect attempts, the cloud token endpoints, the statement
timer. A socket timeout alone cannot bound a wait: it limits each single read, so a peer
that answers one byte per second never trips it. A wait therefore runs inside
`deadline.wait(abort, seconds)`: `abort` (shut the socket down, so the blocked call returns
at once) runs when the wait's own limit passes, when the run's deadline passes, or when the
run is cancelled (`cancel()`: Ctrl-C, an MCP cancel), whichever comes first, and the wait
records which, so the message can tell the truth ("timed out after 3.0s" vs "interrupted").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

TIMED_OUT = "timed out"
CANCELLED = "cancelled"
#: How long a cancelled statement may take to end before its socket is shut down: the server
#: gets the chance to answer the CancelRequest with its own error first.
CANCEL_GRACE_SECONDS = 5.0


class Deadline:
    """One monotonic deadline for a whole run; `None` seconds means no limit."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds
        self.cancelled = False
        self._lock = threading.Lock()
        self._waits: set[Wait] = set()

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None when there is no deadline."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def cap(self, seconds: float | None) -> float | None:
        """`seconds` limited by what is left; None only if both are unlimited."""
        left = self.remaining()
        if left is None:
            return seconds
        return left if seconds is None else min(seconds, left)

    def cancel(self) -> bool:
        """Cut every wait in flight short, and every later one at its start; True if one was in flight."""
        with self._lock:
            self.cancelled = True
            waits = list(self._waits)
        for wait in waits:
            wait.fire(CANCELLED)
        return bool(waits)

    @contextlib.contextmanager
    def wait(self, abort: Callable[[], None], seconds: float | None = None) -> Iterator[Wait]:
        """A bounded wait: `abort` runs once when `seconds` (capped by the deadline) pass or on cancel()."""
        left = self.remaining()
        wait = Wait(abort, self.cap(seconds), by_deadline=left is not None and (seconds is None or left < seconds))
        with self._lock:
            self._waits.add(wait)
            cancelled = self.cancelled
        try:
            if cancelled:
                wait.fire(CANCELLED)
            else:
                wait.start()
            yield wait
        finally:
            wait.finish()
            with self._lock:
                self._waits.discard(wait)


class Wait:
    """One network wait under a `Deadline` (see the module docstring)."""

    def __init__(self, abort: Callable[[], None], limit: float | None, *, by_deadline: bool) -> None:
        self.limit = limit  # seconds this wait may take; None: unbounded (only a cancel ends it early)
        self.by_deadline = by_deadline  # the run's deadline, not the wait's own limit, set `limit`
        self.reason: str | None = None  # TIMED_OUT or CANCELLED once `abort` has run
        self.started = time.monotonic()
        self._abort = abort
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self.limit is None:
            return
        self._timer = threading.Timer(max(0.0, self.limit), self.fire, args=(TIMED_OUT,))
        self._timer.daemon = True
        self._timer.start()

    def fire(self, reason: str) -> None:
        with self._lock:
            if self._done or self.reason is not None:
                return
            self.reason = reason
        self.again()

    def again(self) -> None:
        """Abort once more if the wait was cut short: a socket created after the first abort."""
        if self.reason is None:
            return
        try:
            self._abort()
        except OSError:  # already closed: nothing is blocked on it
            pass

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def finish(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
