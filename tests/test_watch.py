"""The live watcher with real sessions: a blocker held idle in transaction, an index build, a long loop.

Each deploy runs in-process (`deploy()` on a worker thread) with shortened thresholds
(`WatchSettings`), and what the watcher says is collected from its sinks; the blocker is a
real second session of the test, terminated once the watcher has named it, after which the
deploy must finish and the database must hold its result.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
import uuid
from collections.abc import Callable

import pg8000.native
import pytest
from projects import EXECUTE_LOOP, query, write_project

from pgmilib.deploy import ConnectionFlags, DeployRequest, deploy
from pgmilib.observe.watch import WatchSettings
from pgmilib.output import Output

FAST = {"start_after": 0.2, "interval": 0.2, "lock_line_after": 0.5, "lock_line_every": 1.0, "unit_line_every": 0.6}


def _environ(pg) -> dict[str, str]:
    return {"HOME": "/nonexistent-home", "USER": "tester", **pg.env()}


class Collected:
    """A thread-safe list of what a sink received, with a wait for a matching item."""

    def __init__(self) -> None:
        self.items: list = []
        self._cond = threading.Condition()

    def __call__(self, item) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, match: Callable[[object], bool], timeout: float = 60) -> object:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [i for i in self.items if match(i)]
                if found:
                    return found[0]
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matched within {timeout}s; got {self.items[-5:]!r}")
                self._cond.wait(left)


class Run:
    """deploy() on a worker thread; `result()` joins it."""

    def __init__(self, request: DeployRequest, out: Output) -> None:
        self.value = None
        self.thread = threading.Thread(target=self._go, args=(request, out), daemon=True)
        self.thread.start()

    def _go(self, request: DeployRequest, out: Output) -> None:
        self.value = deploy(request, out)

    def result(self, timeout: float = 120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the deploy did not finish"
        return self.value


@pytest.fixture
def blocker(pg):
    """blocker(db, sql) -> pid of a session that ran `sql` inside BEGIN and stays idle in transaction."""
    sessions: list = []

    def hold(db: str, sql: str) -> int:
        conn = pg8000.native.Connection(**pg.conn_kwargs(db), application_name="blocker-app")
        sessions.append(conn)
        pid = conn.run("SELECT pg_backend_pid()")[0][0]
        conn.run("BEGIN")
        conn.run(sql)
        return pid

    yield hold
    for conn in sessions:
        with contextlib.suppress(Exception):  # terminated by the test: already gone
            conn.close()


def _terminate(pg, pid: int) -> None:
    query(pg, "postgres", "SELECT pg_terminate_backend(:pid)", pid=pid)


def _out() -> Output:
    return Output(stdout=io.StringIO(), stderr=io.StringIO())


def test_log_lines_name_the_blocker_and_the_deploy_succeeds_once_it_is_gone(pg, fresh_db, tmp_path, blocker):
    query(pg, fresh_db, "CREATE TABLE orders (id int)")
    pid = blocker(fresh_db, "UPDATE orders SET id = id\n  WHERE false")
    proj = write_project(tmp_path / "p", {}, "ALTER TABLE orders ADD COLUMN note text;\n")
    lines = Collected()
    out = _out()
    run = Run(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                            environ=_environ(pg), watch=WatchSettings(**FAST, lines=lines)), out)
    first = lines.wait_for(lambda line: f"pid {pid} " in line)
    assert first.startswith("pgmi: deploy.sql: waiting for a lock (AccessExclusiveLock on orders) held by ")
    assert f"pid {pid} (user " in first and "blocker-app, idle in transaction for " in first
    assert first.endswith(": UPDATE orders SET id = id) (for 0s so far)")  # the query's first line
    lines.wait_for(lambda line: line.startswith("pgmi: deploy.sql: still waiting for a lock"))
    _terminate(pg, pid)
    result = run.result()
    assert result.ok, result.error_text
    assert query(pg, fresh_db, "SELECT count(*) FROM information_schema.columns "
                               "WHERE table_name = 'orders' AND column_name = 'note'") == [[1]]
    assert "WARNING" not in out.stderr.getvalue()
    settled = len(lines.items)
    time.sleep(0.5)
    assert len(lines.items) == settled  # nothing is said once the deploy has returned


def test_status_sink_names_the_blocker_and_is_cleared_at_the_end(pg, fresh_db, tmp_path, blocker):
    query(pg, fresh_db, "CREATE TABLE accounts (id int)")
    pid = blocker(fresh_db, "LOCK TABLE accounts IN SHARE MODE")
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\nCOMMIT;\nINSERT INTO accounts VALUES (1);\n")
    shown = Collected()
    run = Run(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                            environ=_environ(pg), watch=WatchSettings(**FAST, status=shown)), _out())
    text = shown.wait_for(lambda s: isinstance(s, str) and f"pid {pid}" in s)
    assert " | deploy.sql unit 2/2 (line 3) | waiting for a lock held by pid " in text
    assert "(blocker-app, idle in transaction for " in text and "LOCK TABLE accounts IN SHARE MODE" in text
    _terminate(pg, pid)
    assert run.result().ok
    assert shown.items[-1] is None  # the status went away with the deploy
    assert query(pg, fresh_db, "SELECT count(*) FROM accounts") == [[1]]


def test_an_index_build_shows_its_phase(pg, fresh_db, tmp_path):
    query(pg, fresh_db, "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS word FROM generate_series(1, 300000) g")
    # The build is slowed down (1 ms for one row in 256, about 1.2 s in all) so that it is seen while it runs.
    proj = write_project(tmp_path / "p", {}, (
        "CREATE FUNCTION slow(t text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$\n"
        "BEGIN IF right(t, 2) = '00' THEN PERFORM pg_sleep(0.001); END IF; RETURN t; END $$;\n"
        "CREATE INDEX big_word ON big (slow(word));\n"))
    shown = Collected()
    run = Run(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                            environ=_environ(pg), timeout="0", watch=WatchSettings(**FAST, status=shown)), _out())
    text = shown.wait_for(lambda s: isinstance(s, str) and "CREATE INDEX on big: building index" in s)
    assert "%" in text or "tuples" in text  # a percentage of blocks or a count of tuples
    assert run.result().ok
    assert query(pg, fresh_db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'big_word'") == [[1]]


def test_a_long_loop_moves_the_unit_and_the_last_notice(pg, fresh_db, tmp_path):
    files = {f"schema/{n:04d}.sql": f"CREATE TABLE t{n} (id int);\n" for n in range(3000)}
    deploy_sql = EXECUTE_LOOP.replace("    EXECUTE f.content;", "    RAISE NOTICE 'applying %', f.path;\n"
                                      "    EXECUTE f.content; PERFORM pg_sleep(0.0005);")
    deploy_sql += "SELECT pg_sleep(0.6);\nSELECT count(*) FROM pg_class;\n"
    proj = write_project(tmp_path / "p", files, deploy_sql)
    shown = Collected()
    run = Run(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                            environ=_environ(pg), timeout="0", watch=WatchSettings(**FAST, status=shown)), _out())
    first = shown.wait_for(lambda s: isinstance(s, str) and "| applying ./schema/" in s)
    later = shown.wait_for(lambda s: isinstance(s, str) and "| applying ./schema/" in s and s.split("| applying ")[1]
                           != first.split("| applying ")[1])
    assert "| deploy.sql unit 1/3 (line 1) |" in later  # the loop is inside the head (BEGIN ... COMMIT)
    shown.wait_for(lambda s: isinstance(s, str) and "| deploy.sql unit 2/3 (line 11) |" in s)  # the sleep
    assert run.result().ok
    assert query(pg, fresh_db, "SELECT count(*) FROM pg_tables WHERE tablename ~ '^t[0-9]+$'") == [[3000]]


def test_a_long_unit_off_a_terminal_gets_a_line_with_its_notice(pg, fresh_db, tmp_path):
    proj = write_project(tmp_path / "p", {}, "DO $$ BEGIN RAISE NOTICE 'step one'; PERFORM pg_sleep(1.5); END $$;\n")
    lines = Collected()
    run = Run(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                            environ=_environ(pg), watch=WatchSettings(**FAST, lines=lines)), _out())
    line = lines.wait_for(lambda s: "running for" in s)
    assert line.startswith("pgmi: deploy.sql running for ") and line.endswith("(last notice: step one)")
    assert run.result().ok


def test_a_quick_deploy_never_opens_a_second_connection(pg, fresh_db, tmp_path):
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    shown = Collected()
    result = deploy(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                                  environ=_environ(pg), watch=WatchSettings(status=shown)), _out())
    assert result.ok
    assert shown.items in ([], [None])  # at most the final clear: nothing was ever shown


def test_no_second_connection_is_one_warning_and_the_deploy_goes_on(pg, fresh_db, tmp_path):
    tag = "limited_" + uuid.uuid4().hex[:8]
    query(pg, "postgres", f"CREATE ROLE {tag} LOGIN CONNECTION LIMIT 1")
    query(pg, "postgres", f'GRANT ALL ON DATABASE "{fresh_db}" TO {tag}')
    try:
        proj = write_project(tmp_path / "p", {}, "DO $$ BEGIN RAISE NOTICE 'slow'; PERFORM pg_sleep(1); END $$;\n")
        out = _out()
        environ = {**_environ(pg), "PGUSER": tag}
        shown = Collected()
        result = deploy(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=fresh_db),
                                      environ=environ, watch=WatchSettings(**FAST, status=shown)), out)
        assert result.ok, result.error_text
        warnings = [line for line in out.stderr.getvalue().splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1 and "a second connection to the server failed" in warnings[0]
        assert "too many connections" in warnings[0]
        assert any(isinstance(s, str) and s.endswith("| slow") for s in shown.items)  # still the deploy's own view
    finally:
        query(pg, fresh_db, f"DROP OWNED BY {tag}")  # the deploy's objects, and the grant
        query(pg, "postgres", f"DROP ROLE {tag}")


class RecordingOutput(Output):
    """An Output on a pretend terminal that records every status block it is asked to show."""

    def __init__(self) -> None:
        super().__init__(stdout=io.StringIO(), stderr=io.StringIO())
        self.live_status = True
        self.blocks = Collected()

    def status(self, lines) -> None:
        self.blocks(lines)
        super().status(lines)


def test_a_fleet_shows_one_status_line_per_running_target(pg, tmp_path, create_database):
    from pgmilib.fleet import Target, run_fleet
    from pgmilib.observe.board import FleetBoard

    dbs = [create_database(), create_database()]
    proj = write_project(tmp_path / "p", {}, "SELECT pg_sleep(1.5);\n")
    out = RecordingOutput()
    board = FleetBoard(out)
    base = DeployRequest(project_path=str(proj), environ=_environ(pg), watch=WatchSettings(**FAST, board=board))
    result = run_fleet(base, [Target("alpha", block={"database": dbs[0]}), Target("beta", block={"database": dbs[1]})],
                       parallel=2)
    assert result.ok
    both = out.blocks.wait_for(lambda block: isinstance(block, list) and len(block) == 2, timeout=1)
    assert sorted(line.split(":")[0] for line in both) == ["alpha", "beta"]
    assert all(re.match(r"(alpha|beta): \d+s \| deploy\.sql$", line) for line in both), both
    assert out.blocks.items[-1] == []  # each target removed its line when it ended
    screen = out.stderr.getvalue()
    assert screen.count("\x1b[1A") >= 1  # the two-line block was redrawn in place
    assert "alpha | " not in screen  # no log lines on a terminal


def test_a_fleet_off_a_terminal_prefixes_each_target_s_lines(pg, tmp_path, create_database):
    from pgmilib.fleet import Target, run_fleet
    from pgmilib.observe.board import FleetBoard

    db = create_database()
    proj = write_project(tmp_path / "p", {}, "DO $$ BEGIN RAISE NOTICE 'one'; PERFORM pg_sleep(1.2); END $$;\n")
    out = _out()
    base = DeployRequest(project_path=str(proj), environ=_environ(pg),
                         watch=WatchSettings(**FAST, board=FleetBoard(out)))
    result = run_fleet(base, [Target("gamma", block={"database": db})])
    assert result.ok
    lines = [line for line in out.stderr.getvalue().splitlines() if line.startswith("gamma | ")]
    assert lines and lines[0].startswith("gamma | pgmi: deploy.sql running for ")
    assert lines[0].endswith("(last notice: one)")
