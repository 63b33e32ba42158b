"""Report renderers: JUnit XML structure CI tools accept, TAP 13, JSON (no server needed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from pgmilib.deploy import reports
from pgmilib.deploy.reports import FAILED, PASSED, RUNNING, SuiteResult, TestResult


def sample() -> list[SuiteResult]:
    return [SuiteResult(total=3, results=[
        TestResult("./__test__/_setup.sql", "fixture", 0, PASSED, 1.0),
        TestResult("./__test__/test_a.sql", "test", 1, PASSED, 2.5),
        TestResult("./__test__/auth/test_b.sql", "test", 2, FAILED, 4.25, sqlstate="P0001",
                   message='boom <&> "quoted"', detail="the detail", line=7),
    ])]


def test_junit_structure():
    root = ET.fromstring(reports.junit_xml(sample()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "pgmi_test"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("time")) == (
        "2", "1", "0", "0.008")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["./__test__/test_a.sql", "./__test__/auth/test_b.sql"]
    assert [c.get("classname") for c in cases] == ["__test__", "__test__.auth"]
    assert cases[0].get("time") == "0.003" and cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure.get("message") == 'boom <&> "quoted"' and failure.get("type") == "P0001"
    assert failure.text.startswith("./__test__/auth/test_b.sql:7: boom")
    assert "DETAIL: the detail" in failure.text
    # the fourth planned test never ran: a property first, a system-out line last
    assert suite[0].tag == "properties"
    assert suite[0][0].attrib == {"name": "pgmi.not_run", "value": "1"}
    assert "1 of 3 planned test(s) did not run" in suite.find("system-out").text


def test_junit_failed_fixture_and_interrupted_test_are_errors():
    suites = [SuiteResult(total=1, results=[
        TestResult("./__test__/_setup.sql", "fixture", 0, FAILED, sqlstate="42P01", message="no table")]),
        SuiteResult(total=1, results=[TestResult("./__test__/test_x.sql", "test", 1, RUNNING,
                                                 message="deadline exceeded")])]
    root = ET.fromstring(reports.junit_xml(suites))
    assert [s.get("name") for s in root] == ["pgmi_test #1", "pgmi_test #2"]
    assert root.get("errors") == "2" and root.get("failures") == "0"
    assert root[0].find("testcase/error").get("type") == "42P01"
    assert root[1].find("testcase/error").get("type") == "interrupted"


def test_junit_unexplained_deploy_error_gets_its_own_entry():
    root = ET.fromstring(reports.junit_xml([], "execution failed: relation \"x\" does not exist"))
    case = root.find("testsuite/testcase")
    assert case.get("name") == "deploy.sql"
    assert "does not exist" in case.find("error").get("message")
    assert root.get("errors") == "1"


def test_junit_parses_with_junitparser(tmp_path):
    import junitparser  # test dependency (requirements-dev.txt): an independent JUnit reader
    path = tmp_path / "r.xml"
    path.write_text(reports.junit_xml(sample()))
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [case for suite in xml for case in suite]
    assert [c.name for c in cases] == ["./__test__/test_a.sql", "./__test__/auth/test_b.sql"]
    assert not cases[0].result and cases[1].result[0].message.startswith("boom")


def test_tap():
    lines = reports.tap(sample()).splitlines()
    assert lines[:2] == ["TAP version 13", "1..3"]
    assert "ok 1 - ./__test__/test_a.sql" in lines
    assert "not ok 2 - ./__test__/auth/test_b.sql" in lines
    assert '  message: "boom <&> \\"quoted\\""' in lines
    assert '  at: "./__test__/auth/test_b.sql:7"' in lines
    assert lines[-1] == "ok 3 - (not run) # SKIP the suite stopped at an earlier failure"


def test_tap_with_nothing_run():
    assert reports.tap([], "boom").splitlines() == ["TAP version 13", "1..0 # SKIP no test ran", "# deploy failed: boom"]


def test_json_report():
    doc = json.loads(reports.json_report(sample(), "execution failed: boom"))
    assert (doc["status"], doc["tests"], doc["passed"], doc["failed"], doc["notRun"]) == ("failed", 3, 1, 1, 1)
    assert doc["durationMs"] == 7.75
    failed = doc["suites"][0]["results"][2]
    assert failed["error"] == {"message": 'boom <&> "quoted"', "sqlstate": "P0001", "detail": "the detail", "line": 7}
    assert json.loads(reports.json_report([SuiteResult(1, [sample()[0].results[1]])]))["status"] == "passed"


def test_junit_survives_control_characters():
    bad = [SuiteResult(1, [TestResult("./__test__/t.sql", "test", 1, FAILED, message="bell\x07 and nul\x00")])]
    failure = ET.fromstring(reports.junit_xml(bad)).find("testsuite/testcase/failure")
    assert failure.get("message") == "bell? and nul?"
