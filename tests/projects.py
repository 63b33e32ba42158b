"""Small helpers shared by the test modules: write a project tree, run the CLI in-process, query a database."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The official MCP SDK (the real client of the `pgmi serve` tests) needs Python >= 3.10; on 3.9
#: only the tests driven by it skip: pgmi serve itself runs there and tests/test_mcp_deploy.py and
#: tests/test_mcp_hostile.py drive it with line-level clients.
MCP_SDK_MISSING = sys.version_info < (3, 10)
MCP_SDK_REASON = "the official MCP SDK (mcp) needs Python >= 3.10"
needs_mcp_sdk = pytest.mark.skipif(MCP_SDK_MISSING, reason=MCP_SDK_REASON)

#: The usual deploy.sql of the tests: every SQL file in plan order, in one transaction.
EXECUTE_LOOP = """BEGIN;
DO $$ DECLARE f record; BEGIN
  FOR f IN SELECT p.path, p.content FROM pg_temp.pgmi_plan_view p
             JOIN pg_temp.pgmi_source_view s USING (path)
             WHERE s.is_sql_file ORDER BY p.execution_order LOOP
    EXECUTE f.content;
  END LOOP;
END $$;
COMMIT;
"""


def write_project(root: Path, files: dict[str, str | bytes], deploy_sql: str | None = "SELECT 1;\n") -> Path:
    """Write {relative path: text or bytes} under root, plus deploy.sql unless it is None."""
    root.mkdir(parents=True, exist_ok=True)
    if deploy_sql is not None:
        (root / "deploy.sql").write_text(deploy_sql, encoding="utf-8")
    for rel, body in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            target.write_bytes(body)
        else:
            target.write_bytes(body.encode("utf-8"))  # as written, no newline translation
    return root


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the real CLI in-process; returns (exit code, stdout, stderr)."""
    from pgmilib.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def query(pg, db: str, sql: str, **params) -> list:
    """Rows of `sql` in database `db` of the test server, on a connection of its own: what the
    database holds, independent of the connection pgmi used."""
    import pg8000.native

    conn = pg8000.native.Connection(**pg.conn_kwargs(db))
    try:
        return conn.run(sql, **params)
    finally:
        conn.close()


def server_has_lz4(conn) -> bool:
    """Whether the server behind `conn` (a pg8000 native connection) was built with lz4: the system
    package's is, the embedded server is not."""
    return conn.run("SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' "
                    "AND 'lz4' = ANY (enumvals)")[0][0] == 1


@contextlib.contextmanager
def own_cluster(*setup_sql: str, hba: str | None = None, **cluster_options: Any) -> Iterator[Any]:
    """A throwaway server of a test's own, for the pg_hba rules or server settings it needs.

    `setup_sql` runs as the superuser over the unix socket; `hba`, when given, replaces
    pg_hba.conf (keep a `local ... trust` line for that socket); the configuration is then
    reloaded. The server is stopped however the test ends.
    """
    import pg8000.native

    from pgmilib.server.cluster import Cluster
    from pgmilib.server.discovery import find_pg_bin

    if not find_pg_bin():
        pytest.skip("needs local PostgreSQL server programs")
    cluster = Cluster(**cluster_options).start()
    try:
        admin = pg8000.native.Connection(**cluster.conn_kwargs())
        try:
            for sql in setup_sql:
                admin.run(sql)
            if hba is not None:
                Path(cluster.data_dir, "pg_hba.conf").write_text(hba)
            admin.run("SELECT pg_reload_conf()")
        finally:
            admin.close()
        yield cluster
    finally:
        cluster.stop()


def app_login_cluster(password: str) -> Any:
    """`own_cluster` whose unix socket trusts `postgres` and asks `app` (with `password`) for
    SCRAM: a login the driver logs in itself, beside one without any exchange."""
    hba = "local all app scram-sha-256\nlocal all all trust\n"
    return own_cluster(f"CREATE ROLE app LOGIN PASSWORD '{password}'", hba=hba,
                       settings={"password_encryption": "scram-sha-256"})


class Sink:
    """Consumes COPY streams like the driver would, keeping the bytes (pure logic: no server)."""

    def __init__(self) -> None:
        self.copied: list[bytes] = []

    def run(self, sql: str, stream=None, **_: object):
        if stream is not None:
            self.copied.append(b"".join(stream))
        return []
