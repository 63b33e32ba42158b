"""Sending execution units and locating failures, against the real server from conftest."""

from __future__ import annotations

import io

import pytest

from pgmilib.deploy.execute import ExecResult, build_failure, run_units
from pgmilib.deploy.hints import lock_advice
from pgmilib.deploy.locate import Failure, locate_failure
from pgmilib.errors import ExecutionFailed, Exit, PgDiagnostics, exit_code
from pgmilib.output import Output, format_error
from pgmilib.sqllex import split_units


@pytest.fixture
def db(pg, fresh_db):
    """A connection to a fresh database, holding the project files in pg_temp.files like pgmi does."""
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    c.run("CREATE TEMP TABLE files (path text PRIMARY KEY, content text NOT NULL)")
    yield c
    c.close()


def _out() -> Output:
    return Output(stdout=io.StringIO(), stderr=io.StringIO())


def _load(conn, files: dict[str, str]) -> dict[str, str]:
    for path, content in files.items():
        conn.run("INSERT INTO pg_temp.files VALUES (:p, :c)", p=path, c=content)
    return files


def _deploy(conn, script: str, files: dict[str, str] | None = None, *, expanded: bool = False) -> ExecResult:
    return run_units(conn, split_units(script), out=_out(), script_text=script, script_expanded=expanded,
                     files=files)


def _fail(conn, script: str, files: dict[str, str] | None = None, *, expanded: bool = False) -> ExecutionFailed:
    with pytest.raises(ExecutionFailed) as info:
        _deploy(conn, script, files, expanded=expanded)
    return info.value


RUN_FILES = """DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT path, content FROM pg_temp.files WHERE path LIKE './migrations/%' ORDER BY path LOOP
    EXECUTE r.content;
  END LOOP;
END $$;
"""


def test_successful_multi_unit_script(db) -> None:
    script = ("CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nCOMMIT;\n"
              "CREATE INDEX CONCURRENTLY a_id ON a (id);\nINSERT INTO a VALUES (2);\n")
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), verbose=True)
    result = run_units(db, split_units(script), out=out, script_text=script, script_expanded=False)
    assert result == ExecResult(units_total=3, units_committed=3)
    assert db.run("SELECT count(*) FROM a") == [[2]]
    assert db.run("SELECT count(*) FROM pg_indexes WHERE indexname = 'a_id'") == [[1]]
    assert "splits into 3 execution units" in out.stderr.getvalue()
    assert out.stdout.getvalue() == ""


def test_syntax_error_located_with_caret(db) -> None:
    script = "CREATE TABLE a (id int);\n\n  SELECT * FRM a;\n"
    error = _fail(db, script)
    assert error.message == 'execution failed: ERROR: syntax error at or near "FRM" (SQLSTATE 42601)'
    assert error.trailer == [
        "LOCATION: deploy.sql line 3, column 12",
        "LINE 3:   SELECT * FRM a;",
        " " * (len("LINE 3: ") + 11) + "^",
    ]
    assert error.details["line"] == 3 and error.details["column"] == 12
    assert error.details["script"] == "deploy.sql" and error.details["sourceLine"] == "  SELECT * FRM a;"
    assert error.details["scriptExpanded"] is False
    assert error.details["executionMode"] == "atomic" and error.details["unitsCommitted"] == 0
    assert error.details["executionUnits"] == 1 and error.details["sqlstate"] == "42601"
    assert exit_code(error) == Exit.EXECUTION
    caret_line = format_error(error).splitlines()[-1]
    assert caret_line.index("^") == format_error(error).splitlines()[-2].index("FRM")
    # the atomic head was one transaction: nothing of it stayed
    assert db.run("SELECT to_regclass('a') IS NULL") == [[True]]


def test_tail_failure_psql_mode_and_padding(db) -> None:
    script = ("CREATE TABLE a (id int);\nCOMMIT;\nINSERT INTO a VALUES (1);\n"
              "-- comment line\nSELECT x,\n       nope FROM a;\nSELECT 3;\n")
    error = _fail(db, script, expanded=True)
    assert error.details["executionMode"] == "psql"
    assert error.details["unitsCommitted"] == 2 and error.details["executionUnits"] == 4
    assert error.details["sqlstate"] == "42703"
    assert error.trailer[0] == ("LOCATION: deploy.sql line 5, column 8 (of the expanded script: pgmi_test() macros "
                                "shift line numbers relative to the file on disk)")
    assert error.trailer[1] == "LINE 5: SELECT x,"
    assert error.details["scriptExpanded"] is True
    assert db.run("SELECT id FROM a") == [[1]]  # earlier units really committed


