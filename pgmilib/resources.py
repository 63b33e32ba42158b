"""The one loader for bundled files (`sql/`, `templates/`, docs), checkout and zipapp alike.

In a checkout they sit beside the package (`<repo>/sql`); in the zipapp and in a
`pip install`, build.py / pyproject place them inside the package (`pgmilib/sql`).
"""

from __future__ import annotations

import functools
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path


@functools.cache
def resource_dir(kind: str) -> Traversable:
    """The directory of bundled `kind` files ("sql", "templates", ...)."""
    inside = resources.files("pgmilib") / kind
    if inside.is_dir():
        return inside
    return Path(__file__).resolve().parent.parent / kind


def read_sql(name: str) -> str:
    """Text of `sql/<name>`, e.g. read_sql("session_schema.sql")."""
    return (resource_dir("sql") / name).read_text(encoding="utf-8")


def read_sql_section(name: str, section: str) -> str:
    """The statement after `-- name: <section>` in `sql/<name>` (up to the next `-- name:`).

    Lets one file hold the few related statements of a module, each with its own comment.
    """
    return _sections(name)[section]


@functools.cache
def _sections(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in read_sql(name).splitlines():
        if line.startswith("-- name: "):
            if current is not None:
                found[current] = "\n".join(lines).strip()
            current, lines = line[len("-- name: "):].strip(), []
        elif current is not None and not line.startswith("--"):
            lines.append(line)
    if current is not None:
        found[current] = "\n".join(lines).strip()
    return found
