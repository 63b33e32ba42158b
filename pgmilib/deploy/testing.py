"""`CALL pgmi_test(...)` expansion and the client side of test results (progress, reports).

The test machinery lives in PostgreSQL (sql/session_tests.sql, sql/session_contract_v1_tests.sql):
the server plans the suite and writes the SQL that runs it. This module only

* finds the macros in deploy.sql, on the lexer's mask so strings, comments and dollar
  quotes never count, asks `pg_temp.pgmi_test_generate` for each
  one and splices the answer in;
* listens to the INFO messages the server's test runner sends (message `pgmi-test-event`,
  DETAIL = JSON; see sql/session_tests.sql) to show progress and to write `--test-report`
  files. Those messages are consumed here; every other notice, including the default
  callback's `[pgmi] Test: ...` lines, passes through to the normal notice output.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pgmilib.deploy.reports import (
    FAILED,
    PASSED,
    RUNNING,
    SuiteResult,
    TestResult,
    json_report,
    junit_xml,
    redacted,
    tap,
)
from pgmilib.errors import ConfigError, PgDiagnostics, PgmiError
from pgmilib.fileio import atomic_write
from pgmilib.records import record
from pgmilib.redact import redact
from pgmilib.sqllex import mask

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from pgmilib.conn.wire import Session
    from pgmilib.output import Output

PREFIX = "failed to preprocess deploy.sql"
EVENT_MESSAGE = "pgmi-test-event"  # message text of the runner's machine-readable INFO messages
REPORT_FORMATS = ("junit", "tap", "json")

_WS = r"[ \t\n\r\f]"
# `CALL pgmi_test(...)` as a whole word, applied to the mask; group 1 is the replaced span (the
# boundary character before CALL is not part of it), groups 2 and 3 the bodies of the pattern and callback strings.
# These two are compiled on first use: only a script that calls pgmi_test needs them (the macro
# pattern takes ~1 ms to compile).
@functools.cache
def _macro() -> re.Pattern[str]:
    return re.compile(
        rf"(?i)(?:^|[^a-zA-Z0-9_])(CALL{_WS}+(?:pg_temp\.)?pgmi_test{_WS}*\({_WS}*(?:'([^']*)'|NULL)?"
        rf"(?:{_WS}*,{_WS}*'([^']*)')?{_WS}*\){_WS}*;?)"
    )


@functools.cache
def _ident() -> re.Pattern[str]:
    return re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@record
class Macro:
    """One `CALL pgmi_test(...)` occurrence: its span in deploy.sql and its two arguments.

    `pattern`/`callback` are None when absent or empty (both mean the default).
    """

    start: int
    end: int
    pattern: str | None
    callback: str | None


def find_macros(text: str) -> list[Macro]:
    """Every macro in `text`, in source order (strings, comments and dollar bodies ignored)."""
    masked = mask(text)
    found: list[Macro] = []
    if "pgmi_test" not in masked.lower():  # fast exit: the case-insensitive regex is slow on 50 MB
        return found
    for match in _macro().finditer(masked):
        pattern = text[match.start(2):match.end(2)] if match.start(2) >= 0 else ""
        callback = text[match.start(3):match.end(3)] if match.start(3) >= 0 else ""
        found.append(Macro(match.start(1), match.end(1), pattern or None, callback or None))
    return found


def validate_callback(callback: str) -> None:
    """Client-side check of a callback name (`[schema.]function`), before any SQL is built."""
    parts = callback.split(".")
    if len(parts) > 2:
        raise PgmiError(f'{PREFIX}: invalid callback "{callback}": expected [schema.]function format')
    for part in parts:
        if not part:
            raise PgmiError(f'{PREFIX}: invalid callback "{callback}": empty identifier')
        if len(part) > 63:
            raise PgmiError(f'{PREFIX}: invalid callback "{callback}": identifier "{part}" exceeds '
                            "63 character limit")
        if not _ident().fullmatch(part):
            raise PgmiError(f'{PREFIX}: invalid callback "{callback}": "{part}" is not a valid identifier')


def expand_macros(conn: Session, text: str) -> tuple[str, int]:
    """Replace each macro with the SQL `pg_temp.pgmi_test_generate` returns for it.

    Returns (expanded text, number of macros); `expand_macros_mapped` also returns the line map.
    """
    expanded, count, _ = expand_macros_mapped(conn, text)
    return expanded, count


@record
class LineMap:
    """Line of the expanded deploy.sql -> line of deploy.sql as written (and whether it is generated SQL).

    Errors are found in the expanded text, but the user reads the file: every report goes
    through this map. Lines of a macro's generated SQL map to the line of the macro itself.
    """

    entries: list[tuple[int, bool]]  # index = expanded line - 1

    def original(self, line: int) -> tuple[int, bool]:
        if 1 <= line <= len(self.entries):
            return self.entries[line - 1]
        return line, False

    @classmethod
    def build(cls, text: str, replacements: list[tuple[int, int, str]]) -> LineMap:
        """`replacements`: (start, end, generated text) in source order, as offsets into `text`."""
        entries: list[tuple[int, bool]] = [(1, False)]
        line, pos = 1, 0
        for start, end, generated in replacements:
            for _ in range(text.count("\n", pos, start)):
                line += 1
                entries.append((line, False))
            macro_line = line
            if generated:  # the macro's own line now starts the generated SQL
                entries[-1] = (macro_line, True)
            entries.extend((macro_line, True) for _ in range(generated.count("\n")))
            line += text.count("\n", start, end)
            pos = end
        for _ in range(text.count("\n", pos)):
            line += 1
            entries.append((line, False))
        return cls(entries)


def expand_macros_mapped(conn: Session, text: str) -> tuple[str, int, LineMap]:
    """`expand_macros` plus the map from expanded lines back to the lines of `text`.

    The generator is called last macro first (as it always was); the text is then assembled
    in source order. Failures (bad callback name, invalid regex) raise PgmiError without an
    execution marker (exit 1): they happen before any statement of deploy.sql has run.
    """
    from pgmilib.conn.wire import SERVER_ERRORS

    macros = find_macros(text)
    generated: dict[int, str] = {}
    for index in reversed(range(len(macros))):
        macro = macros[index]
        if macro.callback:
            validate_callback(macro.callback)
        try:
            rows = conn.run("SELECT pg_temp.pgmi_test_generate(CAST(:p AS text), CAST(:c AS text))",
                            p=macro.pattern, c=macro.callback)
        except SERVER_ERRORS as error:
            diag = PgDiagnostics.from_exception(error)
            detail = (f"{diag.severity or 'ERROR'}: {diag.message} (SQLSTATE {diag.sqlstate})" if diag
                      else str(error))
            raise PgmiError(f"{PREFIX}: failed to call pgmi_test_generate: {detail}", pg=diag) from error
        generated[index] = rows[0][0] if rows and rows[0][0] is not None else ""
    parts, pos = [], 0
    for index, macro in enumerate(macros):
        parts += [text[pos:macro.start], generated[index]]
        pos = macro.end
    parts.append(text[pos:])
    replacements = [(m.start, m.end, generated[i]) for i, m in enumerate(macros)]
    return "".join(parts), len(macros), LineMap.build(text, replacements)


def parse_report_spec(spec: str) -> tuple[str, Path]:
    """`FORMAT:PATH` of `--test-report` -> (format, path); ConfigError naming the flag otherwise."""
    fmt, sep, path = spec.partition(":")
    fmt = fmt.strip().lower()
    if not sep or fmt not in REPORT_FORMATS or not path:
        raise ConfigError(f'invalid --test-report "{spec}": expected FORMAT:PATH with FORMAT one of '
                          f"{', '.join(REPORT_FORMATS)} (e.g. junit:reports/tests.xml)")
    return fmt, Path(path)


class TestEvents:
    """Test results as the server reports them, turned into progress lines and report files.

    Fed from the connection's notice hook: `on_notice` returns True for the runner's event
    messages (consumed, never printed) and False for everything else. One `SuiteResult` per
    executed macro: a suite starts with its first fixture (0 tests done) or its first test.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, out: Output) -> None:
        self.out = out
        self.suites: list[SuiteResult] = []
        self._current: TestResult | None = None
        try:
            self._live = bool(out.stderr.isatty())
        except (AttributeError, ValueError):
            self._live = False

    # ---- intake ------------------------------------------------------------------------
    def on_notice(self, diag: PgDiagnostics) -> bool:
        """Record a runner event; True when `diag` was one (so nobody prints it)."""
        # Matched on the message text, not the severity: the S field is translated with lc_messages.
        if diag.message != EVENT_MESSAGE:
            return False
        import json  # here: a deploy without tests never parses an event (~1.5 ms of its start-up)

        try:
            event = json.loads(diag.detail)
            kind, path = str(event["kind"]), str(event["path"])
            index, total = int(event.get("index") or 0), int(event.get("total") or 0)
        except (ValueError, KeyError, TypeError):
            return False
        name = event.get("event")
        if name == "start":
            self._start(kind, path, index, total)
        elif name in ("pass", "fail"):
            self._finish(event, kind, path, index, total)
        else:
            return False
        return True

    def _suite_for(self, kind: str, index: int, total: int) -> SuiteResult:
        suite = self.suites[-1] if self.suites else None
        first_of_suite = (kind == "fixture" and index == 0) or (kind == "test" and index == 1)
        if suite is None or (first_of_suite and suite.tests):
            suite = SuiteResult(total=total)
            self.suites.append(suite)
        return suite

    def _start(self, kind: str, path: str, index: int, total: int) -> None:
        suite = self._suite_for(kind, index, total)
        self._current = TestResult(path=path, kind=kind, index=index)
        suite.results.append(self._current)
        if self._live:
            label = path if kind == "test" else f"{path} (fixture)"
            self.out.progress(index, total, label)

    def _finish(self, event: dict[str, Any], kind: str, path: str, index: int, total: int) -> None:
        result = self._current
        if result is None or result.path != path:  # an end without its start: record it anyway
            result = TestResult(path=path, kind=kind, index=index)
            self._suite_for(kind, index, total).results.append(result)
        self._current = None
        result.duration_ms = float(event.get("ms") or 0.0)
        result.status = PASSED if event["event"] == "pass" else FAILED
        if result.status == FAILED:
            result.sqlstate = str(event.get("sqlstate") or "")
            result.message = str(event.get("message") or "")
            result.detail = str(event.get("detail") or "")
            result.hint = str(event.get("hint") or "")
            result.context = str(event.get("context") or "")
            line = event.get("line")
            result.line = int(line) if isinstance(line, int) else None
        # Off a terminal stderr is usually read by a program (a CI log parser, a TAP or notice
        # stream from the project's own callback): pgmi's own per-test lines would interleave
        # with it, so they are written only with --verbose. The server's notices (the default
        # callback's `[pgmi] Test: <path>`) are untouched and still say which test ran.
        if not self._live and self.out.verbose_mode and (kind == "test" or result.status == FAILED):
            word = "ok" if result.status == PASSED else "FAILED"
            what = path if kind == "test" else f"{path} (fixture)"
            self.out.progress(index, total, f"{word} {what} ({result.duration_ms:.1f} ms)")

    # ---- reports -----------------------------------------------------------------------
    def failed(self) -> list[TestResult]:
        return [r for s in self.suites for r in s.results if r.status != PASSED]

    def write_reports(self, specs: list[str], error: BaseException | None) -> None:
        """Write each `FORMAT:PATH` report; called after success and after failure alike.

        A test still marked running when the deploy failed was interrupted (timeout, cancel,
        lost connection): it is reported as an error carrying the deploy's message. The deploy
        error is added as its own entry only when no recorded failure explains it.
        """
        message = redact(str(error)) if error is not None else None
        if self._current is not None and self._current.status == RUNNING and message:
            self._current.message = message
        explained = any(r.status == FAILED for r in self.failed())
        unexplained = None if explained else message
        suites = redacted(self.suites)  # every string, before escaping; then the whole text
        render = {
            "junit": lambda: redact(junit_xml(suites, unexplained)),
            "tap": lambda: redact(tap(suites, unexplained)),
            "json": lambda: redact(json_report(suites, message)),
        }
        problems: list[PgmiError] = []
        for spec in specs:
            try:
                fmt, path = parse_report_spec(spec)
                _write_atomically(path, render[fmt]())
            except PgmiError as problem:
                problems.append(problem)
                continue
            self.out.verbose(f"Wrote {fmt} test report {path}")
        if problems and error is None:
            raise problems[0]
        for problem in problems:  # the deploy's own error stays the one reported
            self.out.warn(str(problem))


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so CI never picks up half a report."""
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
    except OSError as problem:
        raise PgmiError(f"cannot write test report {path}: {problem.strerror or problem}") from problem
