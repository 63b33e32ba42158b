"""Every failure points at its line: the five cases without a server Position, on a real server.

Each deploy runs through the real CLI; the report must name the right file and line in at most
12 lines (the `pgmi: error:` block), say which evidence placed it (FILE: certain, CANDIDATE:
a best guess with its reason, JSON `locatedBy`/`fileExact`), and the database must hold what
the exit code says (nothing of a failed atomic head).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from projects import query, run_cli, write_project

#: deploy.sql of many real projects: run every file, but rewrite it first (schema placeholder,
#: no CONCURRENTLY inside a transaction).
REWRITING_LOOP = r"""BEGIN;
DO $$ DECLARE f record; BEGIN
  FOR f IN SELECT path, content FROM pg_temp.pgmi_source_view WHERE is_sql_file ORDER BY path LOOP
    EXECUTE replace(regexp_replace(f.content, '\mCONCURRENTLY\M', '', 'g'), '{{schema}}', 'public');
  END LOOP;
END $$;
COMMIT;
"""
PLAIN_LOOP = REWRITING_LOOP.replace(
    "replace(regexp_replace(f.content, '\\mCONCURRENTLY\\M', '', 'g'), '{{schema}}', 'public')", "f.content")


def _db() -> str:
    return "loc_" + uuid.uuid4().hex[:10]


def _deploy(tmp_path, capsys, files: dict[str, str], script: str, db: str) -> tuple[int, dict, list[str]]:
    proj = write_project(tmp_path / "p", files, script)
    code, out, err = run_cli(["deploy", str(proj), "-d", db, "--json"], capsys)
    block = err[err.index("pgmi: error:"):].rstrip("\n").split("\n") if "pgmi: error:" in err else []
    assert len(block) <= 12, "\n".join(block)
    return code, json.loads(out), block


def _tables(pg, db: str) -> list[str]:
    return [r[0] for r in query(pg, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_unquoted_function_name_without_position(tmp_path, pg, pg_env, capsys):
    """Case 1: `function convert_tz(text) does not exist` from a multi-statement EXECUTEd file."""
    migration = ("CREATE TABLE t1 (id int);\n-- convert_tz(text) is added by a later release\n"
                 "CREATE FUNCTION f1(a text) RETURNS text LANGUAGE sql AS $$ SELECT a $$;\n"
                 "INSERT INTO t1 VALUES (1);\nCOMMENT ON FUNCTION convert_tz(text) IS 'converts';\n"
                 "CREATE TABLE t2 (id int);\n")
    db = _db()
    code, env, block = _deploy(tmp_path, capsys, {"migrations/001.sql": migration}, PLAIN_LOOP, db)
    assert code == 13 and env["sqlstate"] == "42883"
    assert (env["file"], env["fileLine"], env["fileColumn"]) == ("./migrations/001.sql", 5, 21)
    assert env["locatedBy"] == "name" and env["fileExact"] is False
    assert 'CANDIDATE: ./migrations/001.sql:5:21 (names "convert_tz" from the error)' in block
    assert _tables(pg, db) == []  # the atomic head rolled back


def test_misspelled_name_in_a_long_statement_points_at_its_line(tmp_path, pg, pg_env, capsys):
    """Case 2: a 31-line CREATE TABLE naming a missing table on its line 21."""
    columns = [f"    col_{i} text," for i in range(1, 19)]
    create = ("CREATE TABLE app_items (\n    id bigint PRIMARY KEY,\n" + "\n".join(columns)
              + "\n    flow_id bigint REFERENCES app_flowz (id),\n"
              + "\n".join(f"    more_{i} int," for i in range(8)) + "\n    last_col int\n);\n")
    assert len(create.splitlines()) == 31 and "app_flowz" in create.splitlines()[20]
    migration = "CREATE TABLE app_flows (id bigint PRIMARY KEY);\n\n" + create
    db = _db()
    code, env, block = _deploy(tmp_path, capsys, {"migrations/001.sql": migration}, PLAIN_LOOP, db)
    assert code == 13 and env["sqlstate"] == "42P01"
    assert (env["file"], env["fileLine"]) == ("./migrations/001.sql", 23)  # line 21 of the statement
    assert env["fileColumn"] == len("    flow_id bigint REFERENCES ") + 1
    assert any(line.startswith("CANDIDATE: ./migrations/001.sql:23:") and "at line 3" in line for line in block)
    assert _tables(pg, db) == []


@pytest.mark.parametrize("broken, line, exact", [
    ("SELECT total FROMM {{schema}}.orders;", 8, False),  # syntax error: the server's position, rewritten line
    ("SELECT nosuch FROM {{schema}}.orders;", 8, False),  # unknown column: position, rewritten line
    ("SELECT total / 0 FROM {{schema}}.orders;", 8, False),  # runtime error: no position at all
    ("INSERT INTO orders VALUES (2, 1/0);", 8, False),  # no position, the line deploy.sql left unchanged
])
def test_text_rewritten_by_deploy_sql_is_traced_to_its_file(tmp_path, pg, pg_env, capsys, broken, line, exact):
    """Case 3: deploy.sql substitutes a placeholder and strips CONCURRENTLY before EXECUTE."""
    migration = ("-- orders\nCREATE TABLE {{schema}}.orders (\n    id bigint PRIMARY KEY,\n    total numeric NOT NULL\n);\n"
                 "CREATE INDEX CONCURRENTLY orders_total ON {{schema}}.orders (total);\n"
                 "INSERT INTO {{schema}}.orders VALUES (1, 10);\n" + broken + "\nCREATE TABLE {{schema}}.later (id int);\n")
    other = "CREATE TABLE {{schema}}.customers (\n    id bigint PRIMARY KEY,\n    name text NOT NULL\n);\n"
    db = _db()
    code, env, block = _deploy(tmp_path, capsys, {"migrations/001_customers.sql": other,
                                                  "migrations/002_orders.sql": migration}, REWRITING_LOOP, db)
    assert code == 13
    assert (env["file"], env["fileLine"]) == ("./migrations/002_orders.sql", line), block
    assert env["fileExact"] is exact
    assert block[-3 if env.get("fileColumn") else -2].startswith(f"CANDIDATE: ./migrations/002_orders.sql:{line}")
    assert f"LINE {line}: {broken}" in block
    assert _tables(pg, db) == []


def test_runtime_error_in_the_fourth_unit_names_its_line(tmp_path, pg, pg_env, capsys):
    """Case 4a: division by zero in unit 4 of 4 (no position, no context): that unit's line."""
    script = "CREATE TABLE a (i int);\nCOMMIT;\nINSERT INTO a VALUES (1);\n\nSELECT 2;\nSELECT 1/0;\n"
    db = _db()
    code, env, block = _deploy(tmp_path, capsys, {}, script, db)
    assert code == 13 and (env["executionUnits"], env["unitsCommitted"]) == (4, 3)
    assert (env["file"], env["fileLine"], env["fileColumn"], env["locatedBy"]) == ("deploy.sql", 6, 1, "unit")
    assert env["fileExact"] is True
    assert block[-3:] == ["FILE: deploy.sql:6:1 (unit 4 of 4; the server gave no position inside it)",
                          "LINE 6: SELECT 1/0;", " " * len("LINE 6: ") + "^"]
    assert query(pg, db, "SELECT i FROM a") == [[1]]  # units 1-3 committed


