"""Send deploy.sql's execution units and turn a server error into a precise, located report.

`run_units` sends each unit as one simple-query message (the head as one implicit
transaction, then the psql-style tail), stops at the first failure and raises
`ExecutionFailed` whose trailer points at the failing place:

* a server Position (syntax errors, unknown relations in deploy.sql itself) resolves to a
  line/column of the expanded deploy.sql through the unit's offset (sqllex.Unit.script_position);
* beyond the original tool, an error inside text that deploy.sql ran with EXECUTE (usually a
  project file read from the session tables) is traced back to that file with
  `locate_in_files`, using the server's internal query/position or its CONTEXT lines.

Notices are not handled here: the connection's notice hook streams them as they arrive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgmilib.errors import ExecutionFailed, PgDiagnostics, PgmiError
from pgmilib.output import Output, shown_in_envelope
from pgmilib.sqllex import Unit, line_col, mask, source_line, statement_spans

if TYPE_CHECKING:
    from pgmilib.deploy.testing import LineMap

SCRIPT_NAME = "deploy.sql"
_EXPANDED_NOTE = " (of the expanded script: pgmi_test() macros shift line numbers relative to the file on disk)"
_GENERATED_NOTE = " (inside the SQL that CALL pgmi_test() on this line expands to)"
_FAILED_IN = re.compile(r"Failed in (.+?\.sql)(?=[:\s,;)]|$)")
_LOCK_SETTING = re.compile(r"max_(?:pred_)?locks_per_transaction")


@dataclass
class ExecResult:
    """How far execution got: on success both numbers equal the unit count."""

    units_total: int
    units_committed: int


def run_units(
    conn: Any,
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
            for key, value in _unit_details(total, index).items():
                error.details.setdefault(key, value)
            raise
        except Exception as exc:
            diag = PgDiagnostics.from_exception(exc)
            if diag is None:
                raise ExecutionFailed(f"execution failed: {exc}", details=_unit_details(total, index)) from exc
            if getattr(conn, "copy_in_refused", 0) > refused:
                raise copy_in_failure(diag, unit, index, total, script_text=script_text,
                                      script_expanded=script_expanded) from exc
            raise build_failure(diag, unit, index, total, script_text=script_text,
                                script_expanded=script_expanded, files=files, line_map=line_map,
                                original_text=original_text) from exc
    return ExecResult(units_total=total, units_committed=total)


_COPY_FROM_STDIN = re.compile(r"(?<![\w$])COPY(?![\w$])[^;]*?(?<![\w$])FROM\s+STDIN(?![\w$])", re.IGNORECASE)


def copy_in_failure(diag: PgDiagnostics, unit: Unit, index: int, total: int, *, script_text: str,
                    script_expanded: bool) -> ExecutionFailed:
    """The report for a `COPY ... FROM STDIN` that the connection aborted on the wire (CopyFail).

    The server rolled the statement (and its transaction) back; pgmi has no data stream to
    feed it, and the data lines psql would read after the statement are not SQL either.
    """
    error = ExecutionFailed("execution failed: COPY FROM STDIN is not supported in deploy.sql "
                            "(the COPY was aborted and its transaction rolled back)", pg=diag)
    error.details.update(_unit_details(total, index), sqlstate=diag.sqlstate)
    found = _COPY_FROM_STDIN.search(mask(unit.text))
    if found is not None:
        line, column = line_col(script_text, unit.script_position(found.start() + 1))
        error.details.update(script=SCRIPT_NAME, line=line, column=column, scriptExpanded=script_expanded)
        error.trailer.append(f"LOCATION: {SCRIPT_NAME} line {line}, column {column}"
                             + (_EXPANDED_NOTE if script_expanded else ""))
        error.trailer.extend(_line_and_caret(line, column, source_line(script_text, line)))
    error.trailer.append("HINT: load data with INSERT statements or with COPY FROM a server-side file, "
                         "or run psql for data sections (pg_dump output).")
    return error


def _unit_details(total: int, index: int) -> dict[str, Any]:
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
    severity = diag.severity or "ERROR"
    error = ExecutionFailed(f"execution failed: {severity}: {diag.message} (SQLSTATE {diag.sqlstate})", pg=diag)
    details: dict[str, Any] = _unit_details(total, index)
    details.update(sqlstate=diag.sqlstate, detail=diag.detail, hint=diag.hint, where=diag.where)
    failed = _FAILED_IN.search(diag.message)
    if failed:
        details["failedFile"] = failed.group(1)

    at = unit.script_position(diag.position) if diag.position is not None else None
    if at is not None:
        where = line_col(script_text, at)
        if where is not None:
            line, column = where
            note = _EXPANDED_NOTE if script_expanded else ""
            text_line = source_line(script_text, line)
            if line_map is not None and original_text is not None:
                line, generated = line_map.original(line)
                text_line = source_line(original_text, line)
                note = _GENERATED_NOTE if generated else ""
                column = None if generated else column
            details.update(script=SCRIPT_NAME, sourceLine=text_line, line=line, column=column,
                           scriptExpanded=script_expanded)
            error.trailer.append(f"LOCATION: {SCRIPT_NAME} line {line}" + (f", column {column}" if column else "")
                                 + note)
            error.trailer.extend(_line_and_caret(line, column, text_line))
    else:
        found = locate_in_files(diag, files) if files else None
        if found is None:
            found = _locate_in_unit(diag, unit, script_text)
        note = _EXPANDED_NOTE
        if found and found["file"] == SCRIPT_NAME and line_map is not None and original_text is not None:
            found = _to_original(found, line_map, original_text)
            note = _GENERATED_NOTE if found.pop("generated") else ""
        if found:
            details.update(file=found["file"], fileLine=found["line"], fileColumn=found.get("column"),
                           fileSourceLine=found["sourceLine"])
            if found.get("statementLine"):
                details.update(fileCandidateLine=found["statementLine"], fileCandidateStatement=found["statementText"])
            if found.get("candidates"):
                details["fileCandidates"] = found["candidates"]
            error.trailer.extend(_file_trailer(found))
            if found["file"] == SCRIPT_NAME and script_expanded:
                error.trailer[0] += note

    advice = lock_advice(diag)
    if advice:
        error.trailer.append(advice)
    if diag.sqlstate == "42601":
        hint = _psql_only_hint(details, script_text, files)
        if hint:
            error.trailer.append("HINT: " + hint)
            details["psqlOnly"] = hint
    error.details.update({k: v for k, v in details.items() if shown_in_envelope(k, v)})
    return error


def _to_original(found: dict, line_map: LineMap, original_text: str) -> dict:
    """A place in the expanded deploy.sql, moved to the same place in deploy.sql as written."""
    line, generated = line_map.original(found["line"])
    moved = dict(found, line=line, sourceLine=source_line(original_text, line), generated=generated)
    if generated:
        moved["column"] = None
    moved.pop("candidates", None)
    return moved


def _locate_in_unit(diag: PgDiagnostics, unit: Unit, script_text: str) -> dict | None:
    """A failing statement inside a DO block written in deploy.sql itself (server: 'line N at X').

    The server gives no Position then, only the line within the DO body; lines found in the
    unit text are shifted by the line the unit starts on in the (expanded) script.
    """
    items = _context_items(diag.where)
    first = _PLPGSQL_LINE.match(items[0]) if len(items) == 1 else None
    if first is None or first.group(1) != "inline_code_block":
        return None
    base = script_text.count("\n", 0, unit.start_offset)
    lines = [base + n for n in do_block_lines(unit.text, int(first.group(2)), first.group(3))]
    places = [_line_place(SCRIPT_NAME, script_text, line) for line in lines]
    return _result([p for p in places if p], {SCRIPT_NAME: script_text})


def _line_and_caret(line: int, column: int | None, text_line: str) -> list[str]:
    prefix = f"LINE {line}: "
    lines = [prefix + text_line]
    if column is not None:
        lines.append(" " * (len(prefix) + column - 1) + "^")
    return lines


def _file_trailer(found: dict) -> list[str]:
    if found.get("lineUnknown"):
        also = found.get("candidates", [])[1:]
        head = (f"FILE: {found['file']} (line unknown: the server gave no position inside the EXECUTEd text"
                + (f"; the same text is also in {', '.join(also)}" if also else "") + ")")
        if not found.get("statementLine"):
            return [head]
        candidate = (f"CANDIDATE: {found['file']}:{found['statementLine']} mentions the object named in the error: "
                     f"{found['statementText']}")
        return [head, candidate]
    column = found.get("column")
    place = f"{found['file']}:{found['line']}" + (f":{column}" if column is not None else "")
    head = f"FILE: {place}"
    if found.get("approximate"):
        head += " (start of the EXECUTEd text; the server gave no position inside it)"
    others = [c for c in found.get("candidates", []) if c != place]
    if others:
        head += " (the same text is also at " + ", ".join(others) + ")"
    return [head, *_line_and_caret(found["line"], column, found["sourceLine"])]


_META = re.compile(r"\\([A-Za-z!?]+|\.)")
_COPY_STDIN = re.compile(r"(?<![\w$])COPY(?![\w$])[^;]*?(?<![\w$])FROM\s+STDIN\s*;", re.IGNORECASE)
_VARIABLE = re.compile(r":(?:'[A-Za-z_]\w*'|\"[A-Za-z_]\w*\"|[A-Za-z_]\w*)")


def _psql_only_hint(details: dict[str, Any], script_text: str, files: Mapping[str, str] | None) -> str | None:
    """Name the psql-only feature a syntax error points at: a backslash meta-command, the data
    lines of a `COPY ... FROM stdin` (pg_dump output), or a `:variable`. They are psql's own,
    not SQL, so the server cannot run them, neither in deploy.sql nor through EXECUTE."""
    if details.get("line") is not None:
        where, content, line, column = SCRIPT_NAME, script_text, details["line"], details.get("column")
        how = "in deploy.sql (pgmi sends it to the server, which only runs SQL)"
    elif details.get("file") and details.get("fileLine") and files:
        where, line, column = details["file"], details["fileLine"], details.get("fileColumn")
        content = files.get(where, "")
        how = "through EXECUTE (the server only runs SQL)"
    else:
        return None
    text = source_line(content, line)
    start = 0  # offset where `line` begins
    for _ in range(line - 1):
        start = content.find("\n", start) + 1
    stripped = text.lstrip()
    meta = _META.match(stripped)
    if meta and (column is None or column - 1 <= len(text) - len(stripped)):
        return (f"psql meta-command \\{meta.group(1)} cannot run {how}; remove it, or run this file with psql "
                "(see README: psql-only features)")
    if _COPY_STDIN.search(mask(content[:start])):
        return (f"this looks like the data of a COPY ... FROM stdin block (pg_dump output), which cannot run {how}; "
                "load data with INSERT statements or run the dump with psql (see README: psql-only features)")
    variable = _VARIABLE.match(text, column - 1) if column else _VARIABLE.search(text)
    if variable and (column is None or not text[:column - 1].endswith(":")):
        return (f"psql variable {variable.group()} cannot run {how}; pass values with --param and read them "
                "from pg_temp.pgmi_parameter_view (see README: psql-only features)")
    return None


def lock_advice(diag: PgDiagnostics) -> str | None:
    """Plain-words remedy for 'out of shared memory' caused by the lock table filling up.

    A one-transaction deploy of many DDL files takes one lock per object; the server's
    hint names the setting but not that it needs a restart, nor the other way out.
    """
    setting = _LOCK_SETTING.search(diag.hint or "")
    if "out of shared memory" not in diag.message or setting is None:
        return None
    name = setting.group()
    return (f"ADVICE: this transaction needs more locks than the server's lock table holds. Raise {name} "
            f"in postgresql.conf (e.g. {name} = 1024) and restart PostgreSQL, or split the deploy into "
            "several transactions (COMMIT between groups of files) so fewer locks are held at once.")


# ---- locating errors inside EXECUTEd project files --------------------------------------

_PLPGSQL_LINE = re.compile(r"^PL/pgSQL function (.+?) line (\d+) at ([A-Za-z]+)")
_CONTEXT_START = re.compile(
    r"\n(?=PL/pgSQL function |SQL statement \"|SQL function |PL/pgSQL assignment |SQL expression \"|"
    r"PL/Python |PL/Perl |JSON data|COPY |parallel worker|portal )"
)


def _context_items(where: str) -> list[str]:
    """Split a CONTEXT ('W') field into its items, innermost first.

    Items are separated by newlines, but an item quoting SQL ('SQL statement "...') may
    itself contain newlines, so only a newline followed by a known item start splits.
    """
    return _CONTEXT_START.split(where) if where else []


def _quoted_statement(item: str) -> str | None:
    prefix = 'SQL statement "'
    if item.startswith(prefix) and item.endswith('"'):
        return item[len(prefix):-1]
    return None


def locate_in_files(diag: PgDiagnostics, files: Mapping[str, str]) -> dict | None:
    """Place an error raised inside EXECUTEd text in the loaded project file holding that text.

    Returns {'file', 'line', 'column' (None if unknown), 'sourceLine'} and, when the text is
    found in several places, 'candidates' (all places as 'path:line[:col]'); 'approximate' is
    True when the server named only the statement text (runtime errors inside EXECUTE carry
    no position), so the place is where that text starts. None if not found.
    Order of evidence: the internal query and position (syntax/analysis errors inside
    EXECUTE), then the innermost CONTEXT item: 'PL/pgSQL function ... line N' inside an
    EXECUTEd DO block or a function defined in a project file, or 'SQL statement "..."'.
    """
    if diag.internal_query:
        offset = (diag.internal_position or 1) - 1
        found = _find_text(diag.internal_query, files, offset, with_column=diag.internal_position is not None)
        if found:
            return found
    items = _context_items(diag.where)
    if not items:
        return None
    first = _PLPGSQL_LINE.match(items[0])
    if first:
        name, body_line, keyword = first.group(1), int(first.group(2)), first.group(3)
        if name == "inline_code_block":
            statement = _quoted_statement(items[1]) if len(items) > 1 else None
            if statement is not None:
                return _find_do_line(statement, body_line, keyword, files)
            return None
        return _find_function_line(name, body_line, keyword, files)
    statement = _quoted_statement(items[0])
    if statement is not None:
        masked = mask(statement)
        lead = len(masked) - len(masked.lstrip())  # first character of code, comments skipped
        found = _find_text(statement, files, lead, with_column=False)
        if found and len(statement_spans(statement)) > 1:
            # A whole multi-statement file was EXECUTEd and the server names no position in it:
            # its first line would be a guess. Say the line is unknown; offer a candidate.
            return _line_unknown(found, diag, files)
        if found:
            found["approximate"] = True
        return found
    return None


_QUOTED_NAME = re.compile(r'"([^"]+)"')


def _line_unknown(found: dict, diag: PgDiagnostics, files: Mapping[str, str]) -> dict:
    """The file, no line, and the statement of the file that mentions the error's object name
    (`relation "audit_log" does not exist`), found by re-parsing the file with the lexer."""
    result: dict[str, Any] = {"file": found["file"], "line": None, "column": None, "sourceLine": None,
                              "lineUnknown": True}
    if found.get("candidates"):
        result["candidates"] = [c.rsplit(":", 1)[0] for c in found["candidates"]]
    content = files[found["file"]]
    for name in _QUOTED_NAME.findall(diag.message):
        name = name.rsplit("/", 1)[-1].removesuffix(".control")  # extension control file paths
        parts = [p for p in name.split(".") if p]
        if not parts:
            continue
        word = re.compile(r"(?<![\w$])" + re.escape(parts[-1]) + r"(?![\w$])", re.IGNORECASE)
        for start, end in statement_spans(content):
            if word.search(content, start, end):
                line = content.count("\n", 0, start) + 1
                result["statementLine"] = line
                result["statementText"] = source_line(content, line).strip()
                return result
    return result


def _occurrences(needle: str, files: Mapping[str, str]) -> list[tuple[str, int]]:
    """(path, offset) of `needle`: whole-file matches if any, else every substring occurrence."""
    exact = [(path, 0) for path, content in files.items() if len(content) == len(needle) and content == needle]
    if exact:
        return exact
    hits: list[tuple[str, int]] = []
    for path, content in files.items():
        at = content.find(needle)
        while at >= 0:
            hits.append((path, at))
            at = content.find(needle, at + 1)
    return hits


def _find_text(query: str, files: Mapping[str, str], offset: int, *, with_column: bool) -> dict | None:
    """Place character `offset` of `query` in the file(s) containing `query`."""
    if not query.strip():
        return None
    hits = _occurrences(query, files)
    shift = 0
    if not hits:  # a template may have trimmed the file text before EXECUTE
        stripped = query.strip()
        shift = len(query) - len(query.lstrip())
        hits = _occurrences(stripped, files)
    places = []
    for path, at in hits:
        content = files[path]
        place = line_col(content, at + max(offset - shift, 0) + 1)
        if place is not None:
            places.append((path, place[0], place[1] if with_column else None))
    return _result(places, files)


def _result(places: list[tuple[str, int, int | None]], files: Mapping[str, str]) -> dict | None:
    if not places:
        return None
    places.sort(key=lambda p: (p[0], p[1], p[2] or 0))
    path, line, column = places[0]
    result: dict[str, Any] = {"file": path, "line": line, "column": column,
                              "sourceLine": source_line(files[path], line)}
    if len(places) > 1:
        result["candidates"] = [f"{p}:{ln}" + (f":{c}" if c is not None else "") for p, ln, c in places]
    return result


_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_DO = re.compile(r"(?<![\w$])DO(?![\w$])", re.IGNORECASE)
# plpgsql statement kinds whose first line names them ("line 4 at RAISE" is on a RAISE line).
_KEYWORDS = frozenset({"RAISE", "EXECUTE", "RETURN", "PERFORM", "CALL", "IF", "FOR", "FOREACH", "WHILE", "CASE",
                       "OPEN", "FETCH", "CLOSE", "ASSERT", "EXIT", "CONTINUE", "GET", "MOVE", "COMMIT", "ROLLBACK"})


def _body_tag(masked: str, after: int) -> int | None:
    """Offset of the first dollar-quote tag at or after `after` in a masked text (the body's opening tag)."""
    m = _TAG.search(masked, after)
    return m.start() if m else None


def _fits(text: str, line: int, keyword: str) -> bool:
    """Whether `line` exists in `text` and, for a known statement kind, mentions its keyword."""
    if line > text.count("\n") + 1:
        return False
    if keyword.upper() not in _KEYWORDS:
        return True
    return re.search(rf"(?<![\w$]){keyword}(?![\w$])", source_line(text, line), re.IGNORECASE) is not None


def _filter(lines: list[int], text: str, keyword: str) -> list[int]:
    """Lines that exist; those whose text shows the statement keyword win when there are any."""
    existing = [n for n in lines if _fits(text, n, "")]
    matching = [n for n in existing if _fits(text, n, keyword)]
    return matching or existing


def do_block_lines(text: str, body_line: int, keyword: str) -> list[int]:
    """Lines of `text` that 'PL/pgSQL function inline_code_block line N at KEYWORD' may mean.

    Line N of a DO body counts from the line of its opening dollar tag. With several DO
    blocks in the text the server does not say which one failed, so every block whose line
    N exists is a candidate, narrowed to those whose line shows the statement keyword.
    """
    masked = mask(text)
    lines = []
    for do in _DO.finditer(masked):
        tag = _body_tag(masked, do.end())
        if tag is not None:
            lines.append(text.count("\n", 0, tag) + body_line)
    return _filter(lines, text, keyword)


def _find_do_line(statement: str, body_line: int, keyword: str, files: Mapping[str, str]) -> dict | None:
    """Line `body_line` of a DO block's body, the DO statement being EXECUTEd text from a file."""
    lines = do_block_lines(statement, body_line, keyword)
    if not lines:
        return None
    hits = _occurrences(statement, files)
    lead_lines = 0
    if not hits:
        stripped = statement.strip()
        lead_lines = statement[:len(statement) - len(statement.lstrip())].count("\n")
        hits = _occurrences(stripped, files)
    places = []
    for path, at in hits:
        base = files[path].count("\n", 0, at) - lead_lines
        places.extend(_line_place(path, files[path], base + line) for line in lines)
    return _result([p for p in places if p], files)


def _find_function_line(signature: str, body_line: int, keyword: str, files: Mapping[str, str]) -> dict | None:
    """Line `body_line` of the body of function `signature` ('s.f(integer)'), where a file defines it."""
    name = signature.split("(", 1)[0]
    bare = name.rsplit(".", 1)[-1].strip('"')
    pattern = re.compile(
        r"(?<![\w$])(?:FUNCTION|PROCEDURE)\s+(?:[\w\"$]+\s*\.\s*)?\"?" + re.escape(bare) + r"\"?\s*\(",
        re.IGNORECASE,
    )
    candidates: list[tuple[str, int]] = []
    for path, content in files.items():
        # Cheap test before any regex: unquoted names are folded to lower case by the server,
        # so the file may spell them in any case; a quoted mixed-case name appears verbatim.
        if bare not in (content.lower() if bare.islower() else content) or pattern.search(content) is None:
            continue
        masked = mask(content)
        for m in pattern.finditer(content):  # raw text: a quoted name is blanked in the mask
            if masked[m.start()] == " ":  # the word FUNCTION sits in a comment or string
                continue
            tag = _body_tag(masked, m.end())
            if tag is not None:
                line = content.count("\n", 0, tag) + body_line
                if _fits(content, line, ""):
                    candidates.append((path, line))
    matching = [(p, n) for p, n in candidates if _fits(files[p], n, keyword)]
    places = [_line_place(p, files[p], n) for p, n in (matching or candidates)]
    return _result([p for p in places if p], files)


def _line_place(path: str, content: str, line: int) -> tuple[str, int, int | None] | None:
    """(path, line, column of the first non-blank character) when `line` exists in `content`."""
    text = source_line(content, line)
    if line > content.count("\n") + 1:
        return None
    stripped = text.lstrip()
    return (path, line, len(text) - len(stripped) + 1 if stripped else None)
