"""Send deploy.sql's execution units and turn a server error into a located report.

`run_units` sends each unit as one simple-query message (the head as one implicit
transaction, then the psql-style tail), stops at the first failure and raises
`ExecutionFailed` whose trailer points at the failing place:

* a server Position (syntax errors, unknown relations in deploy.sql itself) resolves to a
  line/column of the expanded deploy.sql through the unit's offset (sqllex.Unit.script_position);
* otherwise `locate.locate_failure` weighs the other evidence (internal query, CONTEXT,
  the failing unit, names in the message) and this module renders what it found:
  `FILE:` for a certain line, `CANDIDATE:` with the reason for a best guess.

COPY FROM STDIN refusals are reported by `copyin`, remedies (psql-only syntax, lock table)
come from `hints`.

Notices are not handled here: the connection's notice hook streams them as they arrive.
"""

from __future__ import annotations

from collections.abc import Mapping

from pgmilib.errors import ExecutionFailed, PgDiagnostics, PgmiError
from pgmilib.output import Output, shown_in_envelope
from pgmilib.records import record
from pgmilib.sqllex import Unit, line_col, source_line

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, Protocol

    from pgmilib.deploy.locate import Location
    from pgmilib.deploy.testing import LineMap
    from pgmilib.deploy.watchdog import Watchdog
    from pgmilib.observe.watch import Watcher
else:  # the Protocol classes below are structural types for type checkers, plain classes at run time
    Protocol = object

_GENERATED_NOTE = " (inside the SQL that CALL pgmi_test() on this line expands to)"
#: Other places listed under the best one; the rest are in --json's fileCandidates.
SHOWN_CANDIDATES = 2


class UnitRunner(Protocol):
    """What `run_units` sends deploy.sql's units through: the session connection
    (conn.wire.LiveConnection), or a `SessionLayer` around it."""

    @property
    def transaction_status(self) -> str:
        """'I' idle, 'T' inside a transaction block, 'E' inside a failed one."""

    @property
    def copy_in_refused(self) -> int:
        """How many COPY FROM STDIN the wire refused so far."""

    def run(self, sql: str, **params: Any) -> Any:
        ...


class SessionLayer:
    """A wrapper of the session (the watchdog's guard, a rehearsal, the head retry): it forwards
    the session's state by name; a subclass defines `run`.

    A plain pg8000 connection (tests, API callers) has neither attribute: idle, nothing refused.
    """

    def __init__(self, conn: UnitRunner) -> None:
        self._conn = conn

    @property
    def transaction_status(self) -> str:
        return str(getattr(self._conn, "transaction_status", "I"))

    @property
    def copy_in_refused(self) -> int:
        return int(getattr(self._conn, "copy_in_refused", 0))

    def run(self, sql: str, **params: Any) -> Any:
        return self._conn.run(sql, **params)


class Guarded(SessionLayer):
    """The session connection as `run_units` sees it in a deploy: checks the run's watchdog
    (deadline, cancel) before each unit and tells the live watcher which unit runs."""

    def __init__(self, conn: UnitRunner, watchdog: Watchdog, watcher: Watcher | None = None) -> None:
        super().__init__(conn)
        self._watchdog = watchdog
        self._watcher = watcher

    def run(self, sql: str, **params: Any) -> Any:
        self._watchdog.check()
        if self._watcher is not None:
            self._watcher.running(sql)
        return self._conn.run(sql, **params)


@record
class ExecResult:
    """How far execution got: on success both numbers equal the unit count."""

    units_total: int
    units_committed: int


def run_units(
    conn: UnitRunner,
    units: list[Unit],
    *,
    out: Output,
    script_text: str,
    script_expanded: bool,
    files: Mapping[str, str] | None = None,
    line_map: LineMap | None = None,
    original_text: str | None = None,
) -> ExecResult:
    """Run `units` in order on `conn` (pg8000 native); raise ExecutionFailed at the first failure.

    `script_text` is the expanded deploy.sql the units were cut from (for LINE/caret output),
    `script_expanded` says whether test macros changed it, `files` maps loaded project paths
    to their content so errors inside EXECUTEd file text can be located in the file.
    With `line_map` and `original_text` (deploy.sql as written), reported lines are lines of
    the file, not of the expanded text.
    """
    from pgmilib.conn.wire import DRIVER_ERRORS

    total = len(units)
    if total > 1:
        out.verbose(f"deploy.sql splits into {total} execution units at the first top-level transaction terminator")
    for index, unit in enumerate(units):
        if total > 1:
            out.verbose(f"Executing unit {index + 1} of {total} (deploy.sql line {unit.start_line})")
        refused = getattr(conn, "copy_in_refused", 0)
        try:
            conn.run(unit.text)
        except PgmiError as error:  # e.g. raised by a notice hook or a deadline watcher
            for key, value in unit_details(total, index).items():
                error.details.setdefault(key, value)
            raise
        except DRIVER_ERRORS as exc:  # the server's and the network's errors; anything else is a bug (exit 3)
            diag = PgDiagnostics.from_exception(exc)
            if diag is None:
                raise ExecutionFailed(f"execution failed: {exc}", details=unit_details(total, index)) from exc
            if getattr(conn, "copy_in_refused", 0) > refused:
                from pgmilib.deploy.copyin import copy_in_failure

                raise copy_in_failure(diag, unit, unit_details(total, index), script_text=script_text,
                                      script_expanded=script_expanded) from exc
            raise build_failure(diag, unit, index, total, script_text=script_text,
                                script_expanded=script_expanded, files=files, line_map=line_map,
                                original_text=original_text) from exc
    return ExecResult(units_total=total, units_committed=total)


