"""The deploy lock and the overwrite guards, exactly as reported, against the real test server.

`--overwrite` never drops a database under a running deploy (the holder's pid is named), the
maintenance and template databases are refused with their hint, names PostgreSQL cannot hold are
refused before anything runs, and the forced countdown can be aborted.
"""

from __future__ import annotations

import io
import threading

import pytest

from pgmilib.cli.approvers import ForcedApprover, InteractiveApprover, choose_approver
from pgmilib.deploy.dbadmin import (
    check_database_name,
    check_overwrite_allowed,
    quote_literal,
)
from pgmilib.deploy.lock import acquire, release, wait_for_no_deploy
from pgmilib.errors import ConcurrentDeploy, ConfigError, Exit, Interrupted, exit_code
from pgmilib.output import Output
from pgmilib.resources import read_sql


def _out() -> Output:
    return Output(stdout=io.StringIO(), stderr=io.StringIO())


def _session(pg, database: str):
    from pgmilib.conn.wire import LiveConnection

    return LiveConnection(**pg.conn_kwargs(database))


def test_overwrite_is_refused_while_a_deploy_holds_the_lock(pg, conn, fresh_db):
    holder = _session(pg, fresh_db)
    try:
        acquire(holder, 0, _out())
        pid = holder.run("SELECT pg_backend_pid()")[0][0]
        out = _out()
        with pytest.raises(ConcurrentDeploy) as info:
            wait_for_no_deploy(conn, fresh_db, 0, out)
        assert str(info.value) == (f'concurrent deployment in progress: another pgmi deployment is running against '
                                   f'"{fresh_db}" (pid {pid}); --overwrite will not drop it underneath')
        assert info.value.details == {"lockHolders": [{"pid": pid}]}
        assert exit_code(info.value) == Exit.CONCURRENT and out.stderr.getvalue() == ""
        with pytest.raises(ConcurrentDeploy):  # a wait that runs out says so, then refuses the same way
            wait_for_no_deploy(conn, fresh_db, 0.3, out)
        assert out.stderr.getvalue() == f'Waiting up to 300ms for another deployment of "{fresh_db}"\n'
    finally:
        release(holder)
    wait_for_no_deploy(conn, fresh_db, 0, _out())  # released: nothing to wait for


def test_overwrite_waits_until_the_holder_is_done(pg, conn, fresh_db):
    holder = _session(pg, fresh_db)
    acquire(holder, 0, _out())
    timer = threading.Timer(0.4, release, args=(holder,))
    timer.start()
    out = _out()
    try:
        wait_for_no_deploy(conn, fresh_db, 5, out)
    finally:
        timer.join()
    assert out.stderr.getvalue() == f'Waiting up to 5s for another deployment of "{fresh_db}"\n'
    out = _out()
    wait_for_no_deploy(conn, fresh_db, 5, out)  # no holder: no waiting message
    assert out.stderr.getvalue() == ""


def test_busy_lock_names_the_holder(pg, fresh_db):
    holder = _session(pg, fresh_db)
    waiter = _session(pg, fresh_db)
    try:
        holder.run("SET application_name = 'pgmi-holder'")
        acquire(holder, 0, _out())
        pid = holder.run("SELECT pg_backend_pid()")[0][0]
        out = _out()
        with pytest.raises(ConcurrentDeploy) as info:
            acquire(waiter, 0, out)
        text = str(info.value)
        assert text.startswith(f'concurrent deployment in progress: another pgmi deployment is already running '
                               f'against "{fresh_db}" (held by pid {pid}, application "pgmi-holder", user ')
        assert text.endswith(" ago)")
        assert [h["pid"] for h in info.value.details["lockHolders"]] == [pid]
        assert out.stderr.getvalue() == ""
        verbose = Output(stdout=io.StringIO(), stderr=io.StringIO(), verbose=True)
        threading.Timer(0.3, release, args=(holder,)).start()
        acquire(waiter, 5, verbose)
        assert verbose.stderr.getvalue() == (f'Waiting up to 5s for another deployment of "{fresh_db}"\n'
                                             f'[VERBOSE] Acquired the deploy lock of "{fresh_db}"\n')
    finally:
        release(holder)
        release(waiter)


