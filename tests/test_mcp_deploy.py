"""The `deploy` tool of `pgmi serve` against a real server: isolation, cancellation, overwrite safety.

A raw line-level client (subprocess pipes) is used here so the test controls exactly when
each message is sent: the cancellation goes out while the deploy's statement is running.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from projects import write_project

REPO = Path(__file__).resolve().parent.parent


class RawClient:
    """`python3 pgmi.py serve` with JSON lines in and out; stderr collected."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGMI_NON_INTERACTIVE"] = "1"
        env.update(USER="pgmi_nobody", USERNAME="pgmi_nobody")  # an OS user the server does not know
        self.proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO))
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def _drain(self) -> None:
        self.stderr = self.proc.stderr.read()

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, request_id: object, name: str, arguments: dict) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}})

    def answer(self, timeout: float = 120) -> dict:
        return json.loads(self.lines.get(timeout=timeout))

    def result(self, request_id: object, name: str, arguments: dict, timeout: float = 120) -> dict:
        self.call(request_id, name, arguments)
        answer = self.answer(timeout)
        assert answer["id"] == request_id
        return answer["result"]

    def close(self) -> int:
        self.proc.stdin.close()
        code = self.proc.wait(30)
        return code


@pytest.fixture
def client():
    c = RawClient()
    yield c
    if c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()