def test_failed_in_file_message(db) -> None:
    script = "DO $$ BEGIN RAISE EXCEPTION 'Failed in ./migrations/001_init.sql: boom'; END $$;\n"
    error = _fail(db, script)
    assert error.details["failedFile"] == "./migrations/001_init.sql"
    assert error.details["sqlstate"] == "P0001"
    assert error.message == ("execution failed: ERROR: Failed in ./migrations/001_init.sql: boom (SQLSTATE P0001)")
    assert "line" not in error.details  # no Position for errors raised inside a function


def test_error_inside_executed_file_located(db) -> None:
    files = _load(db, {
        "./migrations/001_a.sql": "CREATE TABLE a (id int);\n",
        "./migrations/002_b.sql": "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\n\n    SELEC oops;\n",
        "./deploy.sql": RUN_FILES,
    })
    error = _fail(db, RUN_FILES, files)
    assert error.details["file"] == "./migrations/002_b.sql"
    assert (error.details["fileLine"], error.details["fileColumn"]) == (4, 5)
    assert error.details["fileSourceLine"] == "    SELEC oops;"
    assert error.trailer == ["FILE: ./migrations/002_b.sql:4:5", "LINE 4:     SELEC oops;",
                             " " * (len("LINE 4: ") + 4) + "^"]
    assert "line" not in error.details


def test_runtime_error_inside_executed_file(db) -> None:
    files = _load(db, {"./migrations/001_a.sql": "\n-- seed\nCREATE TABLE c (id int);\nINSERT INTO c VALUES (1/0);\n"})
    error = _fail(db, RUN_FILES, files)
    assert error.details["sqlstate"] == "22012"
    assert error.details["file"] == "./migrations/001_a.sql"
    # Two statements were EXECUTEd as one text and the server names no position in it: the
    # first line would be a guess; the first statement that divides is the candidate.
    assert (error.details["fileLine"], error.details["fileColumn"]) == (4, 24)
    assert error.details["locatedBy"] == "name" and error.details["fileExact"] is False
    assert error.trailer[0] == "CANDIDATE: ./migrations/001_a.sql:4:24 (the first division in the failing text)"


def test_runtime_error_without_a_clue_says_the_line_is_unknown(db) -> None:
    files = _load(db, {"./migrations/001_a.sql": "\n-- seed\nCREATE TABLE c (id int);\nSELECT sqrt(-1);\n"})
    error = _fail(db, RUN_FILES, files)
    assert error.details["sqlstate"] == "2201F"
    assert "fileLine" in error.details and error.details["fileLine"] is None
    assert error.trailer == [("FILE: ./migrations/001_a.sql (line unknown: the server gave no position inside the "
                              "EXECUTEd text, which holds 2 statements)")]
    assert error.details["locatedBy"] == "statement" and error.details["fileExact"] is False


def test_runtime_error_inside_a_one_statement_file_keeps_its_line(db) -> None:
    files = _load(db, {"./migrations/001_a.sql": "\n-- seed\nINSERT INTO c_missing_not VALUES (1/0);\n"})
    db.run("CREATE TABLE c_missing_not (a int)")
    error = _fail(db, RUN_FILES, files)
    assert error.details["sqlstate"] == "22012"
    assert error.details["fileLine"] == 3  # the one statement of the EXECUTEd text, comments skipped
    assert error.trailer[0] == ("FILE: ./migrations/001_a.sql:3:1 (start of the EXECUTEd text; the server gave no "
                                "position inside it)")
    assert error.details["locatedBy"] == "statement" and error.details["fileExact"] is True
    assert error.trailer[1] == "LINE 3: INSERT INTO c_missing_not VALUES (1/0);"


def test_nested_execute_syntax_error(db) -> None:
    outer = ("-- runs the inner file\nDO $o$\nBEGIN\n"
             "  EXECUTE (SELECT content FROM pg_temp.files WHERE path = './lib/inner.sql');\nEND $o$;\n")
    inner = "CREATE TABLE n (id int);\n\n  CREATE TABLE m (id int;\n"
    files = _load(db, {"./migrations/001_outer.sql": outer, "./lib/inner.sql": inner})
    error = _fail(db, RUN_FILES, files)
    assert error.details["file"] == "./lib/inner.sql"
    assert (error.details["fileLine"], error.details["fileColumn"]) == (3, 25)
    assert error.trailer[-1].index("^") == error.trailer[-2].index(";")


def test_raise_inside_executed_do_block_mapped_to_file_line(db) -> None:
    body = "-- header\nDO $i$\nBEGIN\n  PERFORM 1;\n  RAISE EXCEPTION 'boom';\nEND $i$;\n"
    files = _load(db, {"./migrations/001_do.sql": body})
    error = _fail(db, RUN_FILES, files)
    assert error.details["file"] == "./migrations/001_do.sql"
    assert (error.details["fileLine"], error.details["fileColumn"]) == (5, 3)
    assert error.details["fileSourceLine"] == "  RAISE EXCEPTION 'boom';"


