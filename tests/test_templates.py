"""`pgmi templates list/describe`, and both templates deployed for real (fresh, then again).

The advanced template creates cluster-wide roles named after the database; the fixture
below drops the database first and then those roles, so tests leave nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest
from projects import needs_mcp_sdk, run_cli

REPO = Path(__file__).resolve().parent.parent
ROLE_SUFFIXES = ("owner", "admin", "api", "customer")


# ---- listing and describing ----------------------------------------------------------------

def test_list_recommends_basic_first(capsys):
    code, out, err = run_cli(["templates", "list"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{'basic':<12} Linear migrations, minimal structure"
    assert lines[1].startswith(" " * 12 + "   for: Start here.")
    assert lines[2] == f"{'advanced':<12} Reference app: SQL-native REST/RPC/MCP, multi-tenant RLS, audit"
    assert err == "\nScaffold one with: pgmi init <path> -t <template>\n"


def test_list_json(capsys):
    code, out, _err = run_cli(["templates", "list", "--json"], capsys)
    assert code == 0
    listed = json.loads(out)
    assert [t["name"] for t in listed] == ["basic", "advanced"]
    assert listed[0]["short"] == "Linear migrations, minimal structure"


def test_describe(capsys):
    code, out, err = run_cli(["templates", "describe", "advanced"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "advanced — Reference app: SQL-native REST/RPC/MCP, multi-tenant RLS, audit"
    assert "Structure:" in lines and "Features:" in lines and "  session.json" in lines
    assert lines[-1].startswith("For: ")
    assert "production deployments" not in out and "start here" not in lines[-1].lower()
    assert err == "\nScaffold with: pgmi init <path> -t advanced\n"


def test_describe_json(capsys):
    code, out, _err = run_cli(["templates", "describe", "basic", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["structure"][0] == "deploy.sql"


@pytest.mark.parametrize("argv,message", [
    (["templates", "describe", "nope"], 'usage error: unknown template "nope" (available: [basic advanced])'),
    (["templates", "describe"], "usage error: missing required argument: <template_name>"),
])
def test_describe_bad_input(capsys, argv, message):
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgmi: error: {message}\n")


# ---- deploying the templates -------------------------------------------------------------

def scaffold(run_pgmi, tmp_path: Path, template: str) -> Path:
    target = tmp_path / f"{template}-app"
    result = run_pgmi("init", str(target), "-t", template)
    assert result.returncode == 0, result.stderr
    return target


def deploy(run_pgmi, project: Path, db: str, *args: str, expect: int = 0):
    result = run_pgmi("deploy", str(project), "-d", db, "-v", *args, timeout=300)
    assert result.returncode == expect, result.stderr[-3000:]
    return result


def count_passed(stderr: str) -> int:
    """Tests passed, from pgmi's `[i/n] ok` lines: off a terminal they need -v (deploy adds it)."""
    return len(re.findall(r"^\[\d+/\d+\] ok ", stderr, re.MULTILINE))


@pytest.fixture
def advanced_db(pg, create_database):
    """A database for the advanced template; afterwards the database and its roles are dropped."""
    import pg8000.native

    name = create_database()
    yield name
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()",
              d=name)
    admin.run(f'DROP DATABASE IF EXISTS "{name}"')
    for suffix in ROLE_SUFFIXES:
        admin.run(f'DROP ROLE IF EXISTS "{name}_{suffix}"')
    admin.close()


def connect(pg, db: str):
    import pg8000.native

    return pg8000.native.Connection(**pg.conn_kwargs(db))


FINGERPRINT = """
SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
   AND n.nspname NOT LIKE 'pg_toast_temp%'
UNION ALL
SELECT 'col ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
UNION ALL
SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
UNION ALL
SELECT 'pol ' || polrelid::regclass || ' ' || polname || ' ' || coalesce(pg_get_expr(polqual, polrelid), '')
  FROM pg_policy
UNION ALL
SELECT 'trg ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'fn ' || p.oid::regprocedure
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1
"""

