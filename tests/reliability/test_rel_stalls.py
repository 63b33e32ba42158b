"""R9, deterministically: a connection black-holed at each protocol phase, `--timeout` must hold.

`stall_proxy.py` stops forwarding when a phase is reached (start-up, SCRAM, the first query
of the session set-up, a statement of deploy.sql, the COPY that loads the files, a COMMIT).
For each: exit 16 (11 is tolerated: a connect attempt that failed on its own) within
`--timeout` + the 5 s cancel grace + 3 s for exit under load, counted from pgmi's first `-v`
line as in the fault trials (where its clock starts); one error line; no canary; and once the path is
closed, every transaction all or none, no advisory lock and no session left.
All phases run at once (each its own proxy, database and pgmi), so the slice stays short.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from harness import CANARY_TOKEN, DEPLOY_ROLE, FIGURES, FINDINGS, assert_clean, base_env, error_lines
from stall_proxy import PHASES, StallProxy
from timed_run import run_timed

TIMEOUT = 8  # seconds of --timeout: a loaded machine must reach the last phase (COMMIT) well within it
LIMIT = TIMEOUT + 5 + 3  # as the fault trials: the cancel grace, and 3 s for exit under load


def _project(root) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "lib.sql").write_text("SELECT 1; -- a file to load, so the COPY phase has data\n")
    (root / "deploy.sql").write_text(
        "BEGIN;\n"
        "INSERT INTO stall_marks VALUES (current_setting('pgmi.trial'), 1);\n"
        "SELECT pg_sleep(0.2) /* stall_marker_query */;\n"
        "INSERT INTO stall_marks VALUES (current_setting('pgmi.trial'), 2);\n"
        "/* stall_marker_commit */ COMMIT;\n", encoding="utf-8")


# trial -> (proxy phase, the target database exists); "create": the first query after login is
# the maintenance connection's, which checks for and creates the missing target database.
TRIALS = {**{phase: (phase, True) for phase in PHASES}, "create": ("session", False)}


def _trial(trial: str, server, db: str, project) -> dict:
    phase, exists = TRIALS[trial]
    proxy = StallProxy(server.port, phase)
    if not exists:
        db = db + "_new"
    url = server.url(db, proxy.port)
    args = ["deploy", str(project), "-v", "--connection", url, "--param", f"trial={trial}", "--param",
            f"api_token={CANARY_TOKEN}", "--timeout", f"{TIMEOUT}s"]
    try:
        run = run_timed(args, base_env(), LIMIT + 60)
    finally:
        stalled = proxy.stalled.is_set()
        proxy.close()  # the black-holed path ends: the server may now notice its client is gone
    return {"phase": trial, "rc": run.rc, "stdout": run.stdout, "stderr": run.stderr, "elapsed": run.elapsed,
            "hung": run.hung, "stalled": stalled}


def _server_left(server, db: str, budget: float = 15.0) -> tuple[list, int, list]:
    until = time.monotonic() + budget
    while True:
        admin = server.admin(db)
        try:
            # Any database: the maintenance connection of the "create" trial is in `postgres`.
            sessions = admin.run("SELECT pid, datname, state, query FROM pg_stat_activity WHERE usename = :u",
                                 u=DEPLOY_ROLE)
            locks = admin.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                              "(SELECT oid FROM pg_database WHERE datname = current_database())")[0][0]
            rows = admin.run("SELECT trial, count(*) FROM stall_marks GROUP BY trial")
        finally:
            admin.close()
        if (not sessions and not locks) or time.monotonic() > until:
            return sessions, locks, rows
        time.sleep(0.1)


def test_a_stall_at_every_protocol_phase_ends_within_the_timeout(rel_server, tmp_path):
    dbs = {trial: rel_server.create_database() for trial in TRIALS}
    for db in dbs.values():
        admin = rel_server.admin(db)
        try:
            admin.run("CREATE TABLE stall_marks (trial text, step int)")
        finally:
            admin.close()
    project = tmp_path / "project"
    _project(project)
    try:
        with concurrent.futures.ThreadPoolExecutor(len(TRIALS)) as pool:
            results = list(pool.map(lambda t: _trial(t, rel_server, dbs[t], project), TRIALS))
        problems = []
        for result in results:
            phase, rc, stderr = result["phase"], result["rc"], result["stderr"]
            FIGURES["stall phases"] += 1
            assert_clean(f"stall at {phase}", result["stdout"], stderr)
            where = f"stall at {phase}: exit {rc} after {result['elapsed']:.1f}s"
            if not result["stalled"]:
                problems.append(f"{where}: the phase was never reached\n{stderr[-1500:]}")
                continue
            if result["hung"] or result["elapsed"] > LIMIT:
                FINDINGS.append(f"{where} (limit {LIMIT}s)")
                problems.append(f"{where}: limit --timeout + 9s = {LIMIT}s\n{stderr[-1500:]}")
                continue
            if rc not in (11, 16):
                problems.append(f"{where}: expected 16 (or 11)\n{stderr[-1500:]}")
            elif len(error_lines(stderr)) != 1:
                problems.append(f"{where}: expected one error line\n{stderr}")
            sessions, locks, rows = _server_left(rel_server, dbs[phase])
            counts = dict(rows)
            if counts.get(phase, 0) not in (0, 2):
                problems.append(f"{where}: half-applied transaction ({counts.get(phase)} of 2 rows)")
            if sessions or locks:
                problems.append(f"{where}: left on the server: sessions {sessions}, advisory locks {locks}")
            FIGURES[f"stall at {phase}"] = f"exit {rc} after {result['elapsed']:.1f}s"
        assert not problems, "\n".join(problems)
    finally:
        for db in dbs.values():
            rel_server.drop_database(db)
            rel_server.drop_database(db + "_new")


@pytest.mark.parametrize("phase", ["startup"])
def test_stall_proxy_reaches_its_phase(rel_server, phase):
    """The proxy itself: a plain client sees the startup stall as silence, not an error."""
    import socket

    proxy = StallProxy(rel_server.port, phase)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.3) as sock:
            sock.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
            with pytest.raises(socket.timeout):
                sock.recv(1)
        assert proxy.stalled.is_set()
    finally:
        proxy.close()