def test_function_defined_in_file_mapped_to_body_line(db) -> None:
    func = ("CREATE FUNCTION app_div(a int) RETURNS int\nLANGUAGE plpgsql AS $body$\nBEGIN\n"
            "  RETURN 10 / a;\nEND $body$;\n")
    files = _load(db, {"./migrations/001_func.sql": func})
    error = _fail(db, RUN_FILES + "COMMIT;\nSELECT app_div(0);\n", files)
    assert error.details["executionMode"] == "psql"
    assert error.details["file"] == "./migrations/001_func.sql"
    assert (error.details["fileLine"], error.details["fileColumn"]) == (4, 3)


def test_same_text_in_two_files_reports_all_candidates(db) -> None:
    text = "CREATE TABLE d (id int);\nSELEC 1;\n"
    files = _load(db, {"./migrations/001_x.sql": text, "./backup/001_x.sql": text})
    error = _fail(db, RUN_FILES, files)
    assert error.details["file"] == "./backup/001_x.sql"  # first in path order
    assert error.details["fileCandidates"] == ["./backup/001_x.sql:2:1", "./migrations/001_x.sql:2:1"]
    assert error.trailer[0] == "CANDIDATE: ./backup/001_x.sql:2:1 (the same text is in 2 places)"
    assert error.trailer[-1] == "CANDIDATE: ./migrations/001_x.sql:2:1"
    assert error.details["fileExact"] is False


# ---- the locator without a server (constructed diagnostics) --------------------------------


def _locate(diag: PgDiagnostics, files: dict[str, str]):
    script = "SELECT 1;\n"
    return locate_failure(Failure(diag, split_units(script)[0], 0, 1, script, files))


def _spot(found) -> tuple:
    return (found.file, found.line, found.column, found.source_line)


def test_locate_prefers_exact_file_over_substring() -> None:
    query = "SELECT 1;\nSELEC 2;\n"
    files = {"./a.sql": "-- wrapper\n" + query, "./b.sql": query}
    found = _locate(PgDiagnostics(internal_query=query, internal_position=11), files)
    assert _spot(found) == ("./b.sql", 2, 1, "SELEC 2;")
    assert found.exact and found.located_by == "internal-position" and not found.candidates


def test_locate_unique_substring_and_ambiguous_substring() -> None:
    query = "SELEC 2;"
    files = {"./a.sql": "-- x\n  SELEC 2;\n", "./b.sql": "nothing"}
    found = _locate(PgDiagnostics(internal_query=query, internal_position=1), files)
    assert (found.file, found.line, found.column) == ("./a.sql", 2, 3)
    assert not found.candidates
    assert not found.exact  # a short text inside a file: deploy.sql may have built it
    found = _locate(PgDiagnostics(internal_query="SELEC 2 FROM pg_class", internal_position=1),
                    {"./a.sql": "SELEC 2 FROM pg_class\n"})
    assert found.exact and found.line == 1  # the whole file
    files["./c.sql"] = "SELEC 2;SELEC 2;"
    found = _locate(PgDiagnostics(internal_query=query, internal_position=1), files)
    assert found.candidates == ["./a.sql:2:3", "./c.sql:1:1", "./c.sql:1:9"]
    assert not found.exact


def test_locate_not_found_returns_none() -> None:
    assert _locate(PgDiagnostics(internal_query="SELEC 1", internal_position=1, where="x"), {"./a.sql": "x"}) is None
    assert _locate(PgDiagnostics(where="PL/pgSQL function f() line 1 at RAISE"), {}) is None


def test_locate_random_positions_map_back() -> None:
    """Property: for a query embedded anywhere in one file, every position maps to the same character."""
    import random

    rng = random.Random(99)
    for _ in range(300):
        query = "".join(rng.choice("ab ;\n\té") for _ in range(rng.randint(5, 40))) + "Z"
        prefix = "".join(rng.choice("xy\n") for _ in range(rng.randint(0, 20)))
        content = prefix + query + "\n-- end\n"
        position = rng.randint(1, len(query))
        found = _locate(PgDiagnostics(internal_query=query, internal_position=position),
                        {"./f.sql": content, "./g.sql": "other"})
        row = content.split("\n")[found.line - 1]
        char = query[position - 1]
        if char == "\n":
            assert found.column == len(row) + 1
        else:
            assert row[found.column - 1] == char


