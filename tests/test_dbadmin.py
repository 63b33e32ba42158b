"""Database create/overwrite, approvers and the deploy lock, against the real test server."""

from __future__ import annotations

import io
import threading
import time
import uuid

import pytest

from pgmilib.cli.approvers import ForcedApprover, InteractiveApprover, choose_approver
from pgmilib.deploy import dbadmin
from pgmilib.deploy.dbadmin import (
    RefusingApprover,
    check_overwrite_allowed,
    ensure_database,
    overwrite_database,
)
from pgmilib.deploy.lock import acquire, release
from pgmilib.errors import (
    ApprovalDenied,
    ConcurrentDeploy,
    ConfigError,
    ConnectionFailed,
    Exit,
    PgDiagnostics,
    exit_code,
)
from pgmilib.output import Output


def make_out() -> Output:
    return Output(stdout=io.StringIO(), stderr=io.StringIO())


class Connector:
    """database name -> pg8000 connection; records every database it was asked for."""

    def __init__(self, pg, **overrides) -> None:
        self.pg = pg
        self.overrides = overrides
        self.calls: list[str] = []

    def __call__(self, database: str):
        import pg8000.exceptions
        import pg8000.native

        self.calls.append(database)
        try:
            return pg8000.native.Connection(**{**self.pg.conn_kwargs(database), **self.overrides})
        except pg8000.exceptions.Error as error:
            # pg8000 closes the socket after a startup error and may raise "network error"
            # from that close; the server's ErrorResponse is then the exception's context.
            cause: BaseException | None = error
            while cause is not None and PgDiagnostics.from_exception(cause) is None:
                cause = cause.__context__
            diag = PgDiagnostics.from_exception(cause) if cause is not None else None
            raise ConnectionFailed(f"cannot connect to {database}", pg=diag) from error


class NoConnect:
    def __call__(self, database: str):
        raise AssertionError(f"must not connect (asked for {database})")


class ExplodingStdin:
    def read(self, *args):
        raise AssertionError("stdin must not be read")

    readline = read

    def isatty(self):
        raise AssertionError("stdin must not be inspected")


class NeverApprove:
    def approve(self, database: str) -> None:
        raise AssertionError("approval must not be requested")


@pytest.fixture
def scratch(pg, conn):
    """A unique database name (not created) and a list for extra names; all dropped afterwards."""
    names = ["t_" + uuid.uuid4().hex[:12]]
    yield names
    for name in names:
        conn.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d", d=name)
        conn.run(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def role(conn):
    name = "r_" + uuid.uuid4().hex[:10]
    conn.run(f'CREATE ROLE "{name}" NOLOGIN')
    yield name
    conn.run(f'DROP ROLE IF EXISTS "{name}"')


def db_exists(conn, name: str) -> bool:
    return bool(conn.run("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = :d)", d=name)[0][0])


def db_facts(conn, name: str) -> dict:
    row = conn.run(
        "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, pg_get_userbyid(d.datdba), "
        "d.datconnlimit, COALESCE((SELECT setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid "
        "AND s.setrole = 0), '{}'), shobj_description(d.oid, 'pg_database') FROM pg_database d WHERE datname = :d",
        d=name)[0]
    keys = ("encoding", "collate", "ctype", "owner", "limit", "settings", "comment")
    return dict(zip(keys, row))


# ---- guards ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target, maintenance, fragment", [
    ("postgres", "postgres", 'cannot overwrite maintenance database "postgres"'),
    ("Admin", "admin", 'cannot overwrite maintenance database "Admin"'),
    ("template0", "postgres", 'cannot drop template database "template0"'),
    ("TEMPLATE1", "postgres", 'cannot drop template database "TEMPLATE1"'),
])
def test_overwrite_guards(target, maintenance, fragment):
    with pytest.raises(ConfigError) as caught:
        check_overwrite_allowed(target, maintenance)
    assert fragment in str(caught.value)
    assert exit_code(caught.value) == Exit.CONFIG
    with pytest.raises(ConfigError):  # refused before any connection
        overwrite_database(NoConnect(), target, maintenance, NeverApprove(), make_out())


