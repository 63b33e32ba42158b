"""Project paths: the `./`-rooted form, the derived columns, test paths and the generic id.

These are the rules `pgmi_register_file` applies server-side; computing them here lets the
scan and the offline commands (`pgmi metadata`, `pgmi info`) agree with the server.
"""

from __future__ import annotations

import re
from collections import namedtuple

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    import uuid

SQL_EXTENSIONS = frozenset({"sql", "ddl", "dml", "dql", "dcl", "psql", "pgsql", "plpgsql"})

_EXTENSION = re.compile(r"\.[a-zA-Z0-9]+$")


def normalise_path(path: str) -> str:
    """The `./`-rooted POSIX form of a path, exactly as `pgmi_register_file` derives it."""
    path = path.strip(" ").replace("\\", "/")
    if not path.startswith("./"):
        path = "./" + re.sub(r"^(?:\./|/)+", "", path)
    return re.sub(r"/{2,}", "/", path)


#: The `_pgmi_source` columns derived from a normalised path (same rules as the SQL side): name,
#: directory, extension (str), depth (int), parts (tuple[str, ...]), parent_folder_name (str | None).
#: A named tuple: one is made per file, and a tuple is the cheapest immutable value to make.
#: (collections' rather than typing.NamedTuple: the same class, without importing typing.)
PathColumns = namedtuple("PathColumns", ["name", "directory", "extension", "depth", "parts", "parent_folder_name"])


def path_columns(path: str) -> PathColumns:
    """Derive name/directory/extension/depth/parts/parent of a normalised path."""
    parts = tuple(path.split("/"))
    depth = len(parts) - 2
    name = parts[-1]
    directory = "./" if depth == 0 else "/".join(parts[: depth + 1]) + "/"
    match = _EXTENSION.search(name)
    return PathColumns(
        name=name,
        directory=directory,
        extension=match.group(0) if match else "",
        depth=depth,
        parts=parts,
        parent_folder_name=parts[-2] if depth > 0 else None,
    )


def is_sql_name(name: str) -> bool:
    """SQL file by extension only, case-insensitive (agrees with `pg_temp.pgmi_is_sql_file`)."""
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in SQL_EXTENSIONS


def is_test_path(path: str) -> bool:
    """A test file lives under a `__test__/` or `__tests__/` directory (case-sensitive)."""
    return "/__test__/" in path or "/__tests__/" in path


def is_fixture_name(filename: str) -> bool:
    """Fixtures are `_setup.sql` / `_setup.psql`, any case."""
    return filename.lower() in ("_setup.sql", "_setup.psql")


def generic_id(path: str) -> uuid.UUID:
    """The 16 MD5 bytes of the UTF-8 path as a UUID: the server's `md5(path::bytea)::uuid`."""
    import hashlib
    import uuid  # here: only files without a <pgmi-meta> id need it, and uuid imports platform

    return uuid.UUID(bytes=hashlib.md5(path.encode("utf-8")).digest())


# ---- test directories (__test__/ and __tests__/) -----------------------------------------------

def directory_rows_of_tests(test_paths: list[str]) -> list[tuple[str, str | None, int]]:
    """(path, parent_path, depth) for every directory holding a test-path file.

    parent_path is the nearest ancestor that is itself a row (gaps skipped); depth counts the
    segments after the first `/__test__/` or `/__tests__/`.
    """
    directories = sorted({p[: p.rfind("/") + 1] for p in test_paths})
    recorded = set(directories)
    rows = []
    for directory in directories:
        parent = None
        probe = directory[:-1]
        while "/" in probe:
            probe = probe[: probe.rfind("/")]
            if probe + "/" in recorded:
                parent = probe + "/"
                break
        rows.append((directory, parent, _test_depth(directory)))
    rows.sort(key=lambda row: row[0])
    return rows


def _test_depth(directory: str) -> int:
    found = [i for i in (directory.find("/__test__/"), directory.find("/__tests__/")) if i >= 0]
    first = min(found)
    marker = "/__test__/" if directory.startswith("/__test__/", first) else "/__tests__/"
    rest = directory[first + len(marker):]
    return len([segment for segment in rest.split("/") if segment])
