"""Templates and examples keep pgmi's file:line:column for an error inside a migration.

Each deploy.sql runs its migrations with EXECUTE and names the failing file itself; it
must re-raise the server's error rather than raise a new one, or the position inside the
file is lost and pgmi can only point at deploy.sql. A syntax error is put into one
migration of each (a copy), and the deploy must report that file and line, the database
left without the migration's effects.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from projects import query

REPO = Path(__file__).resolve().parent.parent
BROKEN = "SELEC broken_here;"

# (project directory, the migration to break)
PROJECTS = [
    ("templates/basic", "migrations/002_user_crud.sql"),
    ("templates/advanced", "membership/02-identity.sql"),
    ("examples/demo", "schema/002_functions.sql"),
    ("examples/test-gated-deploy", "migrations/002_user_crud.sql"),
    ("examples/seed-demo", "migrations/001_catalog.sql"),
    ("examples/tap-reporter", "schema/001_items.sql"),
    ("examples/lock-safe-deploy/project", "migrations/002_add_status.sql"),
    ("examples/execution-order-policy/project", "schema/010_catalog.sql"),
]


def _break(project: Path, relative: str) -> int:
    """Append BROKEN as the file's last line; returns its line number."""
    path = project / relative
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + BROKEN + "\n", encoding="utf-8")
    return text.count("\n") + 1


@pytest.mark.parametrize(("source", "migration"), PROJECTS, ids=[p[0] for p in PROJECTS])
def test_a_syntax_error_in_a_migration_is_reported_at_its_line(source, migration, run_pgmi, pg, tmp_path,
                                                               create_database):
    project = tmp_path / "p"
    shutil.copytree(REPO / source, project)
    line = _break(project, migration)
    db = create_database()
    result = run_pgmi("deploy", str(project), "-d", db, "--json", timeout=300)
    assert result.returncode == 13, result.stderr[-3000:]
    envelope = json.loads(result.stdout)
    assert envelope["sqlstate"] == "42601"
    assert f"FILE: ./{migration}:{line}:1\n" in result.stderr, result.stderr[-3000:]
    assert f"LINE {line}: {BROKEN}" in result.stderr
    # Nothing of the failed deploy was committed: deploy.sql is one transaction up to COMMIT.
    assert query(pg, db, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                         "'information_schema')") == [[0]]
