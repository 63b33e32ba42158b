"""COPY inside deploy.sql: COPY OUT is consumed and shown, COPY IN is aborted on the wire.

Each failure path queries the database afterwards: what the exit code and `unitsCommitted`
claim must be what the server committed.
"""

from __future__ import annotations

import json
import uuid

import pytest
from projects import write_project


def _db() -> str:
    return "c_" + uuid.uuid4().hex[:10]


def _tables(pg, db: str) -> list[str]:
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(db))
    try:
        return sorted(r[0] for r in c.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    finally:
        c.close()


def _deploy(run_pgmi, tmp_path, script: str, *extra: str):
    db = _db()
    result = run_pgmi("deploy", str(write_project(tmp_path / "p", {}, script)), "-d", db, "--json", *extra)
    return db, result, json.loads(result.stdout)


def test_copy_out_in_the_head_is_shown_and_everything_commits(tmp_path, pg, run_pgmi):
    script = ("BEGIN;\nCREATE TABLE t (a int);\nCOPY (SELECT 41 + g FROM generate_series(1, 2) g) TO STDOUT;\n"
              "CREATE TABLE t2 (a int);\nCOMMIT;\n")
    db, result, env = _deploy(run_pgmi, tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert "42\n43\n" in result.stderr
    assert env["unitsCommitted"] == env["executionUnits"] == 1
    assert _tables(pg, db) == ["t", "t2"]


def test_copy_out_in_the_tail_and_binary_copy_are_consumed(tmp_path, pg, run_pgmi):
    script = ("CREATE TABLE t (a text);\nCOMMIT;\nCOPY (SELECT 'x' || g FROM generate_series(1, 3) g) TO STDOUT;\n"
              "COPY (SELECT 1) TO STDOUT (FORMAT binary);\nCREATE TABLE t2 (a int);\n")
    db, result, env = _deploy(run_pgmi, tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert "x1\nx2\nx3\n" in result.stderr
    assert "binary COPY output:" in result.stderr
    assert env["unitsCommitted"] == env["executionUnits"] == 4
    assert _tables(pg, db) == ["t", "t2"]


def test_copy_from_stdin_in_the_head_is_aborted_and_nothing_commits(tmp_path, pg, run_pgmi):
    script = "BEGIN;\nCREATE TABLE t (a int);\n  COPY t FROM STDIN;\nCREATE TABLE t2 (a int);\nCOMMIT;\n"
    db, result, env = _deploy(run_pgmi, tmp_path, script)
    assert result.returncode == 13, result.stderr
    assert "COPY FROM STDIN is not supported in deploy.sql" in result.stderr
    assert "LOCATION: deploy.sql line 3, column 3" in result.stderr
    assert "Traceback" not in result.stderr
    assert (env["line"], env["unitsCommitted"]) == (3, 0)
    assert _tables(pg, db) == []


def test_pg_dump_data_block_after_commit_stops_at_the_copy(tmp_path, pg, run_pgmi):
    script = ("CREATE TABLE t (a int, b text);\nCOMMIT;\nCOPY public.t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\n"
              "CREATE TABLE after (a int);\n")
    db, result, env = _deploy(run_pgmi, tmp_path, script)
    assert result.returncode == 13, result.stderr
    assert "COPY FROM STDIN is not supported in deploy.sql" in result.stderr
    assert env["line"] == 3
    assert env["unitsCommitted"] == 1 and env["executionUnits"] >= 2
    assert _tables(pg, db) == ["t"]
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(db))
    try:
        assert c.run("SELECT count(*) FROM t") == [[0]]
    finally:
        c.close()


def test_copy_inside_plpgsql_is_a_server_error(tmp_path, pg, run_pgmi):
    script = ("BEGIN;\nCREATE TABLE t (a int);\nDO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO STDOUT'; END $$;\n"
              "COMMIT;\n")
    db, result, env = _deploy(run_pgmi, tmp_path, script)
    assert result.returncode == 13, result.stderr
    assert "cannot COPY to/from client in PL/pgSQL" in result.stderr
    assert env["unitsCommitted"] == 0
    assert _tables(pg, db) == []


@pytest.mark.parametrize("extended", [False, True])
def test_connection_stays_usable_after_a_refused_copy_in(pg, fresh_db, extended):
    import pg8000.exceptions

    from pgmilib.conn.wire import LiveConnection

    conn = LiveConnection(**pg.conn_kwargs(fresh_db))
    try:
        conn.run("CREATE TABLE t (a int)")
        with pytest.raises(pg8000.exceptions.DatabaseError) as caught:
            if extended:
                conn.execute_unnamed("COPY t FROM STDIN")
            else:
                conn.run("COPY t FROM STDIN")
        assert "COPY FROM STDIN is not supported" in str(caught.value)
        assert conn.copy_in_refused == 1
        assert conn.run("SELECT count(*) FROM t") == [[0]]
        assert conn.transaction_status == "I"
    finally:
        conn.close()


@pytest.mark.parametrize("script, line", [("SELECT 1;\n/* never closed\n", 2),
                                          ("SELECT 1;\nCOMMIT;\nCREATE TABLE t (a int);\n/* never closed\n", 4)])
def test_unterminated_block_comment_before_or_after_commit_is_13(tmp_path, pg, run_pgmi, script, line):
    db, result, env = _deploy(run_pgmi, tmp_path, script)
    assert result.returncode == 13, result.stderr
    assert f"NOTE: deploy.sql has an unterminated block comment starting at line {line}" in result.stderr
    assert env["unitsCommitted"] == (2 if line == 4 else 0)
    assert _tables(pg, db) == (["t"] if line == 4 else [])
