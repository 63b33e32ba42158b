"""`pgmi info [path]`: an offline summary of a project, for people and for agents (--json).

It never connects. It reuses the deploy's own scanner, so the counts are exactly the files
a deploy would load, and the deploy's pgmi.yaml loader, so a broken config shows up here
before it breaks a deployment.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

from pgmilib.errors import ConfigError
from pgmilib.records import field, record


@record
class ProjectInfo:
    """The facts `pgmi info` reports; field order is the JSON key order."""

    path: str
    template: str
    deploySql: bool
    configFile: str
    totalFiles: int = 0
    sqlFiles: int = 0
    testFiles: int = 0
    metadataWith: int = 0
    directories: dict[str, int] = field(default_factory=dict)


def detect_template(root: str) -> str:
    """`advanced` when lib/api exists, else `basic` when deploy.sql exists, else `unknown`."""
    if os.path.exists(os.path.join(root, "lib", "api")):
        return "advanced"
    if os.path.exists(os.path.join(root, "deploy.sql")):
        return "basic"
    return "unknown"


def config_status(root: str) -> str:
    """`ok`, `absent`, or `error: <message>` for the project's pgmi.yaml."""
    from pgmilib.config import load_project_config

    try:
        return "absent" if load_project_config(root) is None else "ok"
    except ConfigError as err:
        return f"error: {err.message}"


def _directory(path: str) -> str:
    """Directory of a `./`-path as the summary groups it (`.` for the project root)."""
    return posixpath.dirname(path.removeprefix("./")) or "."


def gather(root: str) -> ProjectInfo:
    """Scan `root` and count; scan failures propagate (missing path: exit 10)."""
    from pgmilib.project.root import max_file_size_from
    from pgmilib.project.scan import scan_project

    project = scan_project(root, max_file_size=max_file_size_from(os.environ))
    info = ProjectInfo(
        path=os.path.abspath(root),
        template=detect_template(root),
        deploySql=os.path.isfile(os.path.join(root, "deploy.sql")),
        configFile=config_status(root),
    )
    directories: dict[str, int] = {}
    for f in project.files:
        info.totalFiles += 1
        info.sqlFiles += bool(f.is_sql)
        info.testFiles += bool(f.is_test)
        info.metadataWith += f.metadata is not None
        directories[_directory(f.path)] = directories.get(_directory(f.path), 0) + 1
    info.directories = dict(sorted(directories.items()))
    return info


def render(info: ProjectInfo, icon: Any) -> str:
    """The human summary; `icon(ok)` supplies the ok/fail glyph of the current output."""
    lines = [
        f"Project: {info.path}",
        f"Template: {info.template}",
        f"deploy.sql: {icon(True)} present" if info.deploySql else f"deploy.sql: {icon(False)} missing",
        f"pgmi.yaml: {info.configFile}",
        "",
        "Files",
        f"  Total:    {info.totalFiles}",
        f"  SQL:      {info.sqlFiles}",
        f"  Tests:    {info.testFiles}",
        f"  Metadata: {info.metadataWith} / {info.totalFiles}",
    ]
    if info.directories:
        lines += ["", "Directories"]
        lines += [f"  {name:<30} {count} files" for name, count in info.directories.items()]
    return "\n".join(lines)


def cmd_info(args: Any, out: Any) -> int:
    """`pgmi info [path] [--json]`: JSON on stdout, or the human summary on stdout."""
    info = gather(getattr(args, "path", None) or ".")
    if getattr(args, "json", False):
        out.data(json.dumps(info.__dict__, indent=2, ensure_ascii=False))
    else:
        out.data(render(info, out.icon))
    return 0
