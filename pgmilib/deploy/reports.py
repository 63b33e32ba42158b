"""Test reports for CI: JUnit XML, TAP 13 and a JSON document, from the recorded test results.

Why here and not in SQL: the results only exist once the server has streamed its test events
back (pgmilib.testing.TestEvents); a report file is a client-side artefact, written even when
the deploy failed, because a failing run is exactly when CI needs one.

What a report can and cannot know: the server announces each test as it starts, so tests that
never ran (the suite stops at the first failure) are known only by count. They appear as a
`notRun` number (JSON), a `pgmi.not_run` property plus a system-out line (JUnit) and SKIP lines
(TAP). Fixtures appear only when they fail, as an error entry; passing fixtures are setup, not
results (the JSON report lists them too). Durations are measured on the server with clock_timestamp().
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from pgmilib.records import field, record

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

PASSED = "passed"
FAILED = "failed"
RUNNING = "running"  # started, no end event: interrupted (timeout, cancel, connection loss)


@record
class TestResult:
    """One executed test or fixture file, as the server reported it."""

    __test__ = False  # not a pytest class, despite the name

    path: str
    kind: str  # "test" | "fixture"
    index: int  # 1-based position among the suite's tests (fixtures: tests done before it)
    status: str = RUNNING
    duration_ms: float = 0.0
    sqlstate: str = ""
    message: str = ""
    detail: str = ""
    hint: str = ""
    context: str = ""
    line: int | None = None

    @property
    def directory(self) -> str:
        return self.path[: self.path.rfind("/") + 1]

    def location(self) -> str:
        """`./__test__/x.sql:12` when the failing line is known, else the path."""
        return f"{self.path}:{self.line}" if self.line else self.path


@record
class SuiteResult:
    """One expanded `CALL pgmi_test(...)`: the tests it planned and the results it produced."""

    total: int = 0
    results: list[TestResult] = field(default_factory=list)

    @property
    def tests(self) -> list[TestResult]:
        return [r for r in self.results if r.kind == "test"]

    @property
    def not_run(self) -> int:
        return max(self.total - len(self.tests), 0)

    @property
    def duration_ms(self) -> float:
        return sum(r.duration_ms for r in self.results)


_TEXT_FIELDS = ("path", "message", "detail", "hint", "context", "sqlstate")


def redacted(suites: Sequence[SuiteResult]) -> list[SuiteResult]:
    """Copies with every string passed through `redact`, before any escaping can hide a secret
    from it (XML and JSON escape quotes and ampersands a secret may contain). A failing test
    can echo a parameter; report files outlive the run and land in CI artefacts."""
    from pgmilib.records import replace
    from pgmilib.redact import redact

    return [SuiteResult(total=s.total, results=[
        replace(r, **{name: redact(getattr(r, name)) for name in _TEXT_FIELDS}) for r in s.results])
        for s in suites]


def _failures_text(result: TestResult) -> str:
    lines = [f"{result.location()}: {result.message}"]
    if result.sqlstate:
        lines[0] += f" (SQLSTATE {result.sqlstate})"
    for label, value in (("DETAIL", result.detail), ("HINT", result.hint), ("CONTEXT", result.context)):
        if value:
            lines.append(f"{label}: {value}")
    return "\n".join(lines)


@functools.cache
def _xml_invalid() -> re.Pattern[str]:
    """Compiled on first use: only a JUnit report needs it (and it takes ~0.7 ms to compile)."""
    return re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    """Drop the characters XML 1.0 cannot carry at all (a test may raise any text)."""
    return _xml_invalid().sub("?", text)


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.3f}"


def _classname(path: str) -> str:
    """`./__test__/auth/x.sql` -> `__test__.auth`: CI tools group test cases by classname."""
    directory = path[: path.rfind("/")]
    return directory.removeprefix("./").removeprefix(".").replace("/", ".") or "pgmi"


def junit_xml(suites: Sequence[SuiteResult], error: str | None = None) -> str:
    """JUnit XML: testsuites > testsuite per macro > testcase per test (failed fixtures as errors).

    `error` is the deploy's failure when no recorded test explains it (e.g. a migration failed
    before the suite, or the run was cancelled); it becomes an error test case named `deploy.sql`
    so CI shows the red run with its reason instead of an empty, green-looking report.
    """
    import xml.etree.ElementTree as ET  # only when a JUnit report is asked for

    root = ET.Element("testsuites", name="pgmi")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_ms = 0.0
    bundle = list(suites)
    if error:
        bundle.append(SuiteResult(total=0, results=[TestResult(
            path="deploy.sql", kind="deploy", index=0, status=FAILED, message=error)]))
    for number, suite in enumerate(bundle, start=1):
        deploy_suite = any(r.kind == "deploy" for r in suite.results)
        name = "deploy" if deploy_suite else ("pgmi_test" if len(suites) == 1 else f"pgmi_test #{number}")
        node = ET.SubElement(root, "testsuite", name=name)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for result in suite.results:
            if result.kind == "fixture" and result.status == PASSED:
                continue
            case = ET.SubElement(node, "testcase", name=_x(result.path),
                                 classname="pgmi" if result.kind == "deploy" else _classname(result.path),
                                 time=_seconds(result.duration_ms))
            if result.kind in ("test", "fixture"):
                case.set("file", _x(result.path.removeprefix("./")))
                if result.line:
                    case.set("line", str(result.line))
            counts["tests"] += 1
            if result.status == PASSED:
                continue
            if result.kind == "test" and result.status == FAILED:
                tag, key = "failure", "failures"
            else:  # a failing fixture, an interrupted test, the deploy itself
                tag, key = "error", "errors"
            counts[key] += 1
            problem = ET.SubElement(case, tag, message=_x(result.message or "interrupted"),
                                    type=result.sqlstate or ("interrupted" if result.status == RUNNING else "error"))
            problem.text = _x(_failures_text(result) if result.kind != "deploy" else result.message)
        if suite.not_run:
            props = ET.Element("properties")  # the schema wants properties first in a testsuite
            ET.SubElement(props, "property", name="pgmi.not_run", value=str(suite.not_run))
            node.insert(0, props)
            ET.SubElement(node, "system-out").text = (
                f"{suite.not_run} of {suite.total} planned test(s) did not run: the suite stops at the first failure")
        for key, value in counts.items():
            node.set(key, str(value))
            totals[key] += value
        node.set("time", _seconds(suite.duration_ms))
        total_ms += suite.duration_ms
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(total_ms))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    import json  # here: only a test report needs it

    return json.dumps(value, ensure_ascii=False)


def tap(suites: Sequence[SuiteResult], error: str | None = None) -> str:
    """TAP version 13: one line per planned test (tests that never ran are SKIPs), YAML diagnostics.

    A failed fixture gets its own `not ok` line, counted in the plan, since it is what failed.
    """
    lines: list[str] = []
    number = 0
    for suite in suites:
        for result in suite.results:
            if result.kind == "fixture" and result.status == PASSED:
                continue
            number += 1
            label = result.path + (" # fixture" if result.kind == "fixture" else "")
            if result.status == PASSED:
                lines.append(f"ok {number} - {label}")
                lines.append(f"  ---\n  duration_ms: {result.duration_ms:g}\n  ...")
                continue
            lines.append(f"not ok {number} - {label}")
            lines.append("  ---")
            lines.append(f"  message: {_yaml_str(result.message or 'interrupted before the test finished')}")
            lines.append(f"  severity: {'fail' if result.status == FAILED else 'interrupted'}")
            if result.sqlstate:
                lines.append(f"  sqlstate: {_yaml_str(result.sqlstate)}")
            lines.append(f"  at: {_yaml_str(result.location())}")
            if result.detail:
                lines.append(f"  detail: {_yaml_str(result.detail)}")
            if result.hint:
                lines.append(f"  hint: {_yaml_str(result.hint)}")
            lines.append(f"  duration_ms: {result.duration_ms:g}")
            lines.append("  ...")
        for _ in range(suite.not_run):
            number += 1
            lines.append(f"ok {number} - (not run) # SKIP the suite stopped at an earlier failure")
    head = ["TAP version 13", f"1..{number}" if number else "1..0 # SKIP no test ran"]
    if error and not any(r.status != PASSED for s in suites for r in s.results):
        lines.append("# deploy failed: " + error.splitlines()[0])
    return "\n".join(head + lines) + "\n"


def summary(suites: Sequence[SuiteResult]) -> dict[str, Any]:
    """Counts shared by the JSON report (and handy for a summary line)."""
    tests = [r for s in suites for r in s.tests]
    return {
        "tests": sum(s.total for s in suites),
        "passed": sum(1 for r in tests if r.status == PASSED),
        "failed": sum(1 for s in suites for r in s.results if r.status != PASSED),
        "notRun": sum(s.not_run for s in suites),
        "durationMs": round(sum(s.duration_ms for s in suites), 3),
    }


def json_report(suites: Sequence[SuiteResult], error: str | None = None) -> str:
    """A JSON document: status, counts, and per suite every executed file with its outcome."""
    import json  # here, as in _yaml_str: a deploy without a test report never needs it

    def entry(result: TestResult) -> dict[str, Any]:
        item: dict[str, Any] = {"path": result.path, "kind": result.kind, "status": result.status,
                                "durationMs": result.duration_ms}
        if result.status != PASSED:
            item["error"] = {k: v for k, v in {
                "message": result.message, "sqlstate": result.sqlstate, "detail": result.detail,
                "hint": result.hint, "line": result.line, "context": result.context,
            }.items() if v not in ("", None)}
        return item

    counts = summary(suites)
    doc: dict[str, Any] = {
        "status": "failed" if (error or counts["failed"]) else "passed",
        **counts,
        "suites": [{"planned": s.total, "notRun": s.not_run, "durationMs": round(s.duration_ms, 3),
                    "results": [entry(r) for r in s.results]} for s in suites],
    }
    if error:
        doc["error"] = error
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
