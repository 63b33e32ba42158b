"""The session opens before the scan: the server builds the session API while the client reads the project.

deploy/pipeline.py `open_early`: for an existing target (no --overwrite), pgmi connects, checks
the server and sends the session API before it scans the project. What the user sees must not
change: a problem in the project is still the one reported when the connection fails too, a
failed scan leaves nothing behind on the server, and a database that does not exist is created
only once the project has passed the scan.
"""

from __future__ import annotations

import uuid

from projects import EXECUTE_LOOP, run_cli, write_project

from pgmilib.errors import Exit


def _pgmi_backends(conn, db: str) -> list:
    """pgmi's sessions on `db` (the test's own connections carry another application name)."""
    return conn.run("SELECT pid FROM pg_stat_activity WHERE datname = :d AND application_name LIKE 'pgmi%'", d=db)


def _bad_project(tmp_path):
    """A project the scan refuses (exit 1) once it reads the files: a symlink out of the project.
    Its deploy.sql is fine, so pgmi connects before the scan."""
    outside = tmp_path / "outside.sql"
    outside.write_text("CREATE TABLE leaked (a int);\n")
    proj = write_project(tmp_path / "p", {"a.sql": "CREATE TABLE a (id int);\n"}, EXECUTE_LOOP)
    (proj / "leak.sql").symlink_to(outside)
    return proj


def _watch_the_scan(monkeypatch, conn, db: str) -> list:
    """Record, while the scan runs, pgmi's sessions on `db` and whether the session API exists in one."""
    from pgmilib.project import scan as projects

    seen: list = []
    real_start = projects.Scan.__init__  # a plain scan and a deploy's streaming one both begin here

    def start(self, *args, **kwargs):
        rows = conn.run("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND application_name LIKE 'pgmi%'",
                        d=db)
        seen.append(rows[0][0])
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(projects.Scan, "__init__", start)
    return seen


def _with_and_without_the_early_session(argv, monkeypatch, capsys) -> tuple[str, str]:
    """Run a failing `--json` deploy as it is and with the early session switched off: both are
    exit 11 with the same envelope (attempts included); returns both runs' stderr."""
    import json

    from pgmilib.deploy import pipeline

    code, early_out, early_err = run_cli(argv, capsys)
    monkeypatch.setattr(pipeline._Run, "open_early", lambda self: None)
    late_code, late_out, late_err = run_cli(argv, capsys)
    assert code == late_code == Exit.CONNECTION
    early, late = json.loads(early_out), json.loads(late_out)
    for result in (early, late):
        result.pop("duration", None)
        result.pop("durationMs", None)
    assert early == late
    return early_err, late_err


def test_the_session_is_open_while_the_project_is_scanned(tmp_path, pg_env, conn, fresh_db, monkeypatch, capsys):
    seen = _watch_the_scan(monkeypatch, conn, fresh_db)
    proj = write_project(tmp_path / "p", {"a.sql": "CREATE TABLE a (id int);\n"},
                         "SELECT count(*) FROM pg_temp.pgmi_source_view;\n")
    code, _, err = run_cli(["deploy", str(proj), "-d", fresh_db], capsys)
    assert code == Exit.SUCCESS, err
    assert seen == [1]  # connected before the scan began
    assert _pgmi_backends(conn, fresh_db) == []  # and gone once pgmi returned


def test_with_overwrite_nothing_touches_the_server_before_the_scan(tmp_path, pg_env, conn, fresh_db, monkeypatch,
                                                                   capsys):
    seen = _watch_the_scan(monkeypatch, conn, fresh_db)
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    code, _, err = run_cli(["deploy", str(proj), "-d", fresh_db, "--overwrite", "--force"], capsys)
    assert code == Exit.SUCCESS, err
    assert seen == [0]


def test_a_failed_scan_ends_the_early_session(tmp_path, pg_env, pg, conn, fresh_db, monkeypatch, capsys):
    seen = _watch_the_scan(monkeypatch, conn, fresh_db)
    code, _, err = run_cli(["deploy", str(_bad_project(tmp_path)), "-d", fresh_db], capsys)
    assert code == Exit.GENERAL, err
    assert seen == [1]  # the session was open during the scan
    assert "refusing to read symlink ./leak.sql" in err
    assert "Traceback" not in err and "connection" not in err
    # What the database holds: nothing of the project, and no pgmi session left behind.
    assert _pgmi_backends(conn, fresh_db) == []
    from projects import query

    assert query(pg, fresh_db, "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'leaked')") == [[0]]


