"""The one loader for bundled files (`sql/`, `templates/`, docs), checkout and zipapp alike.

In a checkout they sit beside the package (`<repo>/sql`); in the zipapp and in a
`pip install`, build.py / pyproject place them inside the package (`pgmilib/sql`).
"""

from __future__ import annotations

import functools
from pathlib import Path

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from importlib.abc import Traversable


@functools.cache
def resource_dir(kind: str) -> Traversable:
    """The directory of bundled `kind` files ("sql", "templates", ...)."""
    # On disk (the checkout, pip, the zipapp's extracted copy) a path is all it takes; importlib's
    # resources machinery costs a few milliseconds of imports on every run, so it is only the
    # fallback for a package that is not on disk (imported straight from an archive).
    package = Path(__file__).resolve().parent
    for candidate in (package / kind, package.parent / kind):
        if candidate.is_dir():
            return candidate
    from importlib import resources

    return resources.files("pgmilib") / kind


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