def unit_details(total: int, index: int) -> dict[str, Any]:
    return {
        "executionUnits": total,
        "unitsCommitted": index,
        "executionMode": "atomic" if index == 0 else "psql",
    }


def build_failure(
    diag: PgDiagnostics,
    unit: Unit,
    index: int,
    total: int,
    *,
    script_text: str,
    script_expanded: bool,
    files: Mapping[str, str] | None = None,
    line_map: LineMap | None = None,
    original_text: str | None = None,
) -> ExecutionFailed:
    """The ExecutionFailed for a server error in unit `index` (message, details, trailer)."""
    # Imported here, on the failure path: locating an error costs a successful deploy nothing.
    from pgmilib.deploy.copyin import EXPANDED_NOTE, line_and_caret
    from pgmilib.deploy.hints import lock_advice, psql_only_hint
    from pgmilib.deploy.locate import FAILED_IN, SCRIPT_NAME, Failure, locate_failure

    severity = diag.severity or "ERROR"
    error = ExecutionFailed(f"execution failed: {severity}: {diag.message} (SQLSTATE {diag.sqlstate})", pg=diag)
    details: dict[str, Any] = unit_details(total, index)
    details.update(sqlstate=diag.sqlstate, detail=diag.detail, hint=diag.hint, where=diag.where)
    failed = FAILED_IN.search(diag.message)
    if failed:
        details["failedFile"] = failed.group(1)

    at = unit.script_position(diag.position) if diag.position is not None else None
    where = line_col(script_text, at) if at is not None else None
    if where is not None:
        line, column = where
        note = EXPANDED_NOTE if script_expanded else ""
        text_line = source_line(script_text, line)
        if line_map is not None and original_text is not None:
            line, generated = line_map.original(line)
            text_line = source_line(original_text, line)
            note = _GENERATED_NOTE if generated else ""
            column = None if generated else column
        details.update(script=SCRIPT_NAME, sourceLine=text_line, line=line, column=column,
                       scriptExpanded=script_expanded, locatedBy="position")
        error.trailer.append(f"LOCATION: {SCRIPT_NAME} line {line}" + (f", column {column}" if column else "")
                             + note)
        error.trailer.extend(line_and_caret(line, column, text_line))
    elif diag.position is None:
        found = locate_failure(Failure(diag, unit, index, total, script_text, files or {}))
        note = EXPANDED_NOTE if script_expanded else ""
        if found and found.file == SCRIPT_NAME and line_map is not None and original_text is not None:
            note = _to_original(found, line_map, original_text)
        if found:
            details.update(file=found.file, fileLine=found.line, fileColumn=found.column,
                           fileSourceLine=found.source_line if found.line else None,
                           locatedBy=found.located_by, fileExact=found.exact)
            if found.candidates:
                details["fileCandidates"] = found.candidates
            error.trailer.extend(location_trailer(found, note if found.file == SCRIPT_NAME else ""))

    advice = lock_advice(diag)
    if advice:
        error.trailer.append(advice)
    if diag.sqlstate == "42601":
        hint = psql_only_hint(details, script_text, files)
        if hint:
            error.trailer.append("HINT: " + hint)
            details["psqlOnly"] = hint
    error.details.update({k: v for k, v in details.items() if shown_in_envelope(k, v)})
    return error


def _to_original(found: Location, line_map: LineMap, original_text: str) -> str:
    """Move a place in the expanded deploy.sql to deploy.sql as written; returns the note to show."""
    if found.line is None:
        return ""
    line, generated = line_map.original(found.line)
    found.line, found.source_line = line, source_line(original_text, line)
    found.candidates = []
    if generated:
        found.column = None
        return _GENERATED_NOTE
    return ""


def location_trailer(found: Location, note: str = "") -> list[str]:
    """`FILE: path:line:col` for a certain place, `CANDIDATE: ... (reason)` for a best guess,
    then the line and a caret, then the other candidates (at most SHOWN_CANDIDATES)."""
    from pgmilib.deploy.copyin import line_and_caret

    others = [c for c in found.candidates if c != found.place]
    if found.line is None:
        head = f"FILE: {found.file} (line unknown: {found.reason})" + note
        shown = [f"CANDIDATE: {c}" for c in others[:SHOWN_CANDIDATES]]
    else:
        label = "FILE" if found.exact else "CANDIDATE"
        head = f"{label}: {found.place}" + (f" ({found.reason})" if found.reason else "") + note
        shown = [f"CANDIDATE: {c}" for c in others[:SHOWN_CANDIDATES]]
    if len(others) > SHOWN_CANDIDATES:
        shown.append(f"... and {len(others) - SHOWN_CANDIDATES} more (--json: fileCandidates)")
    if found.line is None:
        return [head, *shown]
    return [head, *line_and_caret(found.line, found.column, found.source_line), *shown]
