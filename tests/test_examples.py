"""examples/lock-safe-deploy: every outcome its README states, against a real server.

A: deploy + redeploy; B: a tail failure after the head committed, then recovery;
C: an INVALID index left by a failed concurrent build is reaped and rebuilt. Break-it runs
on a temporary copy so the shipped files stay pristine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "lock-safe-deploy"


def connect(pg, db: str):
    import pg8000.native

    return pg8000.native.Connection(**pg.conn_kwargs(db))


def index_state(conn, name: str):
    """(valid, unique) of an index, or None when it does not exist."""
    rows = conn.run("SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = to_regclass(:n)", n=name)
    return tuple(rows[0]) if rows else None


def deploy(run_pgmi, project: Path, db: str, *args: str):
    return run_pgmi("deploy", str(project), "-d", db, *args, timeout=300)


@pytest.fixture
def demo_db(run_pgmi, create_database):
    db = create_database()
    result = deploy(run_pgmi, EXAMPLE / "project", db)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[phase 2] plan survived COMMIT: 3 source file(s), 3 planned step(s)" in result.stderr
    return db


def test_a_success_and_redeploy(run_pgmi, pg, demo_db):
    conn = connect(pg, demo_db)
    try:
        assert conn.run("SELECT count(*) FROM orders")[0][0] == 100000
        assert index_state(conn, "idx_orders_customer") == (True, False)
        assert index_state(conn, "idx_orders_status") == (True, False)
        assert conn.run("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_amount_nonneg'") == [[True]]
    finally:
        conn.close()
    again = deploy(run_pgmi, EXAMPLE / "project", demo_db)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already exists" not in again.stderr.replace("already exists, skipping", "")
    conn = connect(pg, demo_db)
    try:
        assert conn.run("SELECT count(*) FROM orders")[0][0] == 100000
    finally:
        conn.close()


def test_b_tail_failure_keeps_the_committed_units_then_recovers(run_pgmi, pg, tmp_path, create_database):
    broken = tmp_path / "lsd"
    shutil.copytree(EXAMPLE / "project", broken)
    # the README's break-it step: the last tail statement indexes a column that does not exist
    script = (broken / "deploy.sql").read_text(encoding="utf-8")
    assert script.count("ON orders (status)") == 1
    (broken / "deploy.sql").write_text(script.replace("ON orders (status)", "ON orders (nonexistent_column)"),
                                       encoding="utf-8")
    db = create_database()
    result = deploy(run_pgmi, broken, db, "--json")
    assert result.returncode == 13, result.stderr[-2000:]
    envelope = json.loads(result.stdout)
    assert envelope["sqlstate"] == "42703"
    assert 'column "nonexistent_column" does not exist' in envelope["error"]
    assert envelope["executionMode"] == "psql" and envelope["unitsCommitted"] >= 1
    conn = connect(pg, db)
    try:
        assert conn.run("SELECT count(*) FROM orders")[0][0] == 100000
        assert conn.run("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' "
                        "AND column_name = 'status'")[0][0] == 1
        assert index_state(conn, "idx_orders_customer") == (True, False)
        assert conn.run("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_amount_nonneg'") == [[True]]
        assert conn.run("SELECT to_regclass('idx_orders_status') IS NULL")[0][0] is True
    finally:
        conn.close()
    shutil.copy(EXAMPLE / "project" / "deploy.sql", broken / "deploy.sql")
    recovered = deploy(run_pgmi, broken, db)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    conn = connect(pg, db)
    try:
        assert index_state(conn, "idx_orders_customer") == (True, False)
        assert index_state(conn, "idx_orders_status") == (True, False)
    finally:
        conn.close()


def test_c_invalid_index_is_reaped_and_rebuilt(run_pgmi, pg, demo_db):
    conn = connect(pg, demo_db)
    try:
        conn.run("DROP INDEX idx_orders_customer")
        with pytest.raises(Exception) as caught:
            conn.run("CREATE UNIQUE INDEX CONCURRENTLY idx_orders_customer ON orders (customer_id)")
        assert caught.value.args[0]["C"] == "23505"
        assert index_state(conn, "idx_orders_customer") == (False, True)  # left behind, INVALID
    finally:
        conn.close()
    healed = deploy(run_pgmi, EXAMPLE / "project", demo_db)
    assert healed.returncode == 0, healed.stderr[-2000:]
    assert "reaping INVALID index idx_orders_customer" in healed.stderr
    conn = connect(pg, demo_db)
    try:
        assert index_state(conn, "idx_orders_customer") == (True, False)
    finally:
        conn.close()
    assert deploy(run_pgmi, EXAMPLE / "project", demo_db).returncode == 0


def test_every_example_is_exercised_by_the_suite():
    """Each example directory is deployed by some test module (its README's outcome is asserted there)."""
    sources = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    untested = [p.name for p in (REPO / "examples").iterdir() if p.is_dir() and f'"{p.name}"' not in sources
                and f"/{p.name}" not in sources and f'"examples" / "{p.name}"' not in sources]
    assert untested == []