def test_release_frees_the_lock_and_rolls_back(pg, conn, fresh_db):
    session = _session(pg, fresh_db)
    acquire(session, 0, _out())
    session.run("BEGIN")
    session.run("CREATE TABLE half_done (x int)")
    release(session)
    wait_for_no_deploy(conn, fresh_db, 0, _out())
    other = _session(pg, fresh_db)
    try:
        assert other.run("SELECT to_regclass('half_done') IS NULL") == [[True]]
    finally:
        release(other)
    release(None)


# ---- the overwrite guards -----------------------------------------------------------------------


@pytest.mark.parametrize(("target", "maintenance"), [("postgres", ""), ("POSTGRES", None), ("admin", "Admin")])
def test_maintenance_database_is_refused_with_its_hint(target, maintenance):
    with pytest.raises(ConfigError) as info:
        check_overwrite_allowed(target, maintenance)
    assert str(info.value) == f'invalid configuration: cannot overwrite maintenance database "{target}"'
    assert info.value.trailer == ["Hint: pick another target database with -d; --overwrite drops and recreates it."]


def test_template_databases_are_refused():
    for name in ("template0", "Template1"):
        with pytest.raises(ConfigError) as info:
            check_overwrite_allowed(name, "postgres")
        assert str(info.value) == (f'invalid configuration: cannot drop template database "{name}" '
                                   "(template0/template1 are protected by PostgreSQL)")
    check_overwrite_allowed("postgres", "other")  # postgres is only special as the maintenance database


def test_names_postgresql_cannot_hold_are_refused():
    with pytest.raises(ConfigError) as info:
        check_database_name("a\x00b", "-d")
    assert str(info.value) == 'invalid configuration: -d "a\\u0000b" contains a NUL character'
    with pytest.raises(ConfigError) as info:
        check_database_name("caf\udce9", "-d")
    assert str(info.value) == 'invalid configuration: -d "caf\\\\udce9" is not valid UTF-8'
    with pytest.raises(ConfigError) as info:
        check_database_name("x\udce9\x00")
    assert str(info.value) == 'invalid configuration: database name "x\\\\udce9\\u0000" contains a NUL character'
    check_database_name("café \"odd\" name")


def test_quote_literal_drops_nul_and_doubles_quotes():
    assert quote_literal("it's\x00ok") == "'it''sok'"


def test_forced_countdown_and_abort(monkeypatch):
    monkeypatch.setenv("PGMI_NO_BANNER", "1")
    out = _out()

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    with pytest.raises(Interrupted) as info:
        ForcedApprover(out, interactive=True, sleep=ctrl_c).approve("Orders")
    assert str(info.value) == 'interrupted: overwrite of "Orders" aborted'
    assert out.stderr.getvalue() == '\r--force: DROP DATABASE "Orders" in 5s. Ctrl-C aborts.\n'
    monkeypatch.delenv("PGMI_NO_BANNER")
    out = _out()
    ForcedApprover(out, interactive=True, sleep=lambda s: None).approve("Orders")
    banner = out.stderr.getvalue().split("\r")[0]
    assert banner.startswith("\n          _____\n") and banner.endswith('every object and row in it will be deleted\n\n')
    assert 'DROP DATABASE "Orders"\n' in banner
    out = _out()
    ForcedApprover(out, interactive=False, sleep=ctrl_c).approve("Orders")
    assert out.stderr.getvalue() == '--force: dropping and recreating "Orders"\n'


def test_choose_approver_passes_its_arguments_on():
    out, stdin = _out(), io.StringIO("Orders\n")
    forced = choose_approver(True, True, out)
    assert isinstance(forced, ForcedApprover) and forced.interactive is True and forced.out is out
    assert choose_approver(True, False, out).interactive is False
    asking = choose_approver(False, True, out, stdin)
    assert isinstance(asking, InteractiveApprover) and asking.out is out and asking.stdin is stdin
    asking.approve("Orders")


