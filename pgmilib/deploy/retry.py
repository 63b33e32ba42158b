"""`--retry-lock-timeout N`: run the atomic head again after a lock timeout or a deadlock.

Opt-in because it changes what the user's script experiences: its head runs more than
once. It is safe only for the head: unit 0 is one transaction, a failure in it rolls it
back completely and nothing after it has run yet. Tail units are never retried (earlier
ones have committed). Retried SQLSTATEs: 55P03 lock_not_available (`lock_timeout`,
`NOWAIT`) and 40P01 deadlock_detected. The delay grows (0.5 s, 1 s, 2 s ... capped at
10 s) with +-50 % jitter, so several deployers contending for one lock spread out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from pgmilib.conn.backoff import Backoff, pause
from pgmilib.conn.deadline import Deadline
from pgmilib.deploy.execute import SessionLayer, UnitRunner
from pgmilib.errors import PgDiagnostics
from pgmilib.output import Output

RETRIED_SQLSTATES = {"55P03": "lock not available", "40P01": "deadlock detected"}
BASE_DELAY = 0.5
MAX_DELAY = 10.0


HEAD_BACKOFF = Backoff(first=BASE_DELAY, factor=2.0, cap=MAX_DELAY, jitter=0.5)


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry `attempt` (1-based): exponential, capped, +-50 % jitter."""
    return HEAD_BACKOFF.delay(attempt - 1, rng)


class HeadRetry(SessionLayer):
    """The session connection as execute.run_units sees it, retrying the first unit (the head).

    `check` is called around each wait (the run's watchdog: it raises for a cancel or an
    expired deadline), and `deadline` cuts the wait short for either; `on_retry(n)` records
    how many retries happened.
    """

    def __init__(self, conn: UnitRunner, retries: int, out: Output, check: Callable[[], None],
                 on_retry: Callable[[int], None] = lambda n: None, deadline: Deadline | None = None) -> None:
        super().__init__(conn)
        self._deadline = deadline  # the run's (the watchdog's): its cancel or expiry ends a wait
        self._retries = retries
        self._out = out
        self._check = check
        self._on_retry = on_retry
        self._head_done = False

    def run(self, sql: str, **params: Any) -> Any:
        if self._head_done:
            return self._conn.run(sql, **params)
        self._head_done = True
        attempt = 0
        while True:
            try:
                return self._conn.run(sql, **params)
            except Exception as exc:
                diag = PgDiagnostics.from_exception(exc)
                if diag is None or diag.sqlstate not in RETRIED_SQLSTATES or attempt >= self._retries:
                    raise
                attempt += 1
                self._on_retry(attempt)
                self._reset()
                delay = backoff(attempt)
                self._out.info(f"pgmi: the atomic head failed: {diag.message} (SQLSTATE {diag.sqlstate}); "
                               f"retry {attempt} of {self._retries} in {delay:.1f}s")
                self._sleep(delay)

    def _reset(self) -> None:
        """A head with its own BEGIN leaves the session in a failed transaction: end it."""
        from pgmilib.conn.wire import roll_back_open

        roll_back_open(self._conn)

    def _sleep(self, seconds: float) -> None:
        """A cancel or the deadline ends the wait at once; `check` then raises for it."""
        self._check()
        pause(seconds, self._deadline)
        self._check()
