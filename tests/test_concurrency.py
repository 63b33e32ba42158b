"""Parallel deploys of one project into one database, the deploy lock and --overwrite.

Every test checks the final state: a deploy either applied everything or nothing, and the
exit codes say which.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from projects import query, write_project

# Head and tail (psql mode after the first COMMIT): a deploy that ran only partly would
# leave an 'a' row without its 'b' row.
SCRIPT = """BEGIN;
CREATE TABLE IF NOT EXISTS runs (phase text, at timestamptz DEFAULT clock_timestamp());
INSERT INTO runs (phase) VALUES ('a');
COMMIT;
SELECT pg_sleep(0.3);
INSERT INTO runs (phase) VALUES ('b');
"""


def _db() -> str:
    return "k_" + uuid.uuid4().hex[:10]



def _drop(pg, db: str) -> None:
    import pg8000.native

    admin = pg8000.native.Connection(**pg.conn_kwargs())
    try:
        admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d", d=db)
        admin.run(f'DROP DATABASE IF EXISTS "{db}"')
    finally:
        admin.close()


@pytest.mark.parametrize("lock_wait", [None, "120s"])
def test_eight_parallel_deploys_of_a_new_database(tmp_path, pg, run_pgmi, lock_wait):
    proj = write_project(tmp_path / "p", {}, SCRIPT)
    db = _db()
    args = ["deploy", str(proj), "-d", db] + (["--lock-wait", lock_wait] if lock_wait else [])
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: run_pgmi(*args, timeout=300), range(8)))
        codes = sorted(r.returncode for r in results)
        for r in results:
            assert "Traceback" not in r.stderr and "panic" not in r.stderr, r.stderr
            assert r.returncode in (0, 15), r.stderr
            if r.returncode == 15:
                assert "concurrent deployment in progress" in r.stderr
        successes = codes.count(0)
        if lock_wait:
            assert codes == [0] * 8, [r.stderr for r in results if r.returncode]
        else:
            assert successes >= 1
        rows = query(pg, db, "SELECT phase, count(*) FROM runs GROUP BY phase ORDER BY phase")
        assert rows == [["a", successes], ["b", successes]]
        # one after another: every 'a' follows the previous deploy's 'b'
        phases = [r[0] for r in query(pg, db, "SELECT phase FROM runs ORDER BY at")]
        assert phases == ["a", "b"] * successes
    finally:
        _drop(pg, db)


def _hold_deploy_lock(pg, db: str):
    """A session holding `db`'s deploy lock, taken exactly as pgmi takes it."""
    import pg8000.native

    from pgmilib.resources import read_sql

    holder = pg8000.native.Connection(**pg.conn_kwargs(db))
    assert holder.run(read_sql("deploy_lock.sql"))[0][1] is True
    return holder


def test_timeout_ends_a_lock_wait_promptly_with_16(tmp_path, pg, fresh_db, run_pgmi):
    holder = _hold_deploy_lock(pg, fresh_db)
    try:
        proj = write_project(tmp_path / "p", {}, "CREATE TABLE never (a int);\n")
        started = time.monotonic()
        result = run_pgmi("deploy", str(proj), "-d", fresh_db, "--lock-wait", "60s", "--timeout", "2s")
        elapsed = time.monotonic() - started
        assert result.returncode == 16, result.stderr
        assert "deployment timed out after 2s (--timeout)" in result.stderr
        assert elapsed < 20
        assert query(pg, fresh_db, "SELECT to_regclass('never') IS NULL") == [[True]]
    finally:
        holder.close()


def test_overwrite_refuses_to_drop_under_a_running_deploy(tmp_path, pg, fresh_db, run_pgmi):
    query(pg, fresh_db, "CREATE TABLE precious (a int)")
    holder = _hold_deploy_lock(pg, fresh_db)
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE fresh (a int);\n")
    try:
        for extra in ([], ["--lock-wait", "1s"]):
            result = run_pgmi("deploy", str(proj), "-d", fresh_db, "--overwrite", "--force", *extra)
            assert result.returncode == 15, result.stderr
            assert "--overwrite will not drop it underneath" in result.stderr
            assert f"pid {holder.run('SELECT pg_backend_pid()')[0][0]}" in result.stderr  # holder still alive
        assert query(pg, fresh_db, "SELECT to_regclass('precious') IS NOT NULL, to_regclass('fresh') IS NULL") == [
            [True, True]]
    finally:
        holder.close()
    result = run_pgmi("deploy", str(proj), "-d", fresh_db, "--overwrite", "--force")
    assert result.returncode == 0, result.stderr
    assert query(pg, fresh_db, "SELECT to_regclass('precious') IS NULL, to_regclass('fresh') IS NOT NULL") == [
        [True, True]]


def test_overwrite_waits_for_a_deploy_that_finishes_within_lock_wait(tmp_path, pg, fresh_db, run_pgmi):
    import threading

    holder = _hold_deploy_lock(pg, fresh_db)
    threading.Timer(1.5, holder.close).start()
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE fresh (a int);\n")
    result = run_pgmi("deploy", str(proj), "-d", fresh_db, "--overwrite", "--force", "--lock-wait", "30s")
    assert result.returncode == 0, result.stderr
    assert "Waiting up to 30s" in result.stderr
    assert query(pg, fresh_db, "SELECT to_regclass('fresh') IS NOT NULL") == [[True]]


def test_lock_key_formulas_agree(pg, fresh_db, conn):
    from pgmilib.resources import read_sql

    holder = _hold_deploy_lock(pg, fresh_db)
    try:
        pid = holder.run("SELECT pg_backend_pid()")[0][0]
        assert conn.run(read_sql("deploy_lock_held.sql"), database=fresh_db) == [[pid]]
        assert conn.run(read_sql("deploy_lock_held.sql"), database="postgres") == []
    finally:
        holder.close()


