"""Remedies a server error's report adds: the psql-only feature a syntax error points at, and
what to do when the lock table fills up. Pure text rules; no database access."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pgmilib.errors import PgDiagnostics
from pgmilib.sqllex import mask, source_line

SCRIPT_NAME = "deploy.sql"
_LOCK_SETTING = re.compile(r"max_(?:pred_)?locks_per_transaction")
_META = re.compile(r"\\([A-Za-z!?]+|\.)")
_COPY_STDIN = re.compile(r"(?<![\w$])COPY(?![\w$])[^;]*?(?<![\w$])FROM\s+STDIN\s*;", re.IGNORECASE)
_VARIABLE = re.compile(r":(?:'[A-Za-z_]\w*'|\"[A-Za-z_]\w*\"|[A-Za-z_]\w*)")


def psql_only_hint(details: dict[str, Any], script_text: str, files: Mapping[str, str] | None) -> str | None:
    """Name the psql-only feature a syntax error points at: a backslash meta-command, the data
    lines of a `COPY ... FROM stdin` (pg_dump output), or a `:variable`. They are psql's own,
    not SQL, so the server cannot run them, neither in deploy.sql nor through EXECUTE."""
    if details.get("line") is not None:
        where, content, line, column = SCRIPT_NAME, script_text, details["line"], details.get("column")
        how = "in deploy.sql (pgmi sends it to the server, which only runs SQL)"
    elif details.get("file") and details.get("fileLine") and files:
        where, line, column = details["file"], details["fileLine"], details.get("fileColumn")
        content = script_text if where == SCRIPT_NAME else files.get(where, "")
        how = "in deploy.sql (pgmi sends it to the server, which only runs SQL)" if where == SCRIPT_NAME \
            else "through EXECUTE (the server only runs SQL)"
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
