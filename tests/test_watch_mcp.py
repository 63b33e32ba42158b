"""`pgmi serve`'s deploy tool and notifications/progress, driven by the official MCP SDK client.

A call with a progress callback (the SDK then sends `_meta.progressToken`) hears the blocker
of a deploy waiting for a lock held by an idle-in-transaction session; the blocker is then
terminated from the callback and the deploy succeeds. A call without one hears nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pg8000.native
import pytest
from projects import MCP_SDK_MISSING, MCP_SDK_REASON

if MCP_SDK_MISSING:  # before the SDK import, which fails there
    pytest.skip(MCP_SDK_REASON, allow_module_level=True)

from mcp import ClientSession, StdioServerParameters, types  # test dependency (requirements-dev.txt)
from mcp.client.stdio import stdio_client
from projects import query, write_project
from test_mcp_client import server_env

REPO = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def _client(errlog, on_message=None):
    params = StdioServerParameters(command=sys.executable, args=[str(REPO / "pgmi.py"), "serve"], env=server_env(),
                                   cwd=str(REPO))
    async with stdio_client(params, errlog=errlog) as (read, write), \
            ClientSession(read, write, message_handler=on_message) as client:
        await client.initialize()
        yield client


def test_progress_notifications_name_the_blocker(pg, fresh_db, tmp_path):
    query(pg, fresh_db, "CREATE TABLE orders (id int)")
    holder = pg8000.native.Connection(**pg.conn_kwargs(fresh_db), application_name="forgotten-psql")
    pid = holder.run("SELECT pg_backend_pid()")[0][0]
    holder.run("BEGIN")
    holder.run("UPDATE orders SET id = id WHERE false")
    proj = write_project(tmp_path / "p", {}, "ALTER TABLE orders ADD COLUMN shipped boolean;\n")
    heard: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))
        if message and f"pid {pid} " in message:
            query(pg, "postgres", "SELECT pg_terminate_backend(:pid)", pid=pid)

    async def scenario():
        with (tmp_path / "stderr.txt").open("w") as errlog:
            async with _client(errlog) as client:
                return await client.call_tool("deploy", {"path": str(proj), "connection": pg.url("postgres"),
                                                         "database": fresh_db}, progress_callback=on_progress)

    try:
        result = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        with contextlib.suppress(Exception):  # terminated by the callback
            holder.close()
    assert not result.isError, result.content[0].text
    named = [message for _, _, message in heard if message and f"pid {pid} " in message]
    assert named, heard
    assert "| deploy.sql | waiting for a lock (AccessExclusiveLock on orders) held by " in named[0]
    assert f"pid {pid} (user " in named[0] and "forgotten-psql, idle in transaction for " in named[0]
    assert ": UPDATE orders SET id = id WHERE false)" in named[0]
    steps = [progress for progress, _, _ in heard]
    assert steps == sorted(set(steps))  # strictly increasing, as the specification requires
    assert query(pg, fresh_db, "SELECT count(*) FROM information_schema.columns "
                               "WHERE table_name = 'orders' AND column_name = 'shipped'") == [[1]]


def test_no_progress_token_no_notifications(pg, tmp_path):
    database = "mcp_" + uuid.uuid4().hex[:10]
    proj = write_project(tmp_path / "p", {}, "DO $$ BEGIN RAISE NOTICE 'slow'; PERFORM pg_sleep(2.5); END $$;\n")
    received: list = []

    async def on_message(message) -> None:
        if isinstance(message, types.ServerNotification):
            received.append(message.root)

    async def scenario():
        with (tmp_path / "stderr.txt").open("w") as errlog:
            async with _client(errlog, on_message) as client:
                return await client.call_tool("deploy", {"path": str(proj), "connection": pg.url("postgres"),
                                                         "database": database})

    try:
        result = asyncio.run(asyncio.wait_for(scenario(), 120))
        assert not result.isError, result.content[0].text
        assert result.structuredContent["notices"] == ["slow"]
        assert not [m for m in received if isinstance(m, types.ProgressNotification)]
    finally:
        query(pg, "postgres", f'DROP DATABASE IF EXISTS "{database}"')