def test_overwrite_guard_allows_ordinary_names():
    check_overwrite_allowed("app", "postgres")
    check_overwrite_allowed("template2", "postgres")


def test_quoting():
    assert dbadmin.quote_ident('we"ird') == '"we""ird"'  # a NUL is refused now (tests/test_hostile.py)
    assert dbadmin.quote_literal("it's") == "'it''s'"
    assert dbadmin.split_guc_list('"$user", public, "My ""S"", x"') == ["$user", "public", 'My "S", x']


# ---- ensure_database ----------------------------------------------------------------------------


def test_ensure_creates_missing_database(pg, conn, scratch):
    name = scratch[0]
    out = make_out()
    connect = Connector(pg)
    assert ensure_database(connect, name, "postgres", out) is True
    assert db_exists(conn, name)
    assert connect.calls == [name, "postgres"]
    assert f'Database "{name}" does not exist; creating' in out.stderr.getvalue()
    assert out.stdout.getvalue() == ""


def test_open_target_reuses_the_probe_connection(pg, fresh_db):
    connect = Connector(pg)
    session = dbadmin.open_target(connect, fresh_db, "postgres", make_out())
    assert session.run("SELECT current_database()")[0][0] == fresh_db
    session.close()
    assert connect.calls == [fresh_db]  # one connection: the probe is the session


def test_open_target_creates_then_connects(pg, conn, scratch):
    name = scratch[0]
    connect = Connector(pg)
    session = dbadmin.open_target(connect, name, "postgres", make_out())
    assert session.run("SELECT current_database()")[0][0] == name
    session.close()
    assert connect.calls[-2:] == ["postgres", name]


def test_ensure_leaves_existing_database_alone(pg, fresh_db):
    import pg8000.native

    with_table = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    with_table.run("CREATE TABLE keep_me (id int)")
    with_table.close()
    out = make_out()
    connect = Connector(pg)
    assert ensure_database(connect, fresh_db, "postgres", out) is False
    assert connect.calls == [fresh_db]  # never touched the maintenance database
    assert out.stderr.getvalue() == ""
    check = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    assert check.run("SELECT to_regclass('keep_me') IS NOT NULL")[0][0] is True
    check.close()


def test_ensure_other_probe_failure_is_raised(pg, scratch):
    connect = Connector(pg, user="no_such_role_" + uuid.uuid4().hex[:6])
    with pytest.raises(ConnectionFailed) as caught:
        ensure_database(connect, scratch[0], "postgres", make_out())
    assert caught.value.pg.sqlstate != "3D000"
    assert connect.calls == [scratch[0]]


def test_lost_create_race_is_concurrent_deploy(conn, fresh_db):
    with pytest.raises(ConcurrentDeploy) as caught:
        dbadmin._run_create(conn, f'CREATE DATABASE "{fresh_db}"', fresh_db)
    assert exit_code(caught.value) == Exit.CONCURRENT
    assert str(caught.value) == ("concurrent deployment in progress: the database was created by another deploy "
                                 "while this one was starting")
    assert caught.value.pg is None  # no catalog index names leak through DETAIL


# ---- overwrite_database ------------------------------------------------------------------------


def test_overwrite_absent_database_creates_without_approval(pg, conn, scratch):
    out = make_out()
    overwrite_database(Connector(pg), scratch[0], "postgres", NeverApprove(), out)
    assert db_exists(conn, scratch[0])
    assert "does not exist; creating" in out.stderr.getvalue()


