"""The report for a `COPY ... FROM STDIN` in deploy.sql, which the connection refuses on the wire.

The server rolled the statement (and its transaction) back; pgmi has no data stream to feed
it, and the data lines psql would read after the statement are not SQL either.
"""

from __future__ import annotations

import re

from pgmilib.errors import ExecutionFailed, PgDiagnostics
from pgmilib.sqllex import Unit, line_col, mask, source_line

SCRIPT_NAME = "deploy.sql"
EXPANDED_NOTE = " (of the expanded script: pgmi_test() macros shift line numbers relative to the file on disk)"
_COPY_FROM_STDIN = re.compile(r"(?<![\w$])COPY(?![\w$])[^;]*?(?<![\w$])FROM\s+STDIN(?![\w$])", re.IGNORECASE)


def copy_in_failure(diag: PgDiagnostics, unit: Unit, unit_details: dict, *, script_text: str,
                    script_expanded: bool) -> ExecutionFailed:
    """ExecutionFailed naming the COPY's line in deploy.sql, with the way to load data instead."""
    error = ExecutionFailed("execution failed: COPY FROM STDIN is not supported in deploy.sql "
                            "(the COPY was aborted and its transaction rolled back)", pg=diag)
    error.details.update(unit_details, sqlstate=diag.sqlstate)
    found = _COPY_FROM_STDIN.search(mask(unit.text))
    if found is not None:
        where = line_col(script_text, unit.script_position(found.start() + 1) or 1)
        if where is not None:
            line, column = where
            error.details.update(script=SCRIPT_NAME, line=line, column=column, scriptExpanded=script_expanded)
            error.trailer.append(f"LOCATION: {SCRIPT_NAME} line {line}, column {column}"
                                 + (EXPANDED_NOTE if script_expanded else ""))
            error.trailer.extend(line_and_caret(line, column, source_line(script_text, line)))
    error.trailer.append("HINT: load data with INSERT statements or with COPY FROM a server-side file, "
                         "or run psql for data sections (pg_dump output).")
    return error


def line_and_caret(line: int, column: int | None, text_line: str) -> list[str]:
    """`LINE n: <text>` and, with a column, the caret line under that character."""
    prefix = f"LINE {line}: "
    lines = [prefix + text_line]
    if column is not None:
        lines.append(" " * (len(prefix) + column - 1) + "^")
    return lines