class _KeptOpen:
    """A session whose close() is held back, so what release() did before closing can be seen."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def close(self) -> None:
        pass


def test_release_unlocks_and_rolls_back_before_closing(pg, conn, fresh_db):
    inner = _session(pg, fresh_db)
    try:
        acquire(inner, 0, _out())
        inner.run("BEGIN")
        inner.run("CREATE TABLE half_done (x int)")
        release(_KeptOpen(inner))
        assert inner.transaction_status == "I"
        assert inner.run("SELECT to_regclass('half_done') IS NULL") == [[True]]
        wait_for_no_deploy(conn, fresh_db, 0, _out())  # unlocked while the session is still open
    finally:
        inner.close()


def test_release_closes_the_session_and_never_raises(pg, conn, fresh_db):
    session = _session(pg, fresh_db)
    release(session)
    with pytest.raises(Exception):  # noqa: B017 -- closed: any use fails
        session.run("SELECT 1")
    dead = _session(pg, fresh_db)
    acquire(dead, 0, _out())
    dead.run("BEGIN")
    pid = dead.run("SELECT pg_backend_pid()")[0][0]
    conn.run("SELECT pg_terminate_backend(:p)", p=pid)
    release(dead)  # the server is gone: nothing to raise


class _Recorded(_KeptOpen):
    """A live session that records the socket timeouts release() sets (close held back)."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.timeouts: list[float] = []

    def set_socket_timeout(self, seconds) -> None:
        self.timeouts.append(seconds)
        self.inner.set_socket_timeout(seconds)


def test_release_bounds_each_clean_up_step_by_the_budget_left(pg, conn, fresh_db):
    inner = _session(pg, fresh_db)
    try:
        acquire(inner, 0, _out())
        inner.run("BEGIN")
        session = _Recorded(inner)
        release(session)
        # before the ROLLBACK and before the unlock: what is left of the 5 s budget, never more
        assert len(session.timeouts) == 2
        assert all(2.5 < seconds <= 5.0 for seconds in session.timeouts), session.timeouts
        assert session.timeouts[1] <= session.timeouts[0]
        assert inner.transaction_status == "I"
        wait_for_no_deploy(conn, fresh_db, 0, _out())
    finally:
        inner.close()


def test_release_of_a_plain_pg8000_session_unlocks_without_a_stray_rollback(pg, conn, fresh_db):
    import pg8000.native

    inner = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        acquire(inner, 0, _out())
        inner.notices.clear()
        release(_KeptOpen(inner))  # no transaction status, no socket timeout: still unlocks
        wait_for_no_deploy(conn, fresh_db, 0, _out())
        # idle, so no ROLLBACK (PostgreSQL would warn "there is no transaction in progress")
        assert list(inner.notices) == []
    finally:
        inner.close()


class _Watchdog:
    """The run's watchdog as the lock wait sees it: `check()` and `deadline.remaining()`.

    The first check runs `on_first` (frees the lock, or cancels); more than `limit` checks means
    the wait did not end when it should have.
    """

    def __init__(self, on_first, limit: int = 6) -> None:
        from pgmilib.conn.deadline import Deadline

        self.deadline = Deadline(None)
        self.on_first = on_first
        self.limit = limit
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks == 1:
            self.on_first()
        assert self.checks <= self.limit, "the wait went on after the lock was free"


def test_lock_wait_ends_as_soon_as_the_holder_is_gone(pg, conn, fresh_db):
    holder = _session(pg, fresh_db)
    waiter = _session(pg, fresh_db)
    try:
        acquire(holder, 0, _out())
        watchdog = _Watchdog(lambda: release(holder))
        acquire(waiter, 60, _out(), watchdog)
        assert 1 <= watchdog.checks <= 3
        assert waiter.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == [[1]]
        release(waiter)
        holder = _session(pg, fresh_db)
        acquire(holder, 0, _out())
        watchdog = _Watchdog(lambda: release(holder))
        out = _out()
        wait_for_no_deploy(conn, fresh_db, 60, out, watchdog)
        assert 1 <= watchdog.checks <= 3
        assert out.stderr.getvalue() == f'Waiting up to 1m0s for another deployment of "{fresh_db}"\n'
    finally:
        release(holder)
        release(waiter)


def test_lock_wait_stops_when_the_run_is_cancelled(pg, conn, fresh_db):
    from pgmilib.deploy.watchdog import Watchdog
    from pgmilib.errors import Marker

    holder = _session(pg, fresh_db)
    waiter = _session(pg, fresh_db)
    try:
        acquire(holder, 0, _out())
        for wait in (lambda dog: acquire(waiter, 60, _out(), dog),
                     lambda dog: wait_for_no_deploy(conn, fresh_db, 60, _out(), dog)):
            watchdog = Watchdog()
            watchdog.trip(Marker.INTERRUPTED)
            with pytest.raises(Interrupted):  # exit 130, not a busy lock (15) after the whole wait
                wait(watchdog)
        assert holder.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == [[1]]
    finally:
        release(holder)
        release(waiter)