def test_overwrite_preserves_settings(pg, conn, role, scratch):  # role outlives the database
    import pg8000.native

    name = scratch[0]
    conn.run(f'CREATE DATABASE "{name}" OWNER "{role}" CONNECTION LIMIT 7')
    conn.run(f"ALTER DATABASE \"{name}\" SET work_mem = '8MB'")
    conn.run(f"ALTER DATABASE \"{name}\" SET search_path = \"$user\", public, \"My Schema\"")
    conn.run(f"COMMENT ON DATABASE \"{name}\" IS 'it''s the app'")
    session = pg8000.native.Connection(**pg.conn_kwargs(name))
    session.run("CREATE TABLE doomed (id int)")  # left open: overwrite must terminate it
    before = db_facts(conn, name)

    out = make_out()
    overwrite_database(Connector(pg), name, "postgres", ForcedApprover(out, interactive=False), out)

    after = db_facts(conn, name)
    assert after == before
    assert after["owner"] == role and after["limit"] == 7 and after["comment"] == "it's the app"
    assert sorted(after["settings"]) == sorted(before["settings"])
    check = pg8000.native.Connection(**pg.conn_kwargs(name))
    assert check.run("SELECT to_regclass('doomed') IS NULL")[0][0] is True
    assert check.run("SHOW search_path")[0][0] == '"$user", public, "My Schema"'
    assert check.run("SHOW work_mem")[0][0] == "8MB"
    check.close()
    text = out.stderr.getvalue()
    assert f'--force: dropping and recreating "{name}"' in text
    assert f'Recreated database "{name}"' in text


