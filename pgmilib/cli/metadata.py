"""`pgmi metadata scaffold|validate|plan`: offline commands over a project's <pgmi-meta> blocks.

The rules (reading, validating and ordering blocks) live in pgmilib/project/metadata.py, and
the `validate` and `plan` reports are built by pgmilib/project/reports.py (the MCP tools return
the same ones); these functions render them: the report is the data the user asked for
(stdout), progress goes to stderr.
"""

from __future__ import annotations

from typing import Any

from pgmilib.errors import UsageError
from pgmilib.fileio import atomic_write
from pgmilib.project.checksums import BOM
from pgmilib.project.metadata import fallback_id, scaffold_block
from pgmilib.project.reports import plan_report, validation_report
from pgmilib.project.scan import scan_project


def require_project_path(args: Any, command: str) -> str:
    """The positional <project_path>, or the multi-line usage error (exit 2)."""
    from pgmilib.errors import UsageError

    path = getattr(args, "project_path", None)
    if path:
        return path
    err = UsageError("missing required argument: <project_path>")
    err.trailer = ["", f"Usage: {command} <project_path> [flags]", "", "Example:", f"  {command} ."]
    raise err


def cmd_scaffold(args: Any, out: Any) -> int:
    """`pgmi metadata scaffold <path> [--write] [--idempotent=true|false]`.

    The report (files, ids, what was written) is the data the user asked for: stdout.
    Progress lines go to stderr, as everywhere.
    """
    import os

    if getattr(args, "project_path", None) is None and getattr(args, "flag_operand", None) is not None:
        args.project_path = args.flag_operand  # `--idempotent ./proj`: the bare flag, then the path
    elif getattr(args, "flag_operand", None) is not None:
        raise UsageError(f"invalid boolean value {args.flag_operand!r} for --idempotent: use true or false")
    root = require_project_path(args, "pgmi metadata scaffold")
    idempotent = str(getattr(args, "idempotent", "true")).lower() == "true"
    write = bool(getattr(args, "write", False))
    out.info("Scanning for SQL files without metadata...")
    project = scan_project(root, max_file_size=_max_file_size())
    todo = [f for f in project.files if f.is_sql and not f.is_test and f.metadata is None]
    out.verbose(f"{len(project.files)} file(s) scanned, {len(todo)} without metadata")
    if not todo:
        out.data("All SQL files already have metadata.")
        return 0
    out.data(f"Found {len(todo)} file(s) without metadata:")
    for f in todo:
        out.data("")
        out.data(f"  {f.path}")
        out.data(f"    ID: {fallback_id(f.path)} (fallback)")
        out.data(f"    Idempotent: {'true' if idempotent else 'false'}")
        if write:
            target = str(getattr(f, "source", None) or os.path.join(root, f.path[2:]))
            with open(target, "rb") as fh:
                original = fh.read()
            bom = BOM if original.startswith(BOM) else b""
            block = scaffold_block(f.path, idempotent).encode("utf-8")
            atomic_write(target, bom + block + original[len(bom):], keep_mode=True)
            out.data("    Written to file")
    out.data("")
    if write:
        out.data(f"Generated metadata for {len(todo)} file(s).")
    else:
        out.data("Preview mode: no files were modified. Use --write to apply changes.")
    return 0


def cmd_validate(args: Any, out: Any) -> int:
    """`pgmi metadata validate <path> [--json]`: counts and duplicate ids (exit 1 on duplicates)."""
    import json

    from pgmilib.errors import PgmiError

    root = require_project_path(args, "pgmi metadata validate")
    as_json = bool(getattr(args, "json", False))
    if not as_json:
        out.info("Scanning and validating SQL files...")
    report = validation_report(root, _max_file_size())
    out.verbose(f"scanned {report['total_files']} file(s) under {root}")
    if not as_json:
        out.info("Validating metadata graph...")
    lines = report["duplicate_ids"]
    if as_json:
        out.data(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        out.data("")
        out.data("Validation Summary:")
        out.data(f"  Total files: {report['total_files']}")
        out.data(f"  Files with metadata: {report['files_with_metadata']}")
        out.data(f"  Files without metadata: {report['files_without_metadata']}")
        out.data("")
        if lines:
            out.data("Error: Duplicate IDs detected:")
            for line in lines:
                out.data(f"  {line}")
        else:
            out.data("Metadata validation passed.")
    if lines:
        raise PgmiError("metadata validation failed")
    return 0


def cmd_plan(args: Any, out: Any) -> int:
    """`pgmi metadata plan <path> [--json]`: one entry per SQL file, in sort-key order."""
    import json

    root = require_project_path(args, "pgmi metadata plan")
    as_json = bool(getattr(args, "json", False))
    if not as_json:
        out.info("Scanning SQL files and analyzing dependencies...")
    report = plan_report(root, _max_file_size())
    entries = report["plan"]
    out.verbose(f"{len(entries)} SQL file(s) to order under {root}")
    if as_json:
        out.data(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    out.data("")
    out.data(f"Metadata Summary ({len(entries)} files):")
    for n, e in enumerate(entries, 1):
        out.data("")
        out.data(f"{n}. {e['path']}")
        out.data(f"   ID: {e['id']}")
        if e["description"]:
            out.data(f"   Description: {e['description']}")
        out.data(f"   Idempotent: {'true' if e['idempotent'] else 'false'}")
        out.data(f"   Sort Keys: [{' '.join(e['sort_keys'])}]")
    out.data("")
    out.data("Note: at deploy time pgmi_plan_view lists a file once per sort key, ordered by key then path")
    out.data("(byte order); files without metadata are keyed by their path.")
    return 0


def _max_file_size() -> int:
    """PGMI_MAX_FILE_SIZE of this process (the scanner itself never reads the environment)."""
    import os

    from pgmilib.project.root import max_file_size_from

    return max_file_size_from(os.environ)
