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
