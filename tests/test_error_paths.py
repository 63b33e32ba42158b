"""Errors: a bug is exit 3 (never a connection or SQL failure); tracebacks only for bugs; redacted always."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from projects import EXECUTE_LOOP, run_cli, write_project

from pgmilib.errors import Exit, PgmiError, exit_code

CANARY = "canary-" + uuid.uuid4().hex[:12]


def test_a_bug_in_the_connection_layer_is_a_panic_not_a_connection_failure(tmp_path, pg_env, monkeypatch, capsys):
    from pgmilib.conn import wire

    def broken(self, *args, **kwargs):
        raise TypeError(f"a bug (password={CANARY})")

    monkeypatch.setattr(wire.LiveConnection, "__init__", broken)
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    code, out, err = run_cli(["deploy", str(proj), "-d", "bugcheck"], capsys)
    assert code == Exit.PANIC  # before: a bare `except Exception` reported it as exit 11
    assert "panic: a bug" in err and "Traceback" in err and "please report" in err
    assert CANARY not in err + out  # the panic path is redacted too


def test_a_bug_while_deploy_sql_runs_is_a_panic_and_the_database_holds_what_committed(tmp_path, pg, pg_env,
                                                                                      monkeypatch, capsys):
    """A programming error below execute.run_units is exit 3 (the panic report, redacted), not exit 13."""
    from projects import query

    from pgmilib.conn import wire

    real_run = wire.LiveConnection.run

    def run(self, sql, *args, **kwargs):
        if "CREATE TABLE tail_t" in sql:
            raise TypeError(f"a bug while running a unit (password={CANARY})")
        return real_run(self, sql, *args, **kwargs)

    monkeypatch.setattr(wire.LiveConnection, "run", run)
    db = "bugrun_" + uuid.uuid4().hex[:8]
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE head_t(id int);\nCOMMIT;\n"
                                              "CREATE TABLE tail_t(id int);\n")
    code, out, err = run_cli(["deploy", str(proj), "-d", db], capsys)
    assert code == Exit.PANIC  # before: `except Exception` around each unit reported it as exit 13
    assert "panic: a bug while running a unit" in err and "Traceback" in err
    assert "execution failed" not in err
    assert CANARY not in err + out
    tables = query(pg, db, "SELECT relname FROM pg_class WHERE relname IN ('head_t', 'tail_t') ORDER BY 1")
    assert tables == [["head_t"]]  # the committed head stays; the unit that hit the bug never ran


def test_verbose_never_prints_a_traceback_for_a_classified_error(tmp_path, pg_env, capsys):
    proj = write_project(tmp_path / "p", {}, "SELECT * FROM no_such_table;\n")
    code, _, err = run_cli(["deploy", str(proj), "-d", "verbose_" + uuid.uuid4().hex[:8], "--verbose"], capsys)
    assert code == Exit.EXECUTION
    assert "no_such_table" in err and "[VERBOSE]" in err
    assert "Traceback" not in err


def test_verbose_wrong_password_is_one_line_without_traceback(tmp_path, pg_env, monkeypatch, capsys):
    """A classified failure (wrong password, exit 11) stays one error block under --verbose: no traceback."""
    import os

    from pgmilib.conn.wire import LiveConnection
    from pgmilib.server.cluster import Cluster

    with Cluster(listen_tcp=True, settings={"password_encryption": "scram-sha-256"}) as cluster:
        with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
            fh.write("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        admin = LiveConnection(**cluster.conn_kwargs())
        admin.run(f"CREATE ROLE app LOGIN PASSWORD 'right-{CANARY}'")
        admin.run("SELECT pg_reload_conf()")
        admin.close()
        monkeypatch.setenv("PGPASSWORD", f"wrong-{CANARY}")
        proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
        code, _, err = run_cli(["deploy", str(proj), "-d", "postgres", "-U", "app", "-h", "127.0.0.1",
                                "-p", str(cluster.port), "--sslmode", "disable", "--verbose"], capsys)
    assert code == Exit.CONNECTION
    assert "password authentication failed" in err
    assert err.count("pgmi: error:") == 1
    assert "Traceback" not in err and CANARY not in err


def test_verbose_session_setup_is_quiet_but_user_debug_is_shown(tmp_path, pg_env, capsys):
    proj = write_project(tmp_path / "p", {"a.sql": "SELECT 1;"},
                         "DO $$ BEGIN RAISE DEBUG 'user debug line'; END $$;\n")
    code, _, err = run_cli(["deploy", str(proj), "-d", "quiet_" + uuid.uuid4().hex[:8], "--verbose"], capsys)
    assert code == Exit.SUCCESS, err
    assert "user debug line" in err
    assert "_pgmi_" not in err  # no server DEBUG about pgmi's own temp tables and indexes


def test_the_cli_carries_the_file_cap_and_the_checksum_cache_place_in_the_request(tmp_path, pg, pg_env,
                                                                                  monkeypatch, capsys):
    """PGMI_MAX_FILE_SIZE and PGMI_CACHE_DIR are read by the CLI (the scanner and the loader never read
    the environment): a deploy through the CLI still honours both."""
    from projects import query

    db = "envcarry_" + uuid.uuid4().hex[:8]
    proj = write_project(tmp_path / "p", {"a/big.sql": "SELECT 1; -- " + "x" * 100 + "\n"}, EXECUTE_LOOP)
    monkeypatch.setenv("PGMI_MAX_FILE_SIZE", "64")
    code, _, err = run_cli(["deploy", str(proj), "-d", db], capsys)
    assert code == Exit.GENERAL and "exceeds 64-byte cap" in err
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = :d", d=db) == [[0]]

    monkeypatch.delenv("PGMI_MAX_FILE_SIZE")
    monkeypatch.setenv("PGMI_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = run_cli(["deploy", str(proj), "-d", db], capsys)
    assert code == Exit.SUCCESS, err
    assert [p.name.startswith("checksums-") for p in (tmp_path / "cache").iterdir()] == [True]


def test_a_session_ended_by_the_server_during_preparation_is_a_lost_connection(pg, fresh_db):
    """pg_terminate_backend while the session API is installed: exit 11 with the server's reason."""
    import pg8000.native

    from pgmilib.conn.wire import LiveConnection
    from pgmilib.deploy.session import run_script

    victim = LiveConnection(**pg.conn_kwargs(fresh_db))  # pgmi's connection: it reads the FATAL as such
    admin = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        pid = victim.run("SELECT pg_backend_pid()")[0][0]
        admin.run("SELECT pg_terminate_backend(:p)", p=pid)
        with pytest.raises(PgmiError) as caught:
            run_script(victim, "session_schema.sql")
    finally:
        admin.close()
        with contextlib.suppress(Exception):
            victim.close()
    assert exit_code(caught.value) == Exit.CONNECTION
    assert str(caught.value).startswith("session preparation failed: session_schema.sql: connection to the server lost")
