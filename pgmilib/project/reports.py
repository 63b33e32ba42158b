"""The offline `metadata validate` and `metadata plan` reports, built once for every caller.

`pgmi metadata validate|plan` (pgmilib/cli/metadata.py) renders them for a person or as
`--json`; the MCP tools `metadata_validate` / `metadata_plan` return them as they are. Both
scan the project the same way and word a scan failure the same way, because both call these.
`max_file_size` is the caller's (read from its environment: `root.max_file_size_from`).
"""

from __future__ import annotations

from typing import Any

from pgmilib.errors import ConfigError
from pgmilib.project.metadata import duplicate_ids, file_summary
from pgmilib.project.scan import scan_project


def validation_report(root: str, max_file_size: int | None = None) -> dict[str, Any]:
    """`metadata validate`: file counts and every duplicated id (the JSON keys of the original).

    Duplicates are a result (`validation_passed: false`, one `id: first, other` line per extra
    file), not an exception: the CLI turns them into exit 1, the MCP tool returns them. A project
    that cannot be scanned raises the scan's ConfigError, prefixed `validation failed`.
    """
    try:
        files = list(scan_project(root, check_duplicates=False, max_file_size=max_file_size).files)
    except ConfigError as err:
        raise err.wrap("validation failed") from None
    with_meta = sum(1 for f in files if f.metadata is not None)
    lines = [f"{ident}: {paths[0]}, {other}" for ident, paths in duplicate_ids(files).items() for other in paths[1:]]
    return {
        "total_files": len(files),
        "files_with_metadata": with_meta,
        "files_without_metadata": len(files) - with_meta,
        "validation_passed": not lines,
        "duplicate_ids": lines,
    }


def plan_report(root: str, max_file_size: int | None = None) -> dict[str, Any]:
    """`metadata plan`: one entry per non-test SQL file, in sort-key order (`file_summary`)."""
    entries = file_summary(scan_project(root, max_file_size=max_file_size).files)
    return {"total_files": len(entries), "plan": entries}