@pytest.fixture
def database_name(pg):
    """A database name pgmi will create, dropped after the test."""
    import pg8000.native

    name = f"mcp_{uuid.uuid4().hex[:10]}"
    yield name
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d", d=name)
    admin.run(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


REPORT = ("DO $$ BEGIN RAISE NOTICE 'user=% flavour=%', current_user, "
          "coalesce(current_setting('pgmi.flavour', true), '<none>'); END $$;\n")


def test_two_deploys_in_one_server_do_not_share_settings_or_secrets(client, pg, database_name, tmp_path):
    """A's .env names the database user and a password; B has no .env: B must not connect as A's user."""
    import re

    password = pg.env().get("PGPASSWORD") or "sekret-a-123"
    a = write_project(tmp_path / "a", {"deploy.sql": REPORT, ".env": f"PGUSER={pg.user}\nPGPASSWORD={password}\n"})
    b = write_project(tmp_path / "b", {"deploy.sql": REPORT})
    no_user = re.sub(r"\b(user|password)=\S+\s*", "", pg.dsn("postgres"))  # the user comes from the environment
    first = client.result(1, "deploy", {"path": str(a), "connection": no_user, "database": database_name,
                                        "params": {"flavour": "alpha"}})
    assert not first.get("isError"), first
    assert f"user={pg.user} flavour=alpha" in first["structuredContent"]["notices"]

    # B: no PGUSER anywhere but in A's .env, so B connects as the (non-existent) OS user of the server.
    second = client.result(2, "deploy", {"path": str(b), "connection": no_user, "database": database_name})
    assert second["isError"] is True and second["structuredContent"]["exitCode"] == 11
    assert "pgmi_nobody" in second["content"][0]["text"] and pg.user not in second["content"][0]["text"]

    # B with its own user, reading a parameter only A was given, and printing A's password as text:
    # it sees no flavour, and A's password is not a secret of B's run (no process-wide registry).
    b2 = write_project(tmp_path / "b2", {"deploy.sql": REPORT + f"DO $$ BEGIN RAISE NOTICE 'said {password}'; END $$;\n",
                                         ".env": f"PGUSER={pg.user}\n"})
    third = client.result(3, "deploy", {"path": str(b2), "connection": no_user, "database": database_name})
    assert not third.get("isError"), third
    assert third["structuredContent"]["notices"] == [f"user={pg.user} flavour=<none>", f"said {password}"]

    fourth = client.result(4, "deploy", {"path": str(a), "connection": no_user, "database": database_name,
                                         "params": {"flavour": "gamma"}})
    assert f"user={pg.user} flavour=gamma" in fourth["structuredContent"]["notices"]
    assert client.close() == 0


def test_cancellation_cancels_the_statement_on_the_server(client, pg, database_name, tmp_path):
    import pg8000.native

    project = write_project(tmp_path / "slow", {"deploy.sql": "SELECT pg_sleep(120);\n"})
    client.call("slow", "deploy", {"path": str(project), "connection": pg.url("postgres"),
                                   "database": database_name, "timeout": "0"})
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND state = 'active' AND query LIKE '%pg_sleep%'"
    try:
        deadline = time.monotonic() + 60
        while admin.run(sleeping, d=database_name)[0][0] == 0:
            assert time.monotonic() < deadline, "the deploy never started its statement"
            time.sleep(0.1)
        sent = time.monotonic()
        client.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": "slow", "reason": "user pressed stop"}})
        answer = client.answer(30)
        assert time.monotonic() - sent < 15
        assert answer["id"] == "slow"
        result = answer["result"]
        assert result["isError"] is True and result["structuredContent"]["exitCode"] == 130
        deadline = time.monotonic() + 10
        while admin.run(sleeping, d=database_name)[0][0] != 0:
            assert time.monotonic() < deadline, "pg_sleep still runs on the server"
            time.sleep(0.1)
    finally:
        admin.close()
    client.send({"jsonrpc": "2.0", "id": 9, "method": "ping"})
    assert client.answer(10) == {"jsonrpc": "2.0", "id": 9, "result": {}}  # the session goes on


def test_overwrite_needs_the_matching_confirmation(client, pg, create_database, tmp_path):
    import pg8000.native

    name = create_database()
    seed = pg8000.native.Connection(**pg.conn_kwargs(name))
    seed.run("CREATE TABLE keep_me (x int)")
    seed.close()
    project = write_project(tmp_path / "p", {"deploy.sql": "SELECT 1;\n"})
    base = {"path": str(project), "connection": pg.url("postgres"), "database": name, "overwrite": True}

    def table_exists() -> bool:
        c = pg8000.native.Connection(**pg.conn_kwargs(name))
        try:
            return c.run("SELECT to_regclass('keep_me') IS NOT NULL")[0][0]
        finally:
            c.close()

    missing = client.result(1, "deploy", base)
    assert missing["isError"] is True and missing["structuredContent"]["exitCode"] == 1
    assert f'confirmDatabaseName="{name}"' in missing["content"][0]["text"]
    assert table_exists()

    wrong = client.result(2, "deploy", {**base, "confirmDatabaseName": name + "_x"})
    assert wrong["isError"] is True and wrong["structuredContent"]["exitCode"] == 1  # as the original
    assert "does not match" in wrong["content"][0]["text"]
    assert "nothing was deployed or dropped" in wrong["content"][0]["text"]
    assert table_exists()

    bad_timeout = client.result(3, "deploy", {**base, "confirmDatabaseName": name, "timeout": "soon"})
    assert bad_timeout["isError"] is True and bad_timeout["content"][0]["text"].startswith("invalid timeout: ")
    assert table_exists()

    confirmed = client.result(4, "deploy", {**base, "confirmDatabaseName": name})
    assert not confirmed.get("isError"), confirmed
    assert not table_exists()  # dropped and recreated, without any prompt


def test_sigterm_stops_the_server(client):
    import signal

    client.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert client.answer(30)["id"] == 1
    client.proc.send_signal(signal.SIGTERM)
    assert client.proc.wait(15) == 0


def test_eof_ends_the_server_with_exit_0_and_a_clean_stdout(client):
    client.send({"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": {"name": "ai_overview"}})
    assert client.close() == 0  # input closed right after the request: it is still answered
    answer = client.answer(10)
    assert answer["id"] == "x" and answer["result"]["content"][0]["text"].startswith("# pgmi")
    assert client.lines.empty()


def test_serve_takes_no_arguments(run_pgmi):
    result = run_pgmi("serve", "extra")
    assert result.returncode == 2 and result.stdout == "" and "unrecognized arguments: extra" in result.stderr


def test_a_deploys_secret_is_redacted_in_its_own_result(client, pg, database_name, tmp_path):
    import re

    password = pg.env().get("PGPASSWORD") or "sekret-zz-918"
    project = write_project(tmp_path / "leaky", {
        ".env": f"PGPASSWORD={password}\n",
        "deploy.sql": f"DO $$ BEGIN RAISE NOTICE 'notice {password}'; END $$;\n"
                      f"DO $$ BEGIN RAISE EXCEPTION 'failing {password}'; END $$;\n",
    })
    connection = re.sub(r"\bpassword=\S+\s*", "", pg.dsn("postgres"))
    result = client.result(1, "deploy", {"path": str(project), "connection": connection, "database": database_name})
    assert result["isError"] is True and result["structuredContent"]["exitCode"] == 13
    assert password not in json.dumps(result)
    assert "[redacted]" in result["content"][0]["text"]
    client.close()
    assert password.encode() not in client.stderr
