"""Built-in database tests: planning, generation, isolation, failures, events (real PostgreSQL).

The deploy pipeline is exercised through a small harness of our own: scan a project,
session.prepare() it on a live connection, expand the macros with testing.expand_macros() and
send the expanded deploy.sql as one simple query, the way the atomic head is sent.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pgmilib.deploy import session, testing
from pgmilib.errors import ConfigError, PgDiagnostics, PgmiError, exit_code
from pgmilib.output import Output
from pgmilib.project.scan import scan

REPO = Path(__file__).resolve().parent.parent

GATED = "BEGIN;\n{before}CALL pgmi_test({args});\n{after}COMMIT;\n"


@dataclass
class Run:
    """A prepared session: the connection, the captured notices and the test events."""

    conn: object
    events: testing.TestEvents
    stderr: io.StringIO
    notices: list[PgDiagnostics] = field(default_factory=list)

    def messages(self) -> list[str]:
        return [n.message for n in self.notices]

    def deploy(self, text: str) -> str:
        """Expand and run `text`; on a server error roll back and re-raise it."""
        expanded, _count = testing.expand_macros(self.conn, text)
        try:
            self.conn.run(expanded)
        except Exception:
            self.conn.run("ROLLBACK")
            raise
        return expanded

    def scalar(self, sql: str):
        return self.conn.run(sql)[0][0]


def write_project(root: Path, files: dict[str, str], deploy: str = "SELECT 1;\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "deploy.sql").write_text(deploy)
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


@pytest.fixture
def open_session(pg, fresh_db, tmp_path):
    """open_session(files, *, tty=False) -> Run on a fresh database with `files` loaded."""
    from pgmilib.conn.connect import LiveConnection

    opened: list[Run] = []

    def make(files: dict[str, str], *, tty: bool = False, name: str = "proj", verbose: bool = False) -> Run:
        root = write_project(tmp_path / name, files)
        stderr = _Tty() if tty else io.StringIO()
        out = Output(stderr=stderr, stdout=io.StringIO(), verbose=verbose)
        events = testing.TestEvents(out)
        run = Run(conn=None, events=events, stderr=stderr)

        def hook(diag: PgDiagnostics) -> None:
            if not events.on_notice(diag):
                run.notices.append(diag)

        run.conn = LiveConnection(on_notice=hook, **pg.conn_kwargs(fresh_db))
        session.prepare(run.conn, scan(root), {}, out=out)
        opened.append(run)
        return run

    yield make
    for run in opened:
        run.conn.close()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def rows(run: Run, pattern: str | None = None) -> list[tuple]:
    return [tuple(r) for r in run.conn.run(
        "SELECT step_type, coalesce(script_path, directory) FROM pg_temp.pgmi_test_plan(CAST(:p AS text))",
        p=pattern)]


PLAN_TREE = {
    "__test__/_setup.sql": "SELECT 1;",
    "__test__/test_basic.sql": "SELECT 1;",
    "__test__/auth/_setup.sql": "SELECT 1;",
    "__test__/auth/test_login.sql": "SELECT 1;",
    "__test__/auth/oauth/test_google.sql": "SELECT 1;",
    "__test__/billing/test_stripe.sql": "SELECT 1;",
}


# ---- macro finding (no server) --------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("CALL pgmi_test();", [(None, None)]),
    ("call PG_TEMP.pgmi_test ( 'a.*' , 'pg_temp.cb' ) ;", [("a.*", "pg_temp.cb")]),
    ("CALL pgmi_test(NULL, 'pg_temp.cb')", [(None, "pg_temp.cb")]),
    ("CALL pgmi_test('')", [(None, None)]),
    ("-- CALL pgmi_test();\n/* CALL pgmi_test(); */ SELECT 'CALL pgmi_test();';", []),
    ("DO $$ BEGIN CALL pgmi_test(); END $$;", []),
    ("SELECT pgmi_test(); PERFORM pgmi_test(); CALL pgmi_testing(); CALL pgmi_test", []),
    ("CALL pgmi_test('x', NULL); CALL pgmi_test('it''s'); CALL pgmi_test(E'x');", []),
    ("xCALL pgmi_test();", []),
    ("CALL pgmi_test();CALL pgmi_test();", [(None, None)]),
    ("CALL pgmi_test(); CALL pgmi_test('b');", [(None, None), ("b", None)]),
])
def test_find_macros_follows_the_grammar(text, expected):
    assert [(m.pattern, m.callback) for m in testing.find_macros(text)] == expected


def test_macro_span_excludes_the_boundary_and_swallows_the_semicolon():
    text = "BEGIN;\nCALL pgmi_test('a') ;\nCOMMIT;"
    (macro,) = testing.find_macros(text)
    assert text[macro.start:macro.end] == "CALL pgmi_test('a') ;"
    assert text[macro.start - 1] == "\n"


@pytest.mark.parametrize("callback, fragment", [
    ("a.b.c", "expected [schema.]function format"),
    ("pg_temp.", "empty identifier"),
    ("x" * 64, "exceeds 63 character limit"),
    ("pg_temp.1cb", '"1cb" is not a valid identifier'),
])
def test_bad_callback_names_are_refused_before_any_sql(callback, fragment):
    with pytest.raises(PgmiError) as caught:
        testing.expand_macros(None, f"CALL pgmi_test(NULL, '{callback}');")
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("failed to preprocess deploy.sql: invalid callback")
    assert exit_code(caught.value) == 1


@pytest.mark.parametrize("spec, expected", [
    ("junit:out/r.xml", ("junit", Path("out/r.xml"))),
    ("TAP:r.tap", ("tap", Path("r.tap"))),
    ("json:C:\\r.json", ("json", Path("C:\\r.json"))),
])
def test_parse_report_spec(spec, expected):
    assert testing.parse_report_spec(spec) == expected


@pytest.mark.parametrize("spec", ["junit", "xml:r.xml", "junit:", ":r.xml"])
def test_parse_report_spec_rejects_bad_specs(spec):
    with pytest.raises(ConfigError, match="--test-report"):
        testing.parse_report_spec(spec)


# ---- the plan ------------------------------------------------------------------------------

def test_plan_is_depth_first_with_fixtures_first_and_one_teardown_per_directory(open_session):
    run = open_session(PLAN_TREE)
    assert rows(run) == [
        ("fixture", "./__test__/_setup.sql"), ("test", "./__test__/test_basic.sql"),
        ("fixture", "./__test__/auth/_setup.sql"), ("test", "./__test__/auth/test_login.sql"),
        ("test", "./__test__/auth/oauth/test_google.sql"), ("teardown", "./__test__/auth/oauth/"),
        ("teardown", "./__test__/auth/"), ("test", "./__test__/billing/test_stripe.sql"),
        ("teardown", "./__test__/billing/"), ("teardown", "./__test__/"),
    ]
    assert [r[0] for r in run.conn.run("SELECT ordinal FROM pg_temp.pgmi_test_plan()")] == list(range(1, 11))


def test_plan_pattern_keeps_ancestor_fixtures_and_drops_irrelevant_directories(open_session):
    run = open_session(PLAN_TREE)
    assert rows(run, "oauth") == [
        ("fixture", "./__test__/_setup.sql"), ("fixture", "./__test__/auth/_setup.sql"),
        ("test", "./__test__/auth/oauth/test_google.sql"), ("teardown", "./__test__/auth/oauth/"),
        ("teardown", "./__test__/auth/"), ("teardown", "./__test__/"),
    ]
    assert run.scalar("SELECT pg_temp.pgmi_has_tests('./__test__/auth/', 'google')") is True
    assert run.scalar("SELECT pg_temp.pgmi_has_tests('./__test__/billing/', 'google')") is False


def test_plan_orders_siblings_bytewise_and_handles_gaps(open_session):
    run = open_session({
        "__test__/testc.sql": "", "__test__/test_a.sql": "", "__test__/test-b.sql": "",
        "__test__/sub/deep/test_z.sql": "",
    })
    assert rows(run) == [
        ("test", "./__test__/test-b.sql"), ("test", "./__test__/test_a.sql"), ("test", "./__test__/testc.sql"),
        ("test", "./__test__/sub/deep/test_z.sql"), ("teardown", "./__test__/sub/deep/"),
        ("teardown", "./__test__/"),
    ]
    assert run.scalar("SELECT depth FROM pg_temp.pgmi_test_plan() WHERE script_path LIKE '%test_z%'") == 2


def test_persist_test_plan_writes_a_permanent_table(open_session):
    run = open_session(PLAN_TREE)
    run.conn.run("CREATE SCHEMA ci")
    run.conn.run("SELECT pg_temp.pgmi_persist_test_plan('ci', 'billing')")
    run.conn.run("SELECT pg_temp.pgmi_persist_test_plan('ci', 'billing')")  # truncates, no duplicates
    assert run.conn.run("SELECT step_type, script_path FROM ci.pgmi_test_plan ORDER BY ordinal") == [
        ["fixture", "./__test__/_setup.sql"], ["test", "./__test__/billing/test_stripe.sql"],
        ["teardown", None], ["teardown", None]]
    assert run.notices == []


# ---- generation ----------------------------------------------------------------------------

def test_generated_sql_follows_the_savepoint_layout(open_session):
    run = open_session({"__test__/_setup.sql": "", "__test__/test_a.sql": "", "__test__/test_b.sql": ""})
    text = run.scalar("SELECT pg_temp.pgmi_test_generate()")
    lines = text.split("\n")
    assert not text.endswith("\n")
    ev = "SELECT pg_temp.pgmi_test_callback(ROW({}, NULL)::pg_temp.pgmi_test_event);"
    assert lines[0] == ev.format("'suite_start', NULL, '', 0, 0")
    assert lines[1] == "SAVEPOINT __pgmi_d1__;"
    assert lines[3] == "SELECT pg_temp.pgmi_run_test_source('./__test__/_setup.sql', 0, 2);"
    assert lines[5] == "SAVEPOINT __pgmi_t2__;"
    assert [ln for ln in lines if ln.startswith("ROLLBACK")] == [
        "ROLLBACK TO SAVEPOINT __pgmi_t2__;", "ROLLBACK TO SAVEPOINT __pgmi_t2__;", "ROLLBACK TO SAVEPOINT __pgmi_d1__;"]
    assert "RELEASE SAVEPOINT __pgmi_d1__;" in lines
    assert lines[-1] == ev.format("'suite_end', NULL, '', 0, 4")
    assert "$__pgmi__$" not in text


def test_callback_name_is_checked_by_the_server_too(open_session):
    run = open_session({"__test__/test_a.sql": ""})
    with pytest.raises(Exception) as caught:
        run.conn.run("SELECT pg_temp.pgmi_test_generate(NULL, 'x; DROP TABLE y')")
    assert caught.value.args[0]["C"] == "22023"
    assert "Invalid callback name" in caught.value.args[0]["M"]


def test_only_the_contract_functions_live_in_pg_temp(open_session):
    run = open_session({})
    names = {r[0] for r in run.conn.run(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = pg_my_temp_schema()")}
    mine = {"pgmi_run_test_source", "pgmi_test_callback", "pgmi_validate_pattern", "pgmi_has_tests",
            "pgmi_test_plan", "pgmi_persist_test_plan", "pgmi_test_generate"}
    assert mine <= names
    assert not {n for n in names if n.startswith("pgmi_")} - mine - {"pgmi_register_file", "pgmi_is_sql_file"}


def test_session_scripts_rerun_in_the_same_session(open_session):
    run = open_session({"__test__/test_a.sql": ""})
    for name in ("session_schema.sql", "session_tests.sql", "session_contract_v1.sql",
                 "session_contract_v1_tests.sql"):
        session.run_script(run.conn, name)
    assert run.scalar("SELECT count(*) FROM pg_temp.pgmi_test_plan()") == 0  # tables were recreated empty
    assert run.notices == []


# ---- running suites ------------------------------------------------------------------------

ITEMS = {
    "__test__/_setup.sql": "INSERT INTO item VALUES ('root-fixture');\n",
    "__test__/test_a.sql": "INSERT INTO item VALUES ('from-a');\nINSERT INTO seen SELECT 'a', count(*) FROM item;\n",
    "__test__/test_b.sql": "INSERT INTO seen SELECT 'b', count(*) FROM item;\n",
    "__test__/sub/_setup.sql": "INSERT INTO item VALUES ('sub-fixture');\n",
    "__test__/sub/test_c.sql": "INSERT INTO seen SELECT 'c', count(*) FROM item;\n",
    "__test__/zzz/test_d.sql": "INSERT INTO seen SELECT 'd', count(*) FROM item;\n",
}

# `seen` is written through a sequence-free trick: each test's snapshot is copied to a
# notice, because the rows themselves are rolled back with the test (that is the point).
SNAPSHOT = """CREATE FUNCTION pg_temp.snap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'seen % %', NEW.who, NEW.n; RETURN NEW; END $$;
CREATE TRIGGER snap AFTER INSERT ON seen FOR EACH ROW EXECUTE FUNCTION pg_temp.snap();
"""


def test_tests_are_isolated_and_fixtures_apply_to_their_subtree(open_session):
    run = open_session(ITEMS)
    run.deploy("BEGIN;\nCREATE TABLE item(name text);\nCREATE TABLE seen(who text, n bigint);\n" + SNAPSHOT
               + "CALL pgmi_test();\nCOMMIT;\n")
    seen = [m for m in run.messages() if m.startswith("seen ")]
    # a: root fixture + own row; b: only the root fixture (a's row rolled back);
    # c: root + sub fixture; d: root fixture only (sub fixture torn down).
    assert seen == ["seen a 2", "seen b 1", "seen c 2", "seen d 1"]
    # the migration before the call persists; fixture and test rows do not
    assert run.scalar("SELECT count(*) FROM item") == 0
    assert run.scalar("SELECT to_regclass('public.seen') IS NOT NULL") is True
    assert "[pgmi] Test: ./__test__/sub/test_c.sql" in run.messages()
    assert run.messages()[-1] == "[pgmi] Test suite completed (9 steps)"


def test_pattern_runs_only_matching_tests_with_their_fixtures(open_session):
    run = open_session(ITEMS)
    run.deploy("BEGIN;\nCREATE TABLE item(name text);\nCREATE TABLE seen(who text, n bigint);\n" + SNAPSHOT
               + "CALL pgmi_test('/sub/');\nCOMMIT;\n")
    assert [m for m in run.messages() if m.startswith("seen ")] == ["seen c 2"]
    assert [r.path for s in run.events.suites for r in s.results] == [
        "./__test__/_setup.sql", "./__test__/sub/_setup.sql", "./__test__/sub/test_c.sql"]
    assert run.events.suites[0].total == 1


def test_failing_test_aborts_everything_with_path_message_and_line(open_session):
    run = open_session({
        "migrations/001.sql": "CREATE TABLE t(x int);",
        "__test__/test_a_fails.sql": "SELECT 1;\n\nDO $$\nBEGIN\n  IF true THEN\n"
                                     "    RAISE EXCEPTION 'boom %', 42 USING DETAIL = 'the detail';\n"
                                     "  END IF;\nEND $$;\n",
        "__test__/test_b_never.sql": "SELECT 1;",
    })
    with pytest.raises(Exception) as caught:
        run.deploy("BEGIN;\nDO $$ BEGIN EXECUTE (SELECT content FROM pg_temp.pgmi_source_view "
                   "WHERE path = './migrations/001.sql'); END $$;\nCALL pgmi_test();\nCOMMIT;\n")
    fields = caught.value.args[0]
    assert fields["M"] == "Failed in ./__test__/test_a_fails.sql: boom 42"
    assert fields["C"] == "P0001"
    assert fields["D"] == "the detail"
    assert "at ./__test__/test_a_fails.sql line 6" in fields["H"]
    assert run.scalar("SELECT to_regclass('public.t') IS NULL") is True  # the migration rolled back too
    (suite,) = run.events.suites
    (result,) = suite.tests
    assert (result.status, result.line, result.sqlstate, suite.not_run) == ("failed", 6, "P0001", 1)
    assert result.context == "PL/pgSQL function inline_code_block line 4 at RAISE"  # no copy of the file
    assert result.duration_ms >= 0


def test_assert_failures_are_wrapped_too(open_session):
    run = open_session({"__test__/test_x.sql": "DO $$ BEGIN\n  ASSERT 1 = 2, 'one is not two';\nEND $$;"})
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="", args="", after=""))
    assert caught.value.args[0]["M"] == "Failed in ./__test__/test_x.sql: one is not two"
    assert caught.value.args[0]["C"] == "P0004"
    assert "line 2" in caught.value.args[0]["H"]


@pytest.mark.parametrize("content, sqlstate, fragment", [
    ("SELECT 1;\nSELEC 2;\n", "42601", 'syntax error at or near "SELEC"'),
    ("COMMIT;", "0A000", "transaction commands"),
    ("ROLLBACK;", "0A000", "transaction commands"),
    ("CALL pgmi_test();", "42883", "procedure pgmi_test() does not exist"),
])
def test_bad_test_files_fail_with_the_file_named(open_session, content, sqlstate, fragment):
    run = open_session({"__test__/test_bad.sql": content})
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="CREATE TABLE kept(x int);\n", args="", after=""))
    fields = caught.value.args[0]
    assert fields["M"].startswith("Failed in ./__test__/test_bad.sql: ")
    assert fragment in fields["M"]
    assert fields["C"] == sqlstate
    assert run.scalar("SELECT to_regclass('public.kept') IS NULL") is True
    if sqlstate == "42601":
        assert "at ./__test__/test_bad.sql line 2" in fields["H"]
    if sqlstate == "42883":
        assert "cannot start a nested test suite" in fields["H"]


def test_failing_setup_stops_the_suite_and_is_reported_as_a_fixture(open_session):
    run = open_session({"__test__/_setup.sql": "INSERT INTO missing VALUES (1);", "__test__/test_a.sql": ""})
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="", args="", after=""))
    assert caught.value.args[0]["M"].startswith("Failed in ./__test__/_setup.sql: relation \"missing\"")
    (suite,) = run.events.suites
    assert [(r.kind, r.status) for r in suite.results] == [("fixture", "failed")]
    assert suite.not_run == 1


def test_no_tests_and_unmatched_pattern_fail_at_execution(open_session):
    run = open_session({"__test__/test_a.sql": ""}, name="one")
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="", args="'nothing-matches-this'", after=""))
    assert caught.value.args[0]["M"] == "pgmi: no tests matched the requested pattern"
    assert caught.value.args[0]["C"] == "P0002"
    empty = open_session({}, name="two")
    with pytest.raises(Exception) as caught:
        empty.deploy(GATED.format(before="", args="", after=""))
    assert caught.value.args[0]["M"] == "pgmi: no tests were discovered"


def test_invalid_regex_fails_while_expanding_with_exit_1(open_session):
    run = open_session({"__test__/test_a.sql": ""})
    with pytest.raises(PgmiError) as caught:
        run.deploy(GATED.format(before="", args="'./users/**'", after=""))
    message = str(caught.value)
    assert message.startswith("failed to preprocess deploy.sql: failed to call pgmi_test_generate: ERROR: ")
    assert "Invalid regex pattern: ./users/**" in message
    assert exit_code(caught.value) == 1
    assert caught.value.pg is not None and caught.value.pg.sqlstate == "P0001"


def test_missing_callback_fails_at_execution_with_42883(open_session):
    run = open_session({"__test__/test_a.sql": ""})
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="", args="NULL, 'pg_temp.no_such_callback'", after=""))
    assert caught.value.args[0]["C"] == "42883"
    assert "no_such_callback" in caught.value.args[0]["M"]


def test_savepoint_needs_an_explicit_transaction(open_session):
    run = open_session({"__test__/test_a.sql": ""})
    with pytest.raises(Exception) as caught:
        run.deploy("CALL pgmi_test();\n")
    assert caught.value.args[0]["C"] == "25P01"


def test_custom_callback_sees_the_event_stream_and_only_three_rows_persist(open_session):
    run = open_session({"__test__/_setup.sql": "", "__test__/test_a.sql": "", "__test__/deep/er/test_b.sql": ""})
    run.deploy(
        "BEGIN;\nCREATE TABLE log(event text, path text, depth int, ordinal int);\n"
        "CREATE FUNCTION pg_temp.cb(e pg_temp.pgmi_test_event) RETURNS void LANGUAGE plpgsql AS $$\n"
        "BEGIN INSERT INTO log VALUES (e.event, e.path, e.depth, e.ordinal); RAISE NOTICE 'ev %', e.event; END $$;\n"
        "CALL pgmi_test(NULL, 'pg_temp.cb');\nCOMMIT;\n")
    events = [m[3:] for m in run.messages() if m.startswith("ev ")]
    assert events == ["suite_start", "fixture_start", "fixture_end", "test_start", "test_end", "rollback",
                      "test_start", "test_end", "rollback", "teardown_start", "teardown_end",
                      "teardown_start", "teardown_end", "suite_end"]
    assert run.conn.run("SELECT event, depth, ordinal FROM log ORDER BY ordinal, event = 'suite_end'") == [
        ["suite_start", 0, 0], ["teardown_end", 0, 5], ["suite_end", 0, 5]]
    assert not any(m.startswith("[pgmi]") for m in run.messages())  # the default reporter was replaced


def test_event_messages_are_consumed_and_default_notices_kept(open_session):
    run = open_session({"__test__/_setup.sql": "", "__test__/test_x.sql": ""})
    run.conn.run("SET client_min_messages = warning")  # INFO still arrives: events cannot be muted
    run.deploy(GATED.format(before="SET LOCAL client_min_messages = notice;\n", args="", after=""))
    assert run.messages() == ["[pgmi] Test suite started", "[pgmi] Fixture: ./__test__/_setup.sql",
                              "[pgmi] Test: ./__test__/test_x.sql", "[pgmi] Test suite completed (3 steps)"]
    assert testing.EVENT_MESSAGE not in run.stderr.getvalue()
    assert "[1/1]" not in run.stderr.getvalue()  # off a terminal pgmi's own progress lines need --verbose


def test_progress_lines_off_a_terminal_come_with_verbose(open_session):
    run = open_session({"__test__/test_x.sql": ""}, verbose=True)
    run.deploy(GATED.format(before="SET LOCAL client_min_messages = notice;\n", args="", after=""))
    assert re.search(r"^\[1/1\] ok \./__test__/test_x\.sql \(\d+\.\d ms\)$", run.stderr.getvalue(), re.MULTILINE)
    assert "[pgmi] Test: ./__test__/test_x.sql" in run.messages()  # the default callback's notices as well


def test_progress_on_a_terminal_rewrites_one_line(open_session):
    run = open_session({"__test__/test_a.sql": "", "__test__/test_b.sql": ""}, tty=True)
    run.deploy(GATED.format(before="", args="", after=""))
    text = run.stderr.getvalue()
    assert "\r\x1b[K[1/2] ./__test__/test_a.sql" in text
    assert "\r\x1b[K[2/2] ./__test__/test_b.sql" in text
    assert " ok " not in text


def test_two_macros_make_two_suites(open_session):
    run = open_session({"__test__/test_a.sql": "", "__test__/x/test_b.sql": ""})
    expanded = run.deploy("BEGIN;\nCALL pgmi_test('test_a');\nCALL pgmi_test();\nCOMMIT;\n")
    assert expanded.count("suite_start") == 2
    assert [(s.total, [r.path for r in s.tests]) for s in run.events.suites] == [
        (1, ["./__test__/test_a.sql"]), (2, ["./__test__/test_a.sql", "./__test__/x/test_b.sql"])]


def test_reports_are_written_after_a_failure(open_session, tmp_path):
    run = open_session({"__test__/test_a.sql": "SELECT 1;", "__test__/test_b.sql": "SELECT 1/0;",
                        "__test__/test_c.sql": ""})
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="", args="", after=""))
    junit, tap, js = tmp_path / "r" / "junit.xml", tmp_path / "r.tap", tmp_path / "r.json"
    run.events.write_reports([f"junit:{junit}", f"tap:{tap}", f"json:{js}"], PgmiError(caught.value.args[0]["M"]))
    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    failure = suite.findall("testcase")[1].find("failure")
    assert failure.get("message") == "division by zero" and failure.get("type") == "22012"
    assert tap.read_text().splitlines()[:3] == ["TAP version 13", "1..3", "ok 1 - ./__test__/test_a.sql"]
    doc = json.loads(js.read_text())
    assert (doc["status"], doc["passed"], doc["failed"], doc["notRun"]) == ("failed", 1, 1, 1)


def test_report_problems_do_not_hide_the_deploy_error(open_session, tmp_path):
    run = open_session({"__test__/test_a.sql": ""})
    blocker = tmp_path / "file"
    blocker.write_text("")
    run.events.write_reports([f"json:{blocker}/r.json"], RuntimeError("deploy failed"))
    assert "WARNING: cannot write test report" in run.stderr.getvalue()
    with pytest.raises(PgmiError, match="cannot write test report"):
        run.events.write_reports([f"json:{blocker}/r.json"], None)


# ---- the shipped examples ------------------------------------------------------------------

def example_session(open_session, name: str, extra: dict[str, str] | None = None) -> tuple[Run, str]:
    base = REPO / "examples" / name
    files = {str(p.relative_to(base)): p.read_text() for p in base.rglob("*")
             if p.is_file() and p.name != "deploy.sql" and "break-it" not in p.parts}
    files.update(extra or {})
    return open_session(files, name=name), (base / "deploy.sql").read_text()


def test_example_test_gated_deploy_passes_and_commits(open_session):
    run, deploy = example_session(open_session, "test-gated-deploy")
    run.deploy(deploy)
    assert run.conn.run('SELECT email, display_name FROM "user"') == [["admin@example.com", "Administrator"]]
    assert run.scalar("SELECT count(*) FROM audit_log") == 0
    assert "[pgmi] Test: ./__test__/test_user_crud.sql" in run.messages()
    assert run.messages()[-1] == "DONE: migrations committed, every test passed"


def test_example_test_gated_deploy_break_it_commits_nothing(open_session):
    broken = (REPO / "examples/test-gated-deploy/break-it/test_audit_log.sql").read_text()
    run, deploy = example_session(open_session, "test-gated-deploy", {"__test__/test_audit_log.sql": broken})
    with pytest.raises(Exception) as caught:
        run.deploy(deploy)
    assert caught.value.args[0]["M"] == "Failed in ./__test__/test_audit_log.sql: audit_log must contain a deploy event"
    assert caught.value.args[0]["C"] == "P0001"
    assert run.scalar("SELECT to_regclass('public.audit_log') IS NULL AND to_regclass('public.\"user\"') IS NULL")
    assert [r.path for r in run.events.suites[0].tests] == ["./__test__/test_audit_log.sql"]


def test_example_tap_reporter_prints_tap(open_session):
    run, deploy = example_session(open_session, "tap-reporter")
    run.deploy(deploy)
    assert run.messages() == ["TAP version 14", "1..2", "ok 1 - ./__test__/test_insert.sql",
                              "ok 2 - ./__test__/test_update.sql"]
    assert run.scalar("SELECT count(*) FROM item") == 0


def test_a_test_cut_off_by_a_timeout_is_reported_as_interrupted(open_session, tmp_path):
    run = open_session({"__test__/test_slow.sql": "SELECT pg_sleep(5);"})
    with pytest.raises(Exception) as caught:
        run.deploy(GATED.format(before="SET LOCAL statement_timeout = '300ms';\n", args="", after=""))
    assert caught.value.args[0]["C"] == "57014"
    report = tmp_path / "r.xml"
    run.events.write_reports([f"junit:{report}"], PgmiError("deadline exceeded"))
    import xml.etree.ElementTree as ET

    error = ET.parse(report).getroot().find("testsuite/testcase/error")
    assert (error.get("type"), error.get("message")) == ("interrupted", "deadline exceeded")


def _event(**fields) -> PgDiagnostics:
    return PgDiagnostics(severity="INFO", message=testing.EVENT_MESSAGE, detail=json.dumps(fields))


def test_on_notice_consumes_only_well_formed_events_and_keeps_stdout_clean():
    stdout, stderr = io.StringIO(), io.StringIO()
    events = testing.TestEvents(Output(json_mode=True, verbose=True, stdout=stdout, stderr=stderr))
    assert events.on_notice(PgDiagnostics(severity="NOTICE", message="[pgmi] Test: ./__test__/a.sql")) is False
    assert events.on_notice(PgDiagnostics(severity="INFO", message=testing.EVENT_MESSAGE, detail="not json")) is False
    assert events.on_notice(_event(event="start", kind="test", path="./__test__/a.sql", index=1, total=2)) is True
    assert events.on_notice(_event(event="pass", kind="test", path="./__test__/a.sql", index=1, total=2,
                                   ms=1.5)) is True
    assert events.on_notice(_event(event="start", kind="test", path="./__test__/b.sql", index=2, total=2)) is True
    assert events.on_notice(_event(event="fail", kind="test", path="./__test__/b.sql", index=2, total=2, ms=2,
                                   sqlstate="P0001", message="boom", line=3)) is True
    (suite,) = events.suites
    assert [(r.path, r.status, r.duration_ms, r.line) for r in suite.results] == [
        ("./__test__/a.sql", "passed", 1.5, None), ("./__test__/b.sql", "failed", 2.0, 3)]
    assert stdout.getvalue() == ""
    assert stderr.getvalue().splitlines() == ["[1/2] ok ./__test__/a.sql (1.5 ms)",
                                              "[2/2] FAILED ./__test__/b.sql (2.0 ms)"]
