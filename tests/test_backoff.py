"""The one wait/backoff helper (pgmilib/conn/backoff.py) and the loops that use it.

Pure schedules are checked against the formulas each loop used before it had the helper; the
pause is checked against the run's deadline and cancel. No assertion on how long anything took:
a pause that would not end is caught by a generous join limit instead.
"""

from __future__ import annotations

import io
import random
import threading

import pg8000.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgmilib.conn.backoff import Backoff, pause
from pgmilib.conn.deadline import Deadline
from pgmilib.errors import Interrupted

HOUR = 3600.0
unit_floats = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


# ---- schedules --------------------------------------------------------------------------------


def test_delay_grows_by_the_factor_up_to_the_cap():
    schedule = Backoff(first=0.5, factor=2.0, cap=3.0)
    assert [schedule.delay(i) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert Backoff(first=0.2).delay(3) == pytest.approx(1.6)  # no cap, no jitter
    assert Backoff(first=0.1, cap=60.0).delay(10_000) == 60.0  # 2.0 ** 10000 overflows a float


@given(index=st.integers(min_value=0, max_value=40), r=unit_floats)
def test_jitter_stays_within_its_fraction(index, r):
    schedule = Backoff(first=0.1, factor=2.0, cap=60.0, jitter=0.1)
    nominal = min(0.1 * 2 ** index, 60.0)
    assert nominal * 0.9 - 1e-12 <= schedule.delay(index, lambda: r) <= nominal * 1.1 + 1e-12


@given(index=st.integers(min_value=0, max_value=30), r=unit_floats)
def test_the_connection_retry_keeps_its_formula(index, r):
    from pgmilib.conn.connect import retry_delay

    before = int(min(100 * (2 ** index), 60_000) * (1 + 0.1 * (2 * r - 1))) / 1000.0  # the original's formula
    fixed = random.Random()
    fixed.random = lambda: r  # type: ignore[method-assign]
    assert retry_delay(index, fixed) == pytest.approx(before, abs=0.0011)
    assert retry_delay(index, fixed) * 1000 == pytest.approx(round(retry_delay(index, fixed) * 1000))  # whole ms


@given(attempt=st.integers(min_value=1, max_value=30), r=unit_floats)
def test_the_head_retry_keeps_its_formula(attempt, r):
    from pgmilib.deploy.retry import backoff

    assert backoff(attempt, lambda: r) == pytest.approx(min(0.5 * 2 ** (attempt - 1), 10.0) * (0.5 + r))


def test_the_lock_poll_keeps_its_pauses():
    from pgmilib.deploy.lock import POLL_BACKOFF

    before, interval = [], 0.2
    for _ in range(20):
        before.append(interval)
        interval = min(interval * 1.25, 2.0)
    assert [POLL_BACKOFF.delay(i) for i in range(20)] == pytest.approx(before)


# ---- the pause ----------------------------------------------------------------------------------


def _in_thread(target) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as error:  # noqa: BLE001 -- handed to the test's assertion
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_pause_that_runs_its_course():
    assert pause(0.01) is True
    assert pause(0.01, Deadline(None)) is True
    assert pause(0.01, Deadline(HOUR)) is True
    assert pause(-1.0, Deadline(None)) is True  # a negative pause is no pause


def test_a_cancel_ends_a_pause_at_once_and_every_later_one():
    deadline = Deadline(None)
    thread, outcome = _in_thread(lambda: pause(HOUR, deadline))
    while not deadline._waits and thread.is_alive():  # the pause has registered with the deadline
        threading.Event().wait(0.01)
    deadline.cancel()
    thread.join(30)
    assert not thread.is_alive() and outcome == [False]
    assert pause(HOUR, deadline) is False  # already cancelled: no wait at all


def test_the_deadline_ends_a_longer_pause():
    assert pause(HOUR, Deadline(0.05)) is False
    expired = Deadline(0.0)
    assert pause(HOUR, expired) is False


# ---- the loops, cut short by a cancel --------------------------------------------------------------


class _Guard:
    """The watchdog's side the loops use: its deadline, and check() raising once cancelled."""

    def __init__(self) -> None:
        self.deadline = Deadline(None)

    def check(self) -> None:
        if self.deadline.cancelled:
            raise Interrupted("interrupted")


def _cancel_when_waiting(guard: _Guard, thread: threading.Thread) -> None:
    while not guard.deadline._waits and thread.is_alive():
        threading.Event().wait(0.01)
    guard.deadline.cancel()
    thread.join(30)


def test_a_cancel_ends_the_head_retry_wait(monkeypatch):
    from pgmilib.deploy.retry import HeadRetry
    from pgmilib.output import Output

    class Locked:
        transaction_status = "I"

        def run(self, sql: str):
            raise pg8000.exceptions.DatabaseError({"S": "ERROR", "C": "55P03", "M": "lock not available"})

    monkeypatch.setattr("pgmilib.deploy.retry.backoff", lambda attempt: HOUR)
    guard = _Guard()
    runner = HeadRetry(Locked(), 3, Output(stderr=io.StringIO()), guard.check, deadline=guard.deadline)
    thread, outcome = _in_thread(lambda: runner.run("HEAD"))
    _cancel_when_waiting(guard, thread)
    assert not thread.is_alive() and len(outcome) == 1 and isinstance(outcome[0], Interrupted)


def test_a_cancel_ends_the_lock_poll():
    from pgmilib.deploy.lock import _poll

    guard = _Guard()
    looks: list[int] = []
    thread, outcome = _in_thread(lambda: _poll(lambda: looks.append(1) and False, HOUR, guard))
    _cancel_when_waiting(guard, thread)
    assert not thread.is_alive() and len(outcome) == 1 and isinstance(outcome[0], Interrupted)


def test_the_lock_poll_gives_up_when_its_wait_is_over():
    from pgmilib.deploy.lock import _poll

    looks: list[int] = []
    assert _poll(lambda: looks.append(1) and False, 0.05, None) is False
    assert _poll(lambda: looks.append(1) or True, HOUR, _Guard()) is True
    assert looks  # it looked at least once before giving up or succeeding


def test_the_drop_retry_keeps_its_schedule():
    from pgmilib.deploy.dbadmin import DROP_BACKOFF

    assert [DROP_BACKOFF.delay(i) for i in (0, 1)] == [0.2, 0.4]  # as `0.2 * (attempt + 1)` waited


def test_a_jittered_delay_without_a_source_uses_random_and_spreads():
    """No `rng`: the module's random source (imported on the first jittered delay only), so
    contending clients still spread out; and retry_delay without one is jittered the same way."""
    from pgmilib.conn.connect import retry_delay

    schedule = Backoff(first=1.0, jitter=0.5)
    delays = {schedule.delay(0) for _ in range(50)}
    assert len(delays) > 10 and all(0.5 <= d <= 1.5 for d in delays)
    retries = {retry_delay(3) for _ in range(50)}
    assert len(retries) > 5 and all(0.72 - 0.001 <= d <= 0.88 + 0.001 for d in retries)
    assert Backoff(first=1.0).delay(0) == 1.0  # no jitter: no random number drawn at all