def test_lock_advice_on_out_of_shared_memory() -> None:
    diag = PgDiagnostics(severity="ERROR", sqlstate="53200", message="out of shared memory",
                         hint="You might need to increase max_locks_per_transaction.")
    advice = lock_advice(diag)
    assert advice and "max_locks_per_transaction" in advice and "restart" in advice and "several transactions" in advice
    units = split_units("SELECT 1;\n")
    error = build_failure(diag, units[0], 0, 1, script_text="SELECT 1;\n", script_expanded=False)
    assert error.trailer[-1] == advice
    assert error.trailer[0] == "FILE: deploy.sql:1:1 (the failing statement; the server gave no position inside it)"
    assert error.message == "execution failed: ERROR: out of shared memory (SQLSTATE 53200)"
    assert "HINT: You might need to increase max_locks_per_transaction." in format_error(error)
    pred = PgDiagnostics(message="out of shared memory", hint="You might need to increase max_pred_locks_per_transaction.")
    assert "max_pred_locks_per_transaction" in lock_advice(pred)
    assert lock_advice(PgDiagnostics(message="out of shared memory")) is None
    assert lock_advice(PgDiagnostics(message="deadlock detected", hint="max_locks_per_transaction")) is None


def test_raise_in_deploy_sql_do_block_located_by_keyword(db) -> None:
    script = ("DO $$\nBEGIN\n  PERFORM 1;\nEND $$;\n"
              "DO $a$\nDECLARE n int := 0;\nBEGIN\n  RAISE EXCEPTION 'stop here';\nEND $a$;\n")
    error = _fail(db, script)
    assert (error.details["file"], error.details["fileLine"], error.details["fileColumn"]) == ("deploy.sql", 8, 3)
    assert "fileCandidates" not in error.details  # line 4 of the first DO body is 'END $$;': not a RAISE
    assert error.trailer[0] == "FILE: deploy.sql:8:3"
    assert _fail(db, script, expanded=True).trailer[0].startswith("FILE: deploy.sql:8:3 (of the expanded script")


def test_trimmed_file_text_still_found(db) -> None:
    files = _load(db, {"./migrations/001_t.sql": "\n\n-- trimmed by the template\nSELECT 1;\n  SELEC 2;\n\n"})
    script = RUN_FILES.replace("EXECUTE r.content;", "EXECUTE btrim(r.content, E' \\n');")
    error = _fail(db, script, files)
    assert (error.details["file"], error.details["fileLine"], error.details["fileColumn"]) == (
        "./migrations/001_t.sql", 5, 3)


def test_two_do_blocks_in_executed_file(db) -> None:
    body = ("DO $one$\nBEGIN\n  PERFORM 1;\n  PERFORM 2;\nEND $one$;\n"
            "DO $two$\nBEGIN\n  PERFORM 1;\n  RAISE EXCEPTION 'second';\nEND $two$;\n")
    files = _load(db, {"./migrations/001_two.sql": body})
    error = _fail(db, RUN_FILES, files)
    assert (error.details["fileLine"], error.details["fileColumn"]) == (9, 3)
    assert "fileCandidates" not in error.details


def test_function_defined_twice_reports_candidates() -> None:
    body = "CREATE FUNCTION s.f(a int) RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1 / a;\nEND $$;\n"
    files = {"./a.sql": body, "./b.sql": "-- copy\n" + body.replace("FUNCTION s.f", "OR REPLACE FUNCTION f"),
             "./c.sql": "SELECT f(1);"}
    diag = PgDiagnostics(message="division by zero", where="PL/pgSQL function s.f(integer) line 3 at RETURN")
    found = _locate(diag, files)
    assert found.candidates == ["./a.sql:3:3", "./b.sql:4:3"]
    assert found.source_line == "  RETURN 1 / a;" and not found.exact


def test_position_counts_characters_not_bytes(db) -> None:
    """Multi-byte characters before the error, also before a tail unit's start on the same line."""
    script = "SELECT 'é'; COMMIT; SELECT 'ü€' AS x FRM t;\n"
    error = _fail(db, script)
    assert error.details["executionMode"] == "psql"
    assert (error.details["line"], error.details["column"]) == (1, script.index("FRM") + 1)
    assert error.trailer[-1].index("^") == error.trailer[-2].index("FRM")


def test_function_with_quoted_name_and_commented_out_copy() -> None:
    body = ('-- CREATE FUNCTION "MyF"(a int) old version\n'
            'CREATE FUNCTION "MyF"(a int) RETURNS int LANGUAGE plpgsql AS $f$\nBEGIN\n  RETURN 1 / a;\nEND $f$;\n')
    diag = PgDiagnostics(where='PL/pgSQL function "MyF"(integer) line 3 at RETURN')
    found = _locate(diag, {"./a.sql": body, "./b.sql": "CREATE FUNCTION myf(a int)"})
    assert _spot(found) == ("./a.sql", 4, 3, "  RETURN 1 / a;")
    assert found.exact and found.located_by == "plpgsql-line"
