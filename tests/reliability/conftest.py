"""Fixtures of the reliability suite: its own cluster (TCP, password auth), figures, the secret scan.

The reliability cluster is separate from the shared `pg` fixture because the fault trials
stop and restart it (`pg_ctl stop -m fast`), which would break every other test using the
shared server. It listens on 127.0.0.1 (so the TCP proxy can sit in front of it) and
requires SCRAM passwords over TCP: the deploy role's password is the canary, so it really
travels through pgmi's connection code. The superuser keeps trust over the unix socket
for the test's own bookkeeping queries.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from harness import CANARIES, CANARY_PASSWORD, CAPTURED, DEPLOY_ROLE, FIGURES, FINDINGS, FULL, SEED, secret_hits

from pgmilib.server.cluster import Cluster
from pgmilib.server.discovery import find_pg_bin


class RelServer:
    """The reliability cluster plus what a trial needs to reach and restart it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = cluster.port

    def admin(self, database: str = "postgres"):
        import pg8000.native

        return pg8000.native.Connection(**self.cluster.conn_kwargs(database))

    def url(self, database: str, port: int | None = None) -> str:
        """Connection URI with the canary password, via the proxy when `port` is given."""
        return (f"postgresql://{DEPLOY_ROLE}:{CANARY_PASSWORD}@127.0.0.1:{port or self.port}/{database}"
                "?sslmode=disable&connect_timeout=5")

    def env(self, port: int | None = None) -> dict[str, str]:
        """PG* variables for the granular flags path, password in PGPASSWORD."""
        return {"PGHOST": "127.0.0.1", "PGPORT": str(port or self.port), "PGUSER": DEPLOY_ROLE,
                "PGPASSWORD": CANARY_PASSWORD, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "5"}

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this cluster (as the server account when root; see pgmilib/server/account.py)."""
        self.cluster._run([self.cluster._tool("pg_ctl"), "-D", self.cluster.data_dir, "-l", self.cluster.log_path,
                           *args], _account(), what="pg_ctl " + " ".join(args))

    def create_database(self) -> str:
        name = "rel_" + uuid.uuid4().hex[:10]
        admin = self.admin()
        try:
            admin.run(f'CREATE DATABASE "{name}" OWNER {DEPLOY_ROLE}')
        finally:
            admin.close()
        return name

    def drop_database(self, name: str) -> None:
        admin = self.admin()
        try:
            admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                      "AND pid <> pg_backend_pid()", d=name)
            admin.run(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            admin.close()


def _account():
    from pgmilib.server.account import server_account as _server_account

    return _server_account()


@pytest.fixture(scope="session")
def rel_server():
    if not find_pg_bin():
        pytest.fail("the reliability suite needs local PostgreSQL server binaries (apt-get install postgresql): "
                    "its fault trials stop and restart their own cluster", pytrace=False)
    cluster = Cluster(listen_tcp=True, settings={"max_connections": "60", "password_encryption": "scram-sha-256"})
    cluster.start()
    try:
        hba = Path(cluster.data_dir, "pg_hba.conf")
        hba.write_text("# reliability suite: trust over the socket, SCRAM over TCP\n"
                       "local all all trust\n"
                       "host all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8")
        server = RelServer(cluster)
        admin = server.admin()
        try:
            admin.run(f"CREATE ROLE {DEPLOY_ROLE} LOGIN SUPERUSER PASSWORD '{CANARY_PASSWORD}'")
            admin.run("SELECT pg_reload_conf()")
        finally:
            admin.close()
        yield server
    finally:
        cluster.stop()


# ---- figures and the final secret scan ----------------------------------------------------

def pytest_sessionfinish(session, exitstatus):
    """Scan everything pgmi printed or wrote during the run for the canaries (must be zero)."""
    if not CAPTURED:
        return
    hits = [(label, secret_hits(text)) for label, text in CAPTURED if secret_hits(text)]
    FIGURES["outputs scanned"] = len(CAPTURED)
    FIGURES["secret hits"] = sum(n for _, n in hits)
    if hits:
        FINDINGS.extend(f"secret canary in {label} ({n}x)" for label, n in hits)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES and not CAPTURED:
        return
    tr = terminalreporter
    tr.section("pgmi reliability figures")
    tr.write_line(f"mode: {'full (PGMI_RELIABILITY=full)' if FULL else 'fast slice'}; seed: {SEED} "
                  f"(replay with PGMI_RELIABILITY_SEED={SEED})")
    order = ["fault trials", "faults landed", "faults survived", "half-applied transactions",
             "leftover locks or sessions", "hostile cases tried", "lexer cases checked on the server",
             "concurrent deploys", "outputs scanned", "secret hits", "tracebacks"]
    for key in order + sorted(k for k in FIGURES if k not in order and not k.startswith(("fault:", "landed:"))):
        tr.write_line(f"  {key:38} {FIGURES.get(key, 0)}")
    kinds = sorted(k for k in FIGURES if k.startswith("fault:"))
    if kinds:
        tr.write_line("  per fault kind (trials / landed): " + ", ".join(
            f"{k[6:]} {FIGURES[k]}/{FIGURES.get('landed:' + k[6:], 0)}" for k in kinds))
    for finding in FINDINGS:
        tr.write_line(f"  FINDING: {finding}")
    path = os.environ.get("PGMI_RELIABILITY_REPORT")
    if path:
        Path(path).write_text(json.dumps({"seed": SEED, "full": FULL, "figures": dict(FIGURES),
                                          "findings": FINDINGS, "canaries": len(CANARIES)}, indent=2) + "\n")