APPEND_ONLY = {"internal.deployment_script_execution_log", "api.rest_exchange", "api.rpc_exchange", "api.mcp_exchange"}


def fingerprint(conn) -> list[str]:
    return [row[0] for row in conn.run(FINGERPRINT)]


def row_counts(conn) -> dict[str, int]:
    tables = [row[0] for row in conn.run(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%'")]
    return {t: conn.run(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def test_basic_deploys_fresh_runs_its_tests_and_redeploys_as_a_no_op(run_pgmi, pg, tmp_path, fresh_db):
    project = scaffold(run_pgmi, tmp_path, "basic")
    first = deploy(run_pgmi, project, fresh_db, "--overwrite", "--force")
    assert count_passed(first.stderr) >= 1
    assert "Deploying basic-app v1.0.0" in first.stderr
    conn = connect(pg, fresh_db)
    try:
        before_schema, before_rows = fingerprint(conn), row_counts(conn)
        assert conn.run('SELECT email, name FROM "user"') == [["admin@example.com", "Administrator"]]
        assert conn.run("SELECT to_regclass('_migration') IS NULL")[0][0] is True
    finally:
        conn.close()
    deploy(run_pgmi, project, fresh_db)
    conn = connect(pg, fresh_db)
    try:
        assert fingerprint(conn) == before_schema
        assert row_counts(conn) == before_rows
    finally:
        conn.close()


def test_basic_production_skips_the_seed(run_pgmi, pg, tmp_path, fresh_db):
    project = scaffold(run_pgmi, tmp_path, "basic")
    deploy(run_pgmi, project, fresh_db, "--param", "env=production")
    conn = connect(pg, fresh_db)
    try:
        assert conn.run('SELECT count(*) FROM "user"')[0][0] == 0
    finally:
        conn.close()


def test_basic_migration_failure_keeps_sqlstate_and_detail(run_pgmi, tmp_path, fresh_db):
    project = scaffold(run_pgmi, tmp_path, "basic")
    (project / "migrations" / "003_dup.sql").write_text(
        "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1), (1);\n")
    result = deploy(run_pgmi, project, fresh_db, "--json", expect=13)
    envelope = json.loads(result.stdout)
    assert envelope["sqlstate"] == "23505"
    assert envelope["error"].startswith("execution failed: ERROR: duplicate key value")  # the server's own error
    assert "already exists" in envelope["detail"]
    assert "Failed in ./migrations/003_dup.sql" in result.stderr  # the template's context, as a warning
    assert "FILE: ./migrations/003_dup.sql" in result.stderr  # pgmi's locator found the file


@pytest.mark.parametrize("tracking", [False, True])
def test_basic_apply_once_ledger(run_pgmi, pg, tmp_path, fresh_db, tracking):
    """A non-idempotent migration runs every deploy by default; with (A)(B)(C) uncommented, once."""
    project = scaffold(run_pgmi, tmp_path, "basic")
    (project / "migrations" / "003_probe.sql").write_text(
        "CREATE TABLE IF NOT EXISTS probe (n int);\nINSERT INTO probe VALUES (1);\n")
    if tracking:
        text = (project / "deploy.sql").read_text()
        for marker in ("CREATE TABLE IF NOT EXISTS _migration", "CONTINUE WHEN EXISTS", "INSERT INTO _migration"):
            text = text.replace(f"-- {marker}", marker)
        (project / "deploy.sql").write_text(text)
    deploy(run_pgmi, project, fresh_db)
    deploy(run_pgmi, project, fresh_db)
    conn = connect(pg, fresh_db)
    try:
        assert conn.run("SELECT count(*) FROM probe")[0][0] == (1 if tracking else 2)
        assert conn.run("SELECT to_regclass('_migration') IS NOT NULL")[0][0] is tracking
    finally:
        conn.close()


def test_advanced_deploys_fresh_and_redeploys_safely(run_pgmi, pg, tmp_path, advanced_db):
    project = scaffold(run_pgmi, tmp_path, "advanced")
    params = ("--param", "env=test")
    first = deploy(run_pgmi, project, advanced_db, "--overwrite", "--force", *params)
    assert count_passed(first.stderr) >= 25
    assert first.stderr.count("[pgmi] Test: ") >= 25
    conn = connect(pg, advanced_db)
    try:
        schemas = {r[0] for r in conn.run("SELECT nspname FROM pg_namespace")}
        assert {"api", "core", "membership", "internal", "common", "extensions"} <= schemas
        roles = {r[0] for r in conn.run("SELECT rolname FROM pg_roles WHERE rolname LIKE :p", p=advanced_db + "_%")}
        assert roles == {f"{advanced_db}_{s}" for s in ROLE_SUFFIXES}
        assert conn.run("SELECT count(*) FROM api.handler WHERE deleted_at IS NULL")[0][0] >= 10
        assert conn.run("SELECT count(*) FROM membership.\"user\"")[0][0] == 0  # fixtures rolled back
        before_schema, before_rows = fingerprint(conn), row_counts(conn)
    finally:
        conn.close()

    second = deploy(run_pgmi, project, advanced_db, *params)
    assert count_passed(second.stderr) >= 25
    conn = connect(pg, advanced_db)
    try:
        assert fingerprint(conn) == before_schema
        after_rows = row_counts(conn)
        for table, count in before_rows.items():
            if table in APPEND_ONLY:
                assert after_rows[table] >= count, table
            else:
                assert after_rows[table] == count, table
        # every script ran again, each once more in the log
        assert after_rows["internal.deployment_script_execution_log"] == 2 * before_rows[
            "internal.deployment_script_execution_log"]
    finally:
        conn.close()


FLIP = """/*
<pgmi-meta id="f1f1f1f1-0000-4000-8000-000000000900" idempotent="{idempotent}">
  <sortKeys><key>900/000</key></sortKeys>
</pgmi-meta>
*/
CREATE TABLE IF NOT EXISTS core.flip_probe (n int);
INSERT INTO core.flip_probe VALUES (1);
"""


def test_advanced_idempotent_to_apply_once_flip_runs_exactly_once_more(run_pgmi, pg, tmp_path, advanced_db):
    project = scaffold(run_pgmi, tmp_path, "advanced")
    (project / "flip.sql").write_text(FLIP.format(idempotent="true"))
    deploy(run_pgmi, project, advanced_db)
    deploy(run_pgmi, project, advanced_db)
    (project / "flip.sql").write_text(FLIP.format(idempotent="false"))
    deploy(run_pgmi, project, advanced_db)
    deploy(run_pgmi, project, advanced_db)
    conn = connect(pg, advanced_db)
    try:
        assert conn.run("SELECT count(*) FROM core.flip_probe")[0][0] == 3  # 2 idempotent runs + 1 more
        log = conn.run("SELECT idempotent, count(*) FROM internal.deployment_script_execution_log "
                       "WHERE deployment_script_object_id = 'f1f1f1f1-0000-4000-8000-000000000900' "
                       "GROUP BY idempotent ORDER BY idempotent")
        assert log == [[False, 1], [True, 2]]
    finally:
        conn.close()


def test_advanced_outside_dev_requires_the_passwords(run_pgmi, tmp_path, advanced_db):
    project = scaffold(run_pgmi, tmp_path, "advanced")
    result = deploy(run_pgmi, project, advanced_db, "--param", "env=production", expect=13)
    assert "Missing required parameters: database_admin_password, database_customer_password" in result.stderr
    result = deploy(run_pgmi, project, advanced_db, "--param", "colour=blue", expect=13)
    assert "Unknown parameters: colour" in result.stderr


def test_advanced_needs_createrole(run_pgmi, pg, tmp_path, advanced_db):
    """A deploy user that cannot create roles gets one clear error naming the privilege."""
    import pg8000.native

    user = "norole_" + uuid.uuid4().hex[:8]
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    admin.run(f'CREATE ROLE "{user}" LOGIN PASSWORD \'pw-{user}\' NOCREATEROLE')
    admin.run(f'ALTER DATABASE "{advanced_db}" OWNER TO "{user}"')
    try:
        project = scaffold(run_pgmi, tmp_path, "advanced")
        result = run_pgmi("deploy", str(project), "-d", advanced_db, "--json",
                          env={"PGUSER": user, "PGPASSWORD": f"pw-{user}"}, timeout=300)
        assert result.returncode == 13, result.stderr[-2000:]
        envelope = json.loads(result.stdout)
        assert envelope["sqlstate"] == "42501"
        assert f'the deploy user "{user}" lacks the CREATEROLE privilege' in envelope["error"]
        assert "Traceback" not in result.stderr
    finally:
        admin.run(f'ALTER DATABASE "{advanced_db}" OWNER TO CURRENT_USER')
        admin.run(f'DROP ROLE "{user}"')
        admin.close()


def test_scaffolded_copy_equals_the_template(tmp_path, run_pgmi):
    """Apart from the placeholder, init copies the template byte for byte (including .gitignore)."""
    project = scaffold(run_pgmi, tmp_path, "advanced")
    source = REPO / "templates" / "advanced"
    copied = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert copied == sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    assert (project / ".gitignore").read_bytes() == (source / ".gitignore").read_bytes()
    shutil.rmtree(project)


def test_advanced_serialization_contract(run_pgmi, pg, tmp_path, advanced_db):
    """Two REPEATABLE READ calls of the same counter route: the loser gets SQLSTATE 40001 (not a
    response), a retry in a new transaction succeeds, and the counter ends at 2."""
    project = scaffold(run_pgmi, tmp_path, "advanced")
    deploy(run_pgmi, project, advanced_db)
    first, second = connect(pg, advanced_db), connect(pg, advanced_db)
    call = "SELECT status_code FROM api.rest_invoke('POST', '/counters/race/increment')"
    try:
        policy = first.run("SELECT transaction_isolation FROM api.rest_route_policy('POST', '/counters/race/increment')")
        assert policy == [["repeatable read"]]
        first.run("INSERT INTO api.counter (name, value) VALUES ('race', 0)")
        for c in (first, second):
            c.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
            c.run("SELECT 1")  # take the snapshot now, before either writes
        assert first.run(call) == [[200]]
        first.run("COMMIT")
        with pytest.raises(Exception) as caught:
            second.run(call)
        assert caught.value.args[0]["C"] == "40001"
        second.run("ROLLBACK")
        second.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert second.run(call) == [[200]]
        second.run("COMMIT")
        assert first.run("SELECT value FROM api.counter WHERE name = 'race'") == [[2]]
        first.run("BEGIN ISOLATION LEVEL READ COMMITTED")
        assert first.run(call) == [[428]]  # weaker than the declared floor: refused, not run
        first.run("ROLLBACK")
    finally:
        first.close()
        second.close()


def test_advanced_deploys_without_superuser(run_pgmi, pg, tmp_path):
    """CREATEROLE + CREATEDB are enough: the deploy user creates the database, the roles and the
    trusted extensions itself, passes every test, and redeploys."""
    import pg8000.native

    user = "deployer_" + uuid.uuid4().hex[:8]
    db = "t_" + uuid.uuid4().hex[:12]
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    admin.run(f'CREATE ROLE "{user}" LOGIN PASSWORD \'pw-{user}\' CREATEROLE CREATEDB')
    env = {"PGUSER": user, "PGPASSWORD": f"pw-{user}"}
    try:
        project = scaffold(run_pgmi, tmp_path, "advanced")
        for _ in range(2):
            result = run_pgmi("deploy", str(project), "-d", db, "-v", env=env, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            assert count_passed(result.stderr) >= 25
        assert admin.run("SELECT rolsuper FROM pg_roles WHERE rolname = :u", u=user) == [[False]]
        assert admin.run("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :d", d=db) == [[user]]
    finally:
        admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                  "AND pid <> pg_backend_pid()", d=db)
        admin.run(f'DROP DATABASE IF EXISTS "{db}"')
        for suffix in ROLE_SUFFIXES:
            admin.run(f'DROP ROLE IF EXISTS "{db}_{suffix}"')
        admin.run(f'DROP ROLE "{user}"')
        admin.close()


# ---- the advanced template's MCP gateway, driven by the official MCP SDK client ---------------

def _gateway_session(project: Path, env: dict[str, str], scenario):
    """Run `scenario(client)` against tools/mcp_gateway.py over stdio; the SDK stops the process."""
    import asyncio
    import sys

    from mcp import ClientSession, StdioServerParameters  # test dependency (requirements-dev.txt)
    from mcp.client.stdio import stdio_client

    async def run(errlog):
        params = StdioServerParameters(command=sys.executable, args=[str(project / "tools" / "mcp_gateway.py")],
                                       env=env, cwd=str(project))
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return await scenario(client)

    with open(project / "gateway.stderr", "w") as errlog:
        return asyncio.run(run(errlog))


@needs_mcp_sdk
def test_advanced_gateway_serves_tools_resources_and_prompts(run_pgmi, pg, tmp_path, advanced_db):
    import os

    from mcp.shared.exceptions import McpError

    assert shutil.which("psql"), "the gateway's one requirement, psql, must be on PATH"
    project = scaffold(run_pgmi, tmp_path, "advanced")
    deploy(run_pgmi, project, advanced_db, "--param", "env=test")
    conn = connect(pg, advanced_db)
    try:
        conn.run("SELECT membership.upsert_user('test', 'gw-sub', 'gw@example.com', 'Gateway User')")
    finally:
        conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DATABASE_URL"] = pg.url(advanced_db)

    async def anonymous(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        templates = [t.uriTemplate for t in (await client.list_resource_templates()).resourceTemplates]
        about = (await client.read_resource("app://about")).contents[0]
        route = (await client.read_resource("app://routes/hello_world")).contents[0]
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("explain_route", {"handler": "hello_world"})
        greet = await client.call_tool("greet", {"name": "O'Brien $$"})
        failing = await client.call_tool("greet", {})
        errors = []
        for call in (lambda: client.read_resource("app://nothing"), lambda: client.get_prompt("explain_route", {}),
                     lambda: client.call_tool("my_organizations", {})):
            try:
                await call()
                errors.append(None)
            except McpError as error:
                errors.append(error.error.code)
        return tools, resources, templates, about, route, prompts, prompt, greet, failing, errors

    tools, resources, templates, about, route, prompts, prompt, greet, failing, errors = _gateway_session(
        project, env, anonymous)
    assert "greet" in tools and "my_organizations" not in tools  # auth-only tools hidden from anonymous sessions
    assert resources == ["app://about"] and templates == ["app://routes/{handler}"]
    assert about.mimeType == "text/plain" and "tools" in about.text
    assert json.loads(route.text)["route"] == "/hello" and route.mimeType == "application/json"
    assert [a.name for a in prompts["explain_route"].arguments] == ["handler", "audience"]
    assert "handler hello_world" in prompt.messages[0].content.text and prompt.messages[0].role == "user"
    assert greet.isError is False and greet.structuredContent == {"greeting": "Hello, O'Brien $$!"}
    assert failing.isError is True and failing.content[0].text == "name is required"
    assert errors == [-32602, -32602, -32001]

    env["MCP_IDP_SUBJECT"] = "test|gw-sub"

    async def signed_in(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        return tools, await client.call_tool("my_organizations", {})

    tools, orgs = _gateway_session(project, env, signed_in)
    assert "my_organizations" in tools
    assert orgs.isError is False and orgs.structuredContent == {"organizations": ["Personal"]}

    # What the gateway reported is what the database logged, one exchange per call.
    conn = connect(pg, advanced_db)
    try:
        logged = dict(conn.run("SELECT mcp_type, count(*) FROM api.mcp_exchange GROUP BY mcp_type"))
        assert logged == {"tool": 4, "resource": 3, "prompt": 2}
    finally:
        conn.close()
