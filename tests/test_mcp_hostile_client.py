"""Hostile arguments a real MCP client can send, through the official MCP SDK to `pgmi serve`.

What a well-behaved client cannot express (duplicate ids, NaN, broken JSON, and lone
surrogates, which the SDK refuses to serialize) is in test_mcp_hostile.py as raw bytes.
Here: `confirmDatabaseName` compared exactly (`Orders` does not confirm `orders`: nothing dropped, the database's data
still there), and a deploy raising 20 notices of 5 MB through the `deploy` tool (the answer
once held all 100 MB on one line; now it is bounded).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from projects import MCP_SDK_MISSING, MCP_SDK_REASON

if MCP_SDK_MISSING:  # before the SDK import, which fails there
    pytest.skip(MCP_SDK_REASON, allow_module_level=True)

from mcp import ClientSession, StdioServerParameters  # test dependency (requirements-dev.txt)
from mcp.client.stdio import stdio_client
from projects import query, write_project

from pgmilib.mcp.tool_deploy import NOTICE_BYTES

REPO = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def session(errlog):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PYTHON"))}
    env["PGMI_NON_INTERACTIVE"] = "1"
    params = StdioServerParameters(command=sys.executable, args=[str(REPO / "pgmi.py"), "serve"], env=env,
                                   cwd=str(REPO))
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def _admin(pg, sql: str) -> None:
    import pg8000.native

    admin = pg8000.native.Connection(**pg.conn_kwargs())
    try:
        admin.run(sql)
    finally:
        admin.close()


def test_hostile_arguments_through_the_sdk(pg, tmp_path):
    name = f"orders_{uuid.uuid4().hex[:8]}"
    _admin(pg, f'CREATE DATABASE "{name}"')
    try:
        query(pg, name, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        project = write_project(tmp_path / "p", {"deploy.sql": "SELECT 1;\n"})
        noisy = write_project(tmp_path / "noisy", {
            "deploy.sql": "DO $$ BEGIN FOR i IN 1..20 LOOP RAISE NOTICE '%: %', i, repeat('n', 5000000); "
                          "END LOOP; END $$;\n"})
        errlog = (tmp_path / "stderr.txt").open("w+")

        async def scenario():
            async with session(errlog) as client:
                refused = await client.call_tool("deploy", {
                    "path": str(project), "connection": pg.url("postgres"), "database": name.capitalize(),
                    "overwrite": True, "confirmDatabaseName": name})
                assert refused.isError and refused.structuredContent["exitCode"] == 1
                assert "does not match" in refused.content[0].text
                refused = await client.call_tool("deploy", {
                    "path": str(project), "connection": pg.url("postgres"), "database": name,
                    "overwrite": True, "confirmDatabaseName": name.upper()})
                assert refused.isError and "nothing was deployed or dropped" in refused.content[0].text

                loud = await client.call_tool("deploy", {"path": str(noisy), "connection": pg.url("postgres"),
                                                         "database": name})
                assert not loud.isError, loud.content[0].text
                notices = loud.structuredContent["notices"]
                assert len(notices) == 20 and notices[-1].startswith("20: nnn")
                assert sum(len(n.encode()) for n in notices) <= NOTICE_BYTES
                assert len(loud.content[0].text) < 2 * NOTICE_BYTES

        asyncio.run(scenario())
        assert query(pg, name, "SELECT v FROM kept") == [[42]]  # never dropped
    finally:
        _admin(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
