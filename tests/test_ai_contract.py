"""`pgmi ai contract` is generated from sql/ and Exit, and matches a live session.

The unit tests pin the generator's parsing; the database tests prepare a real session and
compare the contract with what PostgreSQL actually has in pg_temp, and with the events a
real generated test run emits, so the contract cannot drift from the SQL pgmi installs.
"""

from __future__ import annotations

import io
import json
import re

from projects import write_project

from pgmilib.ai import contract
from pgmilib.errors import Exit
from pgmilib.output import Output


def test_exit_codes_are_the_real_constants():
    codes = contract.build_contract()["exit_codes"]
    assert [(c["code"], c["name"]) for c in codes] == [
        (int(m), "Exit" + "".join(w.capitalize() for w in m.name.split("_"))) for m in Exit]
    assert {c["code"] for c in codes} == {0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 130}
    assert set(contract.EXIT_DESCRIPTIONS) == {m.name for m in Exit}
    assert all(c["description"] for c in codes)


def test_prose_keys_name_generated_things():
    built = contract.build_contract()
    assert set(contract.VIEW_NOTES) <= {v["name"] for v in built["views"]}


def test_contract_shape():
    built = contract.build_contract()
    assert set(built) == {"api_version", "views", "functions", "types", "step_types", "exit_codes", "macros",
                          "execution_contract"}
    plan = next(v for v in built["views"] if v["name"] == "pgmi_plan_view")
    assert plan["columns"] == ["path", "content", "checksum", "generic_id", "id", "idempotent", "description",
                               "sort_key", "execution_order"]
    functions = {f["name"]: f for f in built["functions"]}
    assert "pgmi_run_test_source" not in functions
    assert functions["pgmi_test_plan"]["returns"] == ["ordinal", "step_type", "script_path", "directory", "depth"]
    assert functions["pgmi_test_generate"]["args"] == [
        "p_pattern text DEFAULT NULL", "p_callback text DEFAULT 'pg_temp.pgmi_test_callback'"]
    assert built["types"][0]["events"] == ["suite_start", "fixture_start", "fixture_end", "test_start", "test_end",
                                           "rollback", "teardown_start", "teardown_end", "suite_end"]
    assert built["step_types"]["values"] == ["fixture", "test", "teardown"]
    assert "CREATE INDEX CONCURRENTLY" in built["execution_contract"]["not_via_execute"]["statements"]


def test_parsers_follow_the_sql_text():
    sql = """
    -- a comment, with (parens), and commas
    CREATE TEMP VIEW v AS
    SELECT a, t.b, coalesce(c, 1) AS c2, row_number() OVER (ORDER BY a, b) AS n FROM t;
    CREATE OR REPLACE FUNCTION pg_temp.f(x text, y int DEFAULT 3) RETURNS TABLE (p int, q text) LANGUAGE sql AS $$ $$;
    CREATE OR REPLACE FUNCTION pg_temp.g() RETURNS void LANGUAGE sql AS $$ $$;
    """
    assert contract.views(sql) == [{"name": "v", "columns": ["a", "b", "c2", "n"]}]
    assert contract.functions(sql) == [{"name": "f", "args": ["x text", "y int DEFAULT 3"], "returns": ["p", "q"]},
                                       {"name": "g", "args": [], "returns": ["void"]}]


def test_cli_prints_indented_json(run_pgmi):
    result = run_pgmi("ai", "contract")
    assert result.returncode == 0
    assert json.loads(result.stdout) == contract.build_contract()
    assert result.stdout.startswith('{\n  "api_version"')


def _prepared(pg, db: str, root):
    import pg8000.native

    from pgmilib.deploy import session
    from pgmilib.project import scan

    conn = pg8000.native.Connection(**pg.conn_kwargs(db))
    project = scan.scan(write_project(root, {
        "deploy.sql": "SELECT 1;",
        "a.sql": "SELECT 1;",
        "__test__/_setup.sql": "SELECT 1;",
        "__test__/test_a.sql": "SELECT 1;",
        "__test__/sub/test_b.sql": "SELECT 1;",
    }))
    session.prepare(conn, project, {}, out=Output(stdout=io.StringIO(), stderr=io.StringIO()))
    return conn


def test_contract_matches_the_live_session(pg, fresh_db, tmp_path):
    built = contract.build_contract()
    conn = _prepared(pg, fresh_db, tmp_path)
    try:
        views = {name: list(cols) for name, cols in conn.run(
            "SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'v' GROUP BY c.relname")}
        assert views == {v["name"]: v["columns"] for v in built["views"]}

        functions = {row[0] for row in conn.run("SELECT proname FROM pg_proc WHERE pronamespace = pg_my_temp_schema()")}
        assert functions == {f["name"] for f in built["functions"]} | contract.INTERNAL_FUNCTIONS

        event = built["types"][0]
        fields = conn.run(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_type t ON t.typrelid = a.attrelid WHERE t.typname = :n "
            "AND t.typnamespace = pg_my_temp_schema() AND a.attnum > 0 ORDER BY a.attnum", n=event["name"])
        assert [f"{name} {kind}" for name, kind in fields] == event["fields"]

        generated = conn.run("SELECT pg_temp.pgmi_test_generate()")[0][0]
        emitted = set(re.findall(r"ROW\('(\w+)'", generated))
        assert emitted == set(event["events"])  # this plan has fixtures, tests and teardowns: every event

        steps = {row[0] for row in conn.run("SELECT DISTINCT step_type FROM pg_temp.pgmi_test_plan()")}
        assert steps == set(built["step_types"]["values"])
    finally:
        conn.close()
