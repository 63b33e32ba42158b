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
    assert [c["code"] for c in codes] == [int(m) for m in Exit]
    # The original's constant names, in its order: programs match on these.
    assert [(c["code"], c["name"]) for c in codes] == [
        (0, "ExitSuccess"), (1, "ExitGeneralError"), (2, "ExitUsageError"), (3, "ExitPanic"),
        (10, "ExitConfigError"), (11, "ExitConnectionError"), (12, "ExitApprovalDenied"),
        (13, "ExitExecutionFailed"), (14, "ExitDeploySQLMissing"), (15, "ExitConcurrentDeploy"),
        (16, "ExitTimeout"), (17, "ExitLockRisk"), (130, "ExitInterrupted")]
    assert set(contract.EXIT_DESCRIPTIONS) == set(contract.EXIT_NAMES) == {m.name for m in Exit}
    assert all(c["description"] for c in codes)


def test_prose_keys_name_generated_things():
    built = contract.build_contract()
    assert set(contract.VIEW_NOTES) <= {v["name"] for v in built["views"]}


def test_contract_shape():
    built = contract.build_contract()
    assert set(built) == {"api_version", "views", "functions", "types", "step_types", "step_types_note",
                          "exit_codes", "macros", "execution_contract"}
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
    assert built["step_types"] == ["fixture", "test", "teardown"]
    assert "CREATE INDEX CONCURRENTLY" in built["execution_contract"]["not_via_execute"]
    assert [m["form"] for m in built["macros"]] == [
        "CALL pgmi_test()", "CALL pgmi_test('pattern')", "CALL pgmi_test('pattern', 'callback')"]


# The original's JSON shape (field names, nesting, value types), as the project's spec records
# it: a key maps to a type, a one-element list to "a list of", a dict to an object with those
# keys; keys ending in "?" may be absent. Extra keys of our own are allowed at the top level only.
ORIGINAL_SHAPE = {
    "views": [{"name": str, "columns": [str], "note?": str}],
    "functions": [{"name": str, "args": [str], "returns": [str]}],
    "types": [{"name": str, "fields": [{"name": str, "type": str}], "events?": [str], "note?": str}],
    "step_types": [str],
    "step_types_note": str,
    "exit_codes": [{"code": int, "name": str, "description": str}],
    "macros": [{"form": str, "description": str}],
    "execution_contract": {"summary": str, "head": str, "tail": str, "terminators": [str],
                           "not_terminators": [str], "consequences": [str], "not_via_execute": [str],
                           "not_via_execute_why": str},
}


def _conforms(value, shape, where: str) -> None:
    if isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where}: a non-empty list"
        for i, item in enumerate(value):
            _conforms(item, shape[0], f"{where}[{i}]")
    elif isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: an object"
        required = {k for k in shape if not k.endswith("?")}
        allowed = required | {k[:-1] for k in shape if k.endswith("?")}
        assert required <= set(value) <= allowed, f"{where}: keys {sorted(value)}"
        for key, sub in shape.items():
            if key.rstrip("?") in value:
                _conforms(value[key.rstrip("?")], sub, f"{where}.{key.rstrip('?')}")
    else:
        assert isinstance(value, shape) and not isinstance(value, bool), f"{where}: {shape.__name__}"


def test_contract_keeps_the_original_field_names_and_nesting(run_pgmi):
    printed = json.loads(run_pgmi("ai", "contract").stdout)
    assert set(ORIGINAL_SHAPE) <= set(printed)
    for key, shape in ORIGINAL_SHAPE.items():
        _conforms(printed[key], shape, key)


def test_shape_check_rejects_the_old_shapes():
    import pytest

    for key, old in (("step_types", {"values": ["fixture"], "note": "x"}),
                     ("macros", {"forms": [{"call": "CALL pgmi_test()"}]}),
                     ("types", [{"name": "e", "fields": ["event text"]}])):
        with pytest.raises(AssertionError):
            _conforms(old, ORIGINAL_SHAPE[key], key)


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
        assert [{"name": name, "type": kind} for name, kind in fields] == event["fields"]

        generated = conn.run("SELECT pg_temp.pgmi_test_generate()")[0][0]
        emitted = set(re.findall(r"ROW\('(\w+)'", generated))
        assert emitted == set(event["events"])  # this plan has fixtures, tests and teardowns: every event

        steps = {row[0] for row in conn.run("SELECT DISTINCT step_type FROM pg_temp.pgmi_test_plan()")}
        assert steps == set(built["step_types"])
    finally:
        conn.close()