def test_a_failed_scan_never_creates_the_missing_database(tmp_path, pg_env, conn, capsys):
    db = "early_" + uuid.uuid4().hex[:10]
    code, _, err = run_cli(["deploy", str(_bad_project(tmp_path)), "-d", db], capsys)
    assert code == Exit.GENERAL, err
    assert "creating" not in err
    assert conn.run("SELECT count(*) FROM pg_database WHERE datname = :d", d=db) == [[0]]


def test_a_missing_database_is_created_after_the_scan(tmp_path, pg_env, conn, monkeypatch, capsys):
    db = "early_" + uuid.uuid4().hex[:10]
    seen = _watch_the_scan(monkeypatch, conn, db)
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE made (id int);\n")
    try:
        code, _, err = run_cli(["deploy", str(proj), "-d", db], capsys)
        assert code == Exit.SUCCESS, err
        assert "does not exist; creating" in err
        assert seen == [0]
        assert conn.run("SELECT count(*) FROM pg_database WHERE datname = :d", d=db) == [[1]]
    finally:
        conn.run(f'DROP DATABASE IF EXISTS "{db}"')


def test_the_projects_problem_wins_over_a_failing_connection(tmp_path, pg_env, fresh_db, capsys):
    """Refused login and a bad project: the project's error and exit code, as when pgmi scanned first."""
    code, _, err = run_cli(["deploy", str(_bad_project(tmp_path)), "-d", fresh_db, "-U", "no_such_role_x"], capsys)
    assert code == Exit.GENERAL, err
    assert "refusing to read symlink ./leak.sql" in err
    assert "no_such_role_x" not in err


def test_a_failing_connection_is_reported_after_a_clean_scan(tmp_path, pg_env, fresh_db, monkeypatch, capsys):
    """The held connection error is the same error, exit code and attempts as without the early session."""
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    argv = ["deploy", str(proj), "-d", fresh_db, "-U", "no_such_role_x", "--json"]
    early_err, late_err = _with_and_without_the_early_session(argv, monkeypatch, capsys)
    assert 'role "no_such_role_x" does not exist' in early_err
    assert early_err == late_err


def test_a_missing_deploy_sql_is_reported_before_any_connection(tmp_path, pg_env, conn, fresh_db, monkeypatch,
                                                                capsys):
    seen = _watch_the_scan(monkeypatch, conn, fresh_db)
    proj = write_project(tmp_path / "p", {"a.sql": "SELECT 1;\n"}, deploy_sql=None)
    code, _, err = run_cli(["deploy", str(proj), "-d", fresh_db], capsys)
    assert code == Exit.DEPLOY_SQL_MISSING, err
    assert seen == [0]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_made_again_after_the_scan_and_says_everything_once(tmp_path, pg_env, monkeypatch,
                                                                                     capsys):
    """A failure worth retrying is dropped before the scan: the attempt after it reports the same
    error, attempts and warnings as a deploy without the early session, and nothing twice."""
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:*:secret\n")
    passfile.chmod(0o644)  # refused with a warning, by the attempt that reads it
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    argv = ["deploy", str(proj), "-h", "127.0.0.1", "-p", str(_free_port()), "-d", "x", "--json"]
    early_err, late_err = _with_and_without_the_early_session(argv, monkeypatch, capsys)
    assert early_err.count("has group or world access") == 1
    assert early_err == late_err


def test_a_silent_server_does_not_hold_up_the_projects_error(tmp_path, pg_env, monkeypatch, capsys):
    """The attempt before the scan waits at most EARLY_CONNECT_SECONDS, not the connect_timeout:
    a server that accepts and never answers (60 s connect_timeout here) cannot delay a problem in the
    project. The thread's join limit only guards the test run; the run itself returns in well under it."""
    import socket
    import threading

    from pgmilib.deploy import pipeline

    monkeypatch.setattr(pipeline, "EARLY_CONNECT_SECONDS", 0.2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    server = threading.Thread(target=accept, daemon=True)
    server.start()
    result: list = []
    proj = _bad_project(tmp_path)
    argv = ["deploy", str(proj), "--connection",
            f"host=127.0.0.1 port={listener.getsockname()[1]} dbname=x connect_timeout=60 sslmode=disable"]
    runner = threading.Thread(target=lambda: result.append(run_cli(argv, capsys)), daemon=True)
    try:
        runner.start()
        runner.join(30)
        assert not runner.is_alive(), "the project's error waited for the silent server"
        code, _, err = result[0]
        assert code == Exit.GENERAL, err
        assert "refusing to read symlink ./leak.sql" in err
        assert len(accepted) == 1  # the early attempt reached the server; the scan then failed
    finally:
        stop.set()
        server.join(5)
        for sock in accepted:
            sock.close()
        listener.close()
