"""How a fleet run is shown: a line per target as it finishes, a final table, or --json.

Everything goes through `redact()` (Output does it for stderr lines; the JSON is redacted
field by field), and nothing here prints a target's connection: only its name, database,
status and error, so per-target credentials and tokens never reach the output.
"""

from __future__ import annotations

import json
from typing import Any

from pgmilib.fleet.runner import FleetResult, TargetOutcome
from pgmilib.output import Output
from pgmilib.redact import redact

_INDENT = "    "


def target_line(out: Output, outcome: TargetOutcome, done: int, total: int) -> None:
    """`✓ [3/20] tenant-a: tenant_a: 4 files loaded in 0.31s` (and the error block / log of a failure)."""
    ok = outcome.status == "success"
    if ok:
        text = outcome.summary or "done"
    elif outcome.status == "cancelled":
        text = f"cancelled (exit {outcome.exit_code})"
    else:
        text = f"failed (exit {outcome.exit_code}): {outcome.error}"
    out.info(f"{out.icon(ok)} [{done}/{total}] {outcome.name}: {text}")
    if not ok or out.verbose_mode:
        for line in outcome.log.splitlines():
            out.info(f"{_INDENT}{outcome.name} | {line}")
    if outcome.status == "failed":
        for line in outcome.error_text.splitlines()[1:]:
            out.info(f"{_INDENT}{line}")


def table(result: FleetResult) -> str:
    """The final table: one row per target in list order, then the counts."""
    rows = [("TARGET", "STATUS", "EXIT", "DURATION", "DETAIL")]
    for o in result.outcomes:
        detail = o.error if o.status != "success" else o.database
        rows.append((o.name, o.status, "-" if o.exit_code is None else str(o.exit_code),
                     f"{o.duration:.2f}s" if o.exit_code is not None else "-", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    counts = result.summary()
    lines.append(f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['cancelled']} cancelled, "
                 f"{counts['skipped']} not started, of {counts['total']} target(s) in {result.duration:.2f}s")
    return redact("\n".join(line.rstrip() for line in lines))


def envelope(result: FleetResult, *, rehearse: bool = False) -> dict[str, Any]:
    """The --json document: one object per target plus a summary."""
    status = "success" if result.ok else ("interrupted" if result.cancelled else "failed")
    doc: dict[str, Any] = {"status": status, "exitCode": result.exit_code,
                           "targets": [o.as_json() for o in result.outcomes], "summary": result.summary()}
    if rehearse:  # the same key as a single deploy's envelope (pgmilib/deploy/request.py describe)
        doc["rehearsed"] = True
    return _redacted(doc)


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items() if v not in ("", None) or k == "exitCode"}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