@pytest.mark.parametrize("tail", [False, True])
def test_third_of_three_do_blocks(tmp_path, pg, pg_env, capsys, tail):
    """Case 4b: the 3rd of three identical-looking DO blocks fails; in the head (one unit) the
    statement the server ran picks the block, in the tail each block is its own unit."""
    script = ("CREATE TABLE a (i int);\n" + ("COMMIT;\n" if tail else "")
              + "DO $$ BEGIN PERFORM 1; END $$;\nDO $$ BEGIN PERFORM 2; END $$;\nDO $$ BEGIN PERFORM nosuchfn(); END $$;\n")
    db = _db()
    code, env, block = _deploy(tmp_path, capsys, {}, script, db)
    line = 5 if tail else 4
    assert code == 13 and env["sqlstate"] == "42883"
    assert (env["file"], env["fileLine"], env["fileColumn"]) == ("deploy.sql", line, len("DO $$ BEGIN PERFORM ") + 1)
    assert env["fileExact"] is True and "fileCandidates" not in env
    assert block[-3] == f"FILE: deploy.sql:{line}:21"
    assert "also" not in "\n".join(block)
    assert _tables(pg, db) == (["a"] if tail else [])


def test_failed_in_message_of_a_template_names_the_line(tmp_path, pg, pg_env, capsys):
    """A deploy.sql that re-raises as `Failed in <path>: <message>` keeps the file; the name gives the line."""
    script = PLAIN_LOOP.replace("    EXECUTE f.content;\n", (
        "    BEGIN EXECUTE f.content;\n    EXCEPTION WHEN OTHERS THEN\n"
        "      RAISE EXCEPTION 'Failed in %: %', f.path, SQLERRM;\n    END;\n"))
    migration = "CREATE TABLE a (id int);\n\nALTER TABLE audit_log\n  ADD COLUMN note text;\n"
    code, env, block = _deploy(tmp_path, capsys, {"migrations/001.sql": migration}, script, _db())
    assert code == 13 and env["failedFile"] == "./migrations/001.sql"
    assert (env["file"], env["fileLine"], env["locatedBy"]) == ("./migrations/001.sql", 3, "name")
    assert block[-3].startswith("CANDIDATE: ./migrations/001.sql:3:13 (the error message names the file; ")


def test_terminated_session_reports_the_servers_reason(tmp_path, pg, pg_env, capsys):
    """R8: pg_terminate_backend from another session: the FATAL 57P01 message, exit 13."""
    script = "CREATE TABLE a (i int);\nCOMMIT;\nSELECT pg_sleep(30);\n"
    db = _db()
    done = threading.Event()
    killed: list = []

    def terminate() -> None:
        until = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < until and not killed:
            rows = query(pg, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = :d AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
                         d=db)
            killed.extend(r for r in rows if r[0])
            time.sleep(0.05)

    worker = threading.Thread(target=terminate)
    worker.start()
    try:
        code, env, block = _deploy(tmp_path, capsys, {}, script, db)
    finally:
        done.set()
        worker.join()
    assert killed
    assert code == 13
    assert env["sqlstate"] == "57P01"
    assert env["error"] == ("execution failed: FATAL: terminating connection due to administrator command "
                            "(SQLSTATE 57P01)")
    assert block[0] == "pgmi: error: " + env["error"]
    assert (env["file"], env["fileLine"]) == ("deploy.sql", 3)
    assert _tables(pg, db) == ["a"]  # the committed head stays