def test_several_lock_holders_are_all_named(pg, fresh_db):
    first, second, waiter = (_session(pg, fresh_db) for _ in range(3))
    try:
        key = first.run(read_sql("deploy_lock.sql"))[0][0]
        first.run("SELECT pg_advisory_unlock_all()")
        pids = []
        for session in (first, second):  # two shared holders of the deploy lock's key
            session.run("SELECT pg_advisory_lock_shared(CAST(:k AS bigint))", k=key)
            pids.append(session.run("SELECT pg_backend_pid()")[0][0])
        with pytest.raises(ConcurrentDeploy) as info:
            acquire(waiter, 0, _out())
        text = str(info.value)
        low, high = sorted(pids)
        assert f"(held by pid {low}, " in text and f"; pid {high}, " in text and text.endswith(" ago)")
        assert [h["pid"] for h in info.value.details["lockHolders"]] == [low, high]
        with pytest.raises(ConcurrentDeploy) as info:
            wait_for_no_deploy(waiter, fresh_db, 0, _out())
        named = str(info.value).split("(pid ")[1].split(")")[0]
        assert sorted(named.split(", ")) == sorted(map(str, pids))
    finally:
        for session in (first, second, waiter):
            release(session)


def test_a_short_lock_wait_says_so_then_reports_the_busy_lock(pg, fresh_db):
    holder = _session(pg, fresh_db)
    waiter = _session(pg, fresh_db)
    try:
        acquire(holder, 0, _out())
        out = _out()
        with pytest.raises(ConcurrentDeploy) as info:
            acquire(waiter, 0.3, out)
        assert out.stderr.getvalue() == f'Waiting up to 300ms for another deployment of "{fresh_db}"\n'
        assert " (held by pid " in str(info.value)
    finally:
        release(holder)
        release(waiter)


class _NoHolderReport(_KeptOpen):
    """A live session on which the lock-holder report fails (it is a courtesy: the refusal stays)."""

    def run(self, sql, **params):
        if "lock_key" in params:
            import pg8000.exceptions

            raise pg8000.exceptions.DatabaseError({"M": "permission denied for pg_locks"})
        return self.inner.run(sql, **params)


def test_busy_lock_without_a_holder_report(pg, fresh_db):
    holder = _session(pg, fresh_db)
    inner = _session(pg, fresh_db)
    try:
        acquire(holder, 0, _out())
        with pytest.raises(ConcurrentDeploy) as info:
            acquire(_NoHolderReport(inner), 0, _out())
        assert str(info.value) == ("concurrent deployment in progress: another pgmi deployment is already running "
                                   f'against "{fresh_db}"')
        assert info.value.details == {}
    finally:
        release(holder)
        inner.close()


class _Budget(_KeptOpen):
    """Records the socket timeouts without applying them; `fail` raises from the setter."""

    def __init__(self, inner, fail=None) -> None:
        super().__init__(inner)
        self.timeouts: list[float] = []
        self.fail = fail
        self.closed = False

    def set_socket_timeout(self, seconds) -> None:
        self.timeouts.append(seconds)
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed = True


def test_release_with_its_budget_spent_still_tries_briefly(pg, conn, fresh_db, monkeypatch):
    from pgmilib.deploy import lock

    inner = _session(pg, fresh_db)
    try:
        acquire(inner, 0, _out())
        monkeypatch.setattr(lock, "_RELEASE_BUDGET", -10.0)
        session = _Budget(inner)
        release(session)
        assert session.timeouts == [0.05, 0.05] and session.closed  # a floor of 50 ms, never zero or negative
        wait_for_no_deploy(conn, fresh_db, 0, _out())
    finally:
        inner.close()


@pytest.mark.parametrize("fail", [OSError("socket gone"), AttributeError("no socket")])
def test_release_closes_even_when_the_socket_cannot_be_bounded(pg, fresh_db, fail):
    inner = _session(pg, fresh_db)
    try:
        session = _Budget(inner, fail)
        release(session)  # never raises
        assert len(session.timeouts) == 1 and 2.5 < session.timeouts[0] <= 5.0
        assert session.closed
    finally:
        inner.close()
