"""`pgmi serve` driven by the official MCP Python SDK (a test-only dependency), over stdio.

Runs against the checkout (`python3 pgmi.py serve`) and the single-file build
(`python3 dist/pgmi serve`), with a real PostgreSQL behind the `deploy` tool: initialize,
list tools, the offline tools, a real deploy into a database pgmi creates, and a failing
deploy coming back as an `isError` result. The SDK validates every structured result
against the tool's declared outputSchema, so the schemas are checked too.

The server's environment has no PG* variables: everything a deploy needs comes from the
tool call (connection string, database, params) and the project's own `.env`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

if sys.version_info < (3, 10):  # only there: elsewhere a missing SDK is an error, not a skip
    pytest.skip("the official MCP SDK (mcp) needs Python >= 3.10; on this interpreter pgmi serve is driven "
                "by tests/test_mcp_deploy.py's line-level client instead", allow_module_level=True)

from mcp import ClientSession, StdioServerParameters  # test dependency (requirements-dev.txt)
from mcp.client.stdio import stdio_client
from projects import write_project

REPO = Path(__file__).resolve().parent.parent
TOOLS = ["ai_contract", "ai_overview", "ai_skill", "ai_skills", "deploy", "init", "metadata_plan",
         "metadata_validate", "templates_list"]


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SHIV_", "PYTHON"))}
    env["PGMI_NON_INTERACTIVE"] = "1"
    return env


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory) -> Path:
    """dist/pgmi built by build.py, as tests/test_build.py builds it."""
    output = tmp_path_factory.mktemp("mcp-zipapp") / "pgmi"
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "-o", str(output)], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(params=["checkout", "zipapp"])
def server_command(request) -> list[str]:
    if request.param == "checkout":
        return [sys.executable, str(REPO / "pgmi.py"), "serve"]
    return [sys.executable, "-I", str(request.getfixturevalue("zipapp")), "serve"]


@asynccontextmanager
async def session(command: list[str], errlog):
    params = StdioServerParameters(command=command[0], args=command[1:], env=server_env(), cwd=str(REPO))
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
        yield client


@pytest.fixture
def drop_database(pg):
    """Names registered here are dropped after the test (pgmi creates them)."""
    import pg8000.native

    names: list[str] = []
    yield names.append
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    for name in names:
        admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d", d=name)
        admin.run(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def good_project(root: Path) -> Path:
    return write_project(root, {
        "deploy.sql": "BEGIN;\n"
                      "DO $$ DECLARE f record; BEGIN\n"
                      "  FOR f IN SELECT p.path, p.content FROM pg_temp.pgmi_plan_view p\n"
                      "           JOIN pg_temp.pgmi_source_view s USING (path)\n"
                      "           WHERE s.is_sql_file ORDER BY p.execution_order LOOP\n"
                      "    RAISE NOTICE 'applying %', f.path; EXECUTE f.content;\n"
                      "  END LOOP; END $$;\n"
                      "CALL pgmi_test();\nCOMMIT;\n",
        "schema/001_greeting.sql": "CREATE TABLE greeting (word text);\nINSERT INTO greeting VALUES ('hello');\n",
        "__test__/test_greeting.sql": "DO $$ BEGIN IF (SELECT word FROM greeting) IS DISTINCT FROM 'hello' THEN "
                                      "RAISE EXCEPTION 'no greeting'; END IF; END $$;\n",
    })


def test_real_client(server_command, pg, drop_database, tmp_path):
    good = good_project(tmp_path / "good")
    bad = write_project(tmp_path / "bad", {"deploy.sql": "SELECT 1;\nSELECT * FROM no_such_table;\n"})
    target, failing = f"mcp_{uuid.uuid4().hex[:10]}", f"mcp_{uuid.uuid4().hex[:10]}"
    drop_database(target)
    drop_database(failing)
    errlog = (tmp_path / "server-stderr.txt").open("w+")

    async def scenario():
        async with session(server_command, errlog) as client:
            init = await client.initialize()
            assert init.serverInfo.name == "pgmi"
            assert init.protocolVersion in ("2025-06-18", "2025-03-26", "2024-11-05")

            listed = await client.list_tools()
            assert [t.name for t in listed.tools] == TOOLS

            templates = await client.call_tool("templates_list", {})
            if templates.isError:  # only when this build has no pgmilib.scaffold
                assert "templates are not available" in templates.content[0].text
            else:
                names = [t["name"] for t in templates.structuredContent["templates"]]
                assert "basic" in names

            plan = await client.call_tool("metadata_plan", {"path": str(good)})
            assert not plan.isError
            assert [e["path"] for e in plan.structuredContent["plan"]] == ["./schema/001_greeting.sql"]

            skill = await client.call_tool("ai_skill", {"name": "pgmi-mcp"})
            assert "claude mcp add pgmi -- pgmi serve" in skill.content[0].text

            deployed = await client.call_tool("deploy", {"path": str(good), "connection": pg.url("postgres"),
                                                         "database": target})
            assert not deployed.isError, deployed.content[0].text
            result = deployed.structuredContent
            assert result["status"] == "success" and result["database"] == target
            assert result["filesLoaded"] == 2 and result["testMacros"] == 1
            assert "applying ./schema/001_greeting.sql" in result["notices"]

            failed = await client.call_tool("deploy", {"path": str(bad), "connection": pg.url("postgres"),
                                                       "database": failing})
            assert failed.isError
            detail = failed.structuredContent
            assert detail["exitCode"] == 13 and detail["sqlstate"] == "42P01"
            assert "no_such_table" in failed.content[0].text

            missing = await client.call_tool("deploy", {"path": str(good), "database": target})
            assert missing.isError and missing.content[0].text == "connection is required"

    asyncio.run(asyncio.wait_for(scenario(), 240))
    import pg8000.native

    check = pg8000.native.Connection(**pg.conn_kwargs(target))
    try:
        assert check.run("SELECT word FROM greeting") == [["hello"]]
    finally:
        check.close()
    errlog.seek(0)
    assert "applying ./schema/001_greeting.sql" in errlog.read()  # notices are echoed to stderr as well