def test_overwrite_keeps_latin1_c_locale(pg, conn, scratch):
    name = scratch[0]
    conn.run(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
    template = db_facts(conn, "template1")
    assert template["encoding"] != "LATIN1"  # otherwise this test proves nothing
    out = make_out()
    overwrite_database(Connector(pg), name, "postgres", ForcedApprover(out, interactive=False), out)
    facts = db_facts(conn, name)
    assert (facts["encoding"], facts["collate"], facts["ctype"]) == ("LATIN1", "C", "C")


def test_overwrite_matching_template1_stays_on_template1(pg, conn, scratch):
    name = scratch[0]
    conn.run(f'CREATE DATABASE "{name}"')
    settings = dbadmin.capture_settings(conn, name)
    assert settings["differs"] is False  # no TEMPLATE template0 clause will be used
    assert "TEMPLATE" not in dbadmin._create_sql(name, settings)
    assert dbadmin.capture_settings(conn, "no_such_db_" + uuid.uuid4().hex[:6]) is None


def test_overwrite_keeps_icu_provider(pg, conn, scratch):
    import pg8000.exceptions

    name = scratch[0]
    template = conn.run("SELECT to_jsonb(d) ->> 'datlocprovider' FROM pg_database d WHERE datname = 'template1'")[0][0]
    if template is None:
        pytest.skip("server older than PostgreSQL 15: no locale providers")
    provider = "libc" if template == "i" else "icu"
    clause = "LOCALE_PROVIDER libc" if provider == "libc" else "LOCALE_PROVIDER icu ICU_LOCALE 'en'"
    try:
        conn.run(f"CREATE DATABASE \"{name}\" TEMPLATE template0 {clause}")
    except pg8000.exceptions.DatabaseError as error:
        pytest.skip(f"server cannot create a {provider} database: {error}")
    before = dbadmin.capture_settings(conn, name)
    assert before["differs"] is True
    out = make_out()
    overwrite_database(Connector(pg), name, "postgres", ForcedApprover(out, interactive=False), out)
    assert dbadmin.capture_settings(conn, name) == before


def test_refusing_approver_never_reads_stdin(pg, conn, fresh_db):
    out = make_out()
    approver = choose_approver(force=False, interactive=False, out=out, stdin=ExplodingStdin())
    assert isinstance(approver, RefusingApprover)
    with pytest.raises(ApprovalDenied) as caught:
        overwrite_database(Connector(pg), fresh_db, "postgres", approver, out)
    assert exit_code(caught.value) == Exit.APPROVAL_DENIED == 12
    assert str(caught.value) == (
        "approval denied: --overwrite must be confirmed at a terminal, and this is not one; "
        f'pass --force to drop and recreate "{fresh_db}" from a script or CI job')
    assert db_exists(conn, fresh_db)


# ---- approvers ----------------------------------------------------------------------------------


def test_choose_approver_table():
    out = make_out()
    assert isinstance(choose_approver(True, True, out), ForcedApprover)
    assert isinstance(choose_approver(True, False, out), ForcedApprover)
    assert isinstance(choose_approver(False, False, out), RefusingApprover)
    assert isinstance(choose_approver(False, True, out, stdin=io.StringIO()), InteractiveApprover)


def test_interactive_approver_match():
    out = make_out()
    InteractiveApprover(out, io.StringIO("  appdb \n")).approve("appdb")
    text = out.stderr.getvalue()
    assert 'WARNING: about to DROP and RECREATE database "appdb". This deletes all data.' in text
    assert "Type the database name to confirm: " in text
    assert text.endswith("Confirmed.\n")
    assert out.stdout.getvalue() == ""


def test_interactive_approver_mismatch_is_case_sensitive():
    out = make_out()
    with pytest.raises(ApprovalDenied) as caught:
        InteractiveApprover(out, io.StringIO("AppDB\n")).approve("appdb")
    assert exit_code(caught.value) == Exit.APPROVAL_DENIED
    assert '"AppDB" does not match "appdb". Cancelled.' in out.stderr.getvalue()


def test_interactive_approver_eof():
    out = make_out()
    with pytest.raises(ApprovalDenied):
        InteractiveApprover(out, io.StringIO("")).approve("appdb")
    assert "No input available. Use --force to bypass confirmation in non-interactive mode." in out.stderr.getvalue()


def test_forced_non_interactive_has_no_delay():
    out = make_out()
    sleeps: list[float] = []
    ForcedApprover(out, interactive=False, sleep=sleeps.append).approve("appdb")
    assert out.stderr.getvalue() == '--force: dropping and recreating "appdb"\n'
    assert sleeps == []


def test_forced_interactive_countdown(monkeypatch):
    monkeypatch.setenv("PGMI_NO_BANNER", "1")
    out = make_out()
    sleeps: list[float] = []
    ForcedApprover(out, interactive=True, sleep=sleeps.append).approve("appdb")
    text = out.stderr.getvalue()
    assert sleeps == [1, 1, 1, 1, 1]
    for left in range(5, 0, -1):
        assert f'\r--force: DROP DATABASE "appdb" in {left}s. Ctrl-C aborts.' in text
    assert '\r--force: DROP DATABASE "appdb" now.' in text and text.endswith("\n")
    assert "DANGER" not in text
    monkeypatch.delenv("PGMI_NO_BANNER")
    out = make_out()
    ForcedApprover(out, interactive=True, sleep=lambda s: None).approve("appdb")
    assert "DANGER: DESTRUCTIVE OPERATION" in out.stderr.getvalue()
    assert '"appdb"' in out.stderr.getvalue().split("\r")[0]


def test_forced_countdown_ctrl_c_aborts(monkeypatch):
    monkeypatch.setenv("PGMI_NO_BANNER", "1")

    def interrupt(seconds):
        raise KeyboardInterrupt

    with pytest.raises(Exception) as caught:
        ForcedApprover(make_out(), interactive=True, sleep=interrupt).approve("appdb")
    assert exit_code(caught.value) == Exit.INTERRUPTED


# ---- deploy lock ------------------------------------------------------------------------------------


def open_session(pg, database):
    """A session as the deploy uses it (lock.release relies on LiveConnection's transaction status)."""
    from pgmilib.conn.wire import LiveConnection

    return LiveConnection(**pg.conn_kwargs(database))


def test_second_session_is_refused_naming_the_holder(pg, fresh_db):
    holder = open_session(pg, fresh_db)
    other_lock = open_session(pg, fresh_db)
    waiter = open_session(pg, fresh_db)
    try:
        other_lock.run("SELECT pg_advisory_lock(42)")  # an unrelated advisory lock: must not be reported
        acquire(holder, 0, make_out())
        holder_pid = holder.run("SELECT pg_backend_pid()")[0][0]
        other_pid = other_lock.run("SELECT pg_backend_pid()")[0][0]
        started = time.monotonic()
        with pytest.raises(ConcurrentDeploy) as caught:
            acquire(waiter, 0, make_out())
        assert time.monotonic() - started < 1.0
        message = str(caught.value)
        assert message.startswith("concurrent deployment in progress: another pgmi deployment is already running "
                                  f'against "{fresh_db}"')
        assert f"pid {holder_pid}" in message and f"pid {other_pid}" not in message
        assert "since" in message
        assert exit_code(caught.value) == Exit.CONCURRENT
        assert [h["pid"] for h in caught.value.details["lockHolders"]] == [holder_pid]
    finally:
        for session in (holder, other_lock, waiter):
            release(session)


def test_different_databases_do_not_block_each_other(pg, fresh_db):
    first = open_session(pg, fresh_db)
    second = open_session(pg, "postgres")
    try:
        acquire(first, 0, make_out())
        acquire(second, 0, make_out())
    finally:
        release(first)
        release(second)


def test_waiter_gets_the_lock_when_holder_releases(pg, fresh_db):
    holder = open_session(pg, fresh_db)
    waiter = open_session(pg, fresh_db)
    acquire(holder, 0, make_out())
    timer = threading.Timer(0.5, release, args=(holder,))
    timer.start()
    out = make_out()
    try:
        started = time.monotonic()
        acquire(waiter, 1.5, out)
        assert 0.4 <= time.monotonic() - started < 1.5
        assert "Waiting up to 1.5s" in out.stderr.getvalue()
    finally:
        timer.join()
        release(waiter)


def test_wait_runs_out(pg, fresh_db):
    holder = open_session(pg, fresh_db)
    waiter = open_session(pg, fresh_db)
    try:
        acquire(holder, 0, make_out())
        started = time.monotonic()
        with pytest.raises(ConcurrentDeploy):
            acquire(waiter, 0.6, make_out())
        assert 0.55 <= time.monotonic() - started < 2.0
    finally:
        release(holder)
        release(waiter)


def test_release_after_aborted_transaction(pg, fresh_db):
    import pg8000.exceptions

    session = open_session(pg, fresh_db)
    acquire(session, 0, make_out())
    session.run("BEGIN")
    with pytest.raises(pg8000.exceptions.DatabaseError):
        session.run("SELECT 1/0")
    assert session._transaction_status == b"E"
    release(session)  # must not raise
    release(session)  # twice is harmless too
    release(None)
    again = open_session(pg, fresh_db)
    try:
        acquire(again, 0, make_out())  # immediately, no wait
    finally:
        release(again)


def test_release_idle_session_sends_no_rollback(pg, fresh_db):
    session = open_session(pg, fresh_db)
    acquire(session, 0, make_out())
    observer = open_session(pg, fresh_db)
    try:
        release(session)
        assert not any("no transaction" in str(n) for n in session.notices)
        acquire(observer, 0, make_out())
    finally:
        release(observer)


def test_release_leaves_the_exit_nothing_to_wait_for(pg, fresh_db):
    """Right before the goodbye the session holds no advisory lock and no longer waits for WAL
    flushes: the server's exit-time drop of the temp objects, which close() waits for, commits
    without one."""
    from pgmilib.conn.wire import LiveConnection

    seen = []

    class Peeking(LiveConnection):  # the real connection, read once more just before it closes
        def close(self) -> None:
            seen.append(self.run("SELECT current_setting('synchronous_commit'), count(*) FROM pg_locks "
                                 "WHERE locktype = 'advisory' AND pid = pg_backend_pid()")[0])
            super().close()

    session = Peeking(**pg.conn_kwargs(fresh_db))
    session.run("SET synchronous_commit = on")
    acquire(session, 0, make_out())
    session.run("SELECT pg_advisory_lock(42)")  # any other advisory lock goes too
    release(session)
    assert seen == [["off", 0]]


def test_an_identifier_with_a_nul_is_refused_naming_it():
    with pytest.raises(ConfigError) as caught:
        dbadmin.quote_ident("app\x00old")
    assert str(caught.value).endswith('identifier "app\\u0000old" contains a NUL character')
    assert exit_code(caught.value) == Exit.CONFIG
    assert dbadmin.quote_ident('a"b') == '"a""b"'


def test_without_an_approver_only_force_approves():
    out = Output(stdout=io.StringIO(), stderr=io.StringIO())
    assert isinstance(dbadmin.default_approver(True, out), dbadmin.AcceptingApprover)
    refusing = dbadmin.default_approver(False, out)
    assert isinstance(refusing, dbadmin.RefusingApprover)
    with pytest.raises(ApprovalDenied):
        refusing.approve("app")
