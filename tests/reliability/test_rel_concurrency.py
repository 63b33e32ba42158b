"""Eight deploys of one project into one database, started together.

Every run must end 0 or 15 (the deploy lock, or a lost CREATE DATABASE race), no run may be
half-applied, and the final state must be exact: each run that exited 0 left all its rows,
each run that exited 15 left none. With --lock-wait long enough, all of them succeed one
after the other. Covered for an existing database and for one that does not exist yet
(then the eight also race to create it).
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from harness import CANARY_TOKEN, DEPLOY_ROLE, FIGURES, FULL, assert_clean, base_env, error_lines, pgmi_cmd

RUNS = 8
HEAD_STEPS, TAIL_STEPS = 3, 2

DEPLOY_SQL = (
    "BEGIN;\n"
    "CREATE SCHEMA IF NOT EXISTS rel;\n"
    "CREATE TABLE IF NOT EXISTS rel.head_marks (run text, step int);\n"
    "CREATE TABLE IF NOT EXISTS rel.tail_marks (run text, step int);\n"
    + "".join(f"INSERT INTO rel.head_marks VALUES (current_setting('pgmi.run'), {i}); SELECT pg_sleep(0.05);\n"
              for i in range(1, HEAD_STEPS + 1))
    + "COMMIT;\nBEGIN;\n"
    + "".join(f"INSERT INTO rel.tail_marks VALUES (current_setting('pgmi.run'), {i});\n"
              for i in range(1, TAIL_STEPS + 1))
    + "COMMIT;\n"
)


def _start_together(rel_server, project, db: str, lock_wait: str | None) -> list[tuple[str, int, str]]:
    procs = []
    for i in range(RUNS):
        run_id = f"r{i}-{uuid.uuid4().hex[:6]}"
        args = ["deploy", str(project), "--connection", rel_server.url(db), "--param", f"run={run_id}",
                "--param", f"api_token={CANARY_TOKEN}", "--timeout", "90s"]
        if lock_wait:
            args += ["--lock-wait", lock_wait]
        procs.append((run_id, subprocess.Popen(pgmi_cmd(*args), env=base_env(), stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True)))
    results = []
    for run_id, proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert_clean(f"concurrent {run_id}", stdout, stderr)
        results.append((run_id, proc.returncode, stderr))
    FIGURES["concurrent deploys"] += RUNS
    return results


def _check(rel_server, db: str, results: list[tuple[str, int, str]], lock_wait: str | None) -> None:
    codes = sorted(rc for _, rc, _ in results)
    for run_id, rc, stderr in results:
        assert rc in (0, 15), f"{run_id}: exit {rc}\n{stderr}"
        if rc == 15:
            assert len(error_lines(stderr)) == 1, stderr
    assert 0 in codes, f"no deploy succeeded: {codes}"
    if lock_wait:
        assert codes == [0] * RUNS, f"with --lock-wait every deploy should get its turn: {codes}"
    deadline = time.monotonic() + 10
    admin = rel_server.admin(db)
    try:
        while admin.run("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND usename = :u", u=DEPLOY_ROLE)[0][0] and time.monotonic() < deadline:
            time.sleep(0.1)
        heads = dict(admin.run("SELECT run, count(*) FROM rel.head_marks GROUP BY run"))
        tails = dict(admin.run("SELECT run, count(*) FROM rel.tail_marks GROUP BY run"))
        locks = admin.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0]
    finally:
        admin.close()
    assert locks == 0
    expected = {run_id: HEAD_STEPS for run_id, rc, _ in results if rc == 0}
    half = sum(1 for run_id, _, _ in results
               if (heads.get(run_id, 0), tails.get(run_id, 0)) not in ((0, 0), (HEAD_STEPS, TAIL_STEPS)))
    FIGURES["half-applied transactions"] += half
    assert heads == expected, f"head rows {heads}, expected exactly {expected}"
    assert tails == {run_id: TAIL_STEPS for run_id in expected}


# The fast slice (make test) runs one variant per database state; make reliability runs all four.
@pytest.mark.parametrize("lock_wait", ["60s"] if not FULL else [None, "60s"], ids=lambda v: "lock-wait" if v else "no-wait")
def test_eight_deploys_existing_database(rel_server, tmp_path, lock_wait):
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.sql").write_text(DEPLOY_SQL)
    db = rel_server.create_database()
    try:
        _check(rel_server, db, _start_together(rel_server, project, db, lock_wait), lock_wait)
    finally:
        rel_server.drop_database(db)


@pytest.mark.parametrize("lock_wait", [None] if not FULL else [None, "60s"], ids=lambda v: "lock-wait" if v else "no-wait")
def test_eight_deploys_database_not_yet_created(rel_server, tmp_path, lock_wait):
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.sql").write_text(DEPLOY_SQL)
    db = "rel_new_" + uuid.uuid4().hex[:10]
    try:
        results = _start_together(rel_server, project, db, lock_wait)
        # A lost CREATE DATABASE race is documented as 15, even with --lock-wait.
        codes = sorted(rc for _, rc, _ in results)
        assert all(rc in (0, 15) for rc in codes), [(rc, err[-800:]) for _, rc, err in results if rc not in (0, 15)]
        _check(rel_server, db, results, None)
        if lock_wait:
            FIGURES["create races lost with --lock-wait"] += codes.count(15)
    finally:
        rel_server.drop_database(db)
