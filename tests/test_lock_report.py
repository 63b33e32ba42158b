"""`--rehearse`'s lock report, on real tables: what the head locked and rewrote, who would block it,
the advice for the classic cases, `--fail-on-lock-risk`, and the database unchanged afterwards.

One database for the module (a 200k-row `orders` table takes a moment to fill), owned by a role
without superuser: every rehearsal runs as that role and changes nothing, which each test checks.
"""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest
from projects import EXECUTE_LOOP, needs_mcp_sdk, query, write_project

ROWS = 200_000
SCHEMA_QUERY = ("SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY 1, 2")
INDEX_QUERY = "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid IN ('orders'::regclass, " \
              "'settings'::regclass) ORDER BY 1"


@pytest.fixture(scope="module")
def shop(pg):
    """(database, role): `orders` (200k rows) and `settings` (2 rows), owned by a plain login role."""
    import pg8000.native

    role, database = f"lockrep_{uuid.uuid4().hex[:8]}", f"lockrep_{uuid.uuid4().hex[:8]}"
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    admin.run(f'CREATE ROLE "{role}" LOGIN')
    admin.run(f'CREATE DATABASE "{database}" OWNER "{role}"')
    try:
        owner = pg8000.native.Connection(**{**pg.conn_kwargs(database), "user": role})
        try:
            owner.run(textwrap.dedent(f"""\
                CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric NOT NULL,
                                     region text);
                INSERT INTO orders SELECT g, g % 5000, (g % 997) * 1.25, 'r' || (g % 7)
                  FROM generate_series(1, {ROWS}) AS g;
                CREATE TABLE settings (key text PRIMARY KEY, value text);
                INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'en');
                ANALYZE orders;
                ANALYZE settings;"""))
        finally:
            owner.close()
        before = (query(pg, database, SCHEMA_QUERY), query(pg, database, INDEX_QUERY))
        yield database, role, before
    finally:
        admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d", d=database)
        admin.run(f'DROP DATABASE IF EXISTS "{database}"')
        admin.run(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def rehearse(run_pgmi, shop, project, *extra: str):
    database, role, _ = shop
    return run_pgmi("deploy", str(project), "-d", database, "-U", role, "--rehearse", *extra)


def locks_of(result) -> dict[str, dict]:
    envelope = json.loads(result.stdout)
    return {lock["relation"]: lock for lock in envelope["locks"]}


def assert_unchanged(pg, shop) -> None:
    database, _, before = shop
    assert (query(pg, database, SCHEMA_QUERY), query(pg, database, INDEX_QUERY)) == before
    assert query(pg, database, "SELECT count(*) FROM orders") == [[ROWS]]


def migrations(tmp_path, files: dict[str, str], deploy_sql: str = EXECUTE_LOOP):
    return write_project(tmp_path / "p", {f"migrations/{name}": text for name, text in files.items()}, deploy_sql)


def test_the_done_when_case_volatile_default_plain_index_and_a_small_table(tmp_path, pg, shop, run_pgmi):
    project = migrations(tmp_path, {
        "001_orders.sql": "-- every row gets its own token: a volatile default rewrites the table\n"
                          "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
                          "CREATE INDEX orders_token ON orders (token);\n",
        "002_settings.sql": "ALTER TABLE settings ADD COLUMN changed_at timestamptz;\n",
    })
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    envelope = json.loads(r.stdout)
    assert envelope["rehearsed"] is True and envelope["unitsCommitted"] == 0
    assert envelope["relationsCreated"] >= 1  # the new index: counted, not listed
    locks = locks_of(r)
    assert list(locks) == ["public.orders", "public.settings"]  # largest first
    orders = locks["public.orders"]
    assert orders["mode"] == "AccessExclusiveLock" and orders["rewritten"] is True
    assert abs(orders["rows"] - ROWS) < ROWS * 0.05
    assert orders["bytes"] > 5_000_000
    assert (orders["file"], orders["line"]) == ("./migrations/001_orders.sql", 2)
    assert orders["blockers"] == []
    assert any("volatile" in a for a in orders["advice"])
    assert any("CREATE INDEX CONCURRENTLY" in a for a in orders["advice"])
    settings = locks["public.settings"]
    assert settings["mode"] == "AccessExclusiveLock" and settings["rewritten"] is False
    assert settings["file"] == "./migrations/002_settings.sql" and settings["advice"] == []
    assert_unchanged(pg, shop)
    # the human table: after the summary, largest first, the rewrite marked
    r = rehearse(run_pgmi, shop, project)
    assert r.returncode == 0, r.stderr
    table = r.stderr[r.stderr.index("rolled back, nothing was changed"):]
    assert table.index("public.orders") < table.index("public.settings")
    assert "REWRITTEN" in table.splitlines()[3] and "./migrations/001_orders.sql:2" in table
    assert "advice (public.orders)" in table
    assert_unchanged(pg, shop)


def test_a_constant_default_is_no_rewrite_and_the_report_says_so(tmp_path, pg, shop, run_pgmi):
    project = migrations(tmp_path, {"001.sql": "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n"})
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    orders = locks_of(r)["public.orders"]
    assert orders["mode"] == "AccessExclusiveLock" and orders["rewritten"] is False
    assert orders["advice"] == []
    assert_unchanged(pg, shop)


def test_a_type_change_that_rewrites(tmp_path, pg, shop, run_pgmi):
    project = migrations(tmp_path, {"001.sql": "ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;\n"})
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    orders = locks_of(r)["public.orders"]
    assert orders["rewritten"] is True and orders["indexesRebuilt"] == 1  # the primary key, rebuilt too
    assert [a for a in orders["advice"] if "type change" in a]
    assert_unchanged(pg, shop)


def test_set_not_null_on_a_large_table(tmp_path, pg, shop, run_pgmi):
    project = migrations(tmp_path, {"001.sql": "ALTER TABLE orders ALTER COLUMN region SET NOT NULL;\n"})
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    orders = locks_of(r)["public.orders"]
    assert orders["mode"] == "AccessExclusiveLock" and orders["rewritten"] is False
    assert [a for a in orders["advice"] if "NOT VALID" in a and "VALIDATE CONSTRAINT" in a]
    assert_unchanged(pg, shop)


def test_a_plain_index_build_holds_share_and_a_statement_in_deploy_sql_is_named(tmp_path, pg, shop, run_pgmi):
    deploy_sql = "BEGIN;\n-- the index, right here\nCREATE INDEX orders_region ON orders (region);\nCOMMIT;\n"
    project = write_project(tmp_path / "p", {}, deploy_sql)
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    orders = locks_of(r)["public.orders"]
    assert orders["mode"] == "ShareLock" and orders["rewritten"] is False
    assert (orders["file"], orders["line"]) == ("deploy.sql", 3)
    assert [a for a in orders["advice"] if "CONCURRENTLY" in a and "lock-safe" in a]
    assert json.loads(r.stdout)["relationsCreated"] == 1
    assert_unchanged(pg, shop)


def test_a_head_without_begin_is_rehearsed_in_pgmis_own_transaction(tmp_path, pg, shop, run_pgmi):
    project = write_project(tmp_path / "p", {}, "ALTER TABLE settings ADD COLUMN note text;\nSELECT 1")
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    assert locks_of(r)["public.settings"]["mode"] == "AccessExclusiveLock"
    assert "already a transaction" not in r.stderr
    assert_unchanged(pg, shop)


def test_a_blocker_idle_in_transaction_is_named_and_the_wait_is_bounded(tmp_path, pg, shop, run_pgmi):
    import pg8000.native

    database, role, _ = shop
    project = migrations(tmp_path, {"001.sql": "SELECT 1;\nALTER TABLE orders ADD COLUMN flag boolean;\n"})
    blocker = pg8000.native.Connection(**{**pg.conn_kwargs(database), "user": role},
                                       application_name="nightly_report")
    try:
        blocker.run("BEGIN")
        blocker.run("SELECT count(*) FROM orders")  # AccessShareLock until the transaction ends
        pid = blocker.run("SELECT pg_backend_pid()")[0][0]
        r = rehearse(run_pgmi, shop, project, "--json", "--rehearse-lock-timeout", "200ms")
        assert r.returncode == 13, r.stderr
        envelope = json.loads(r.stdout)
        assert envelope["sqlstate"] == "55P03" and envelope["rehearsed"] is True
        orders = locks_of(r)["public.orders"]
        assert orders["acquired"] is False and orders["rewritten"] is None
        assert orders["mode"] == "AccessExclusiveLock" and orders["file"] == "./migrations/001.sql"
        [holder] = orders["blockers"]
        assert holder["pid"] == pid and holder["mode"] == "AccessShareLock" and holder["granted"] is True
        assert holder["state"] == "idle in transaction" and holder["applicationName"] == "nightly_report"
        assert "--rehearse-lock-timeout" in r.stderr
        r = rehearse(run_pgmi, shop, project, "--rehearse-lock-timeout", "200ms")
        assert r.returncode == 13
        assert f"public.orders could not get its lock: pid {pid} (nightly_report, idle in transaction" in r.stderr
        assert blocker.run("SELECT count(*) FROM orders") == [[ROWS]]  # the other session is untouched
    finally:
        blocker.close()
    assert_unchanged(pg, shop)


def test_fail_on_lock_risk_is_a_ci_gate(tmp_path, pg, shop, run_pgmi):
    project = migrations(tmp_path, {"001.sql": "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();"
                                               "\nALTER TABLE settings ADD COLUMN x int;\n"})
    r = rehearse(run_pgmi, shop, project, "--json", "--fail-on-lock-risk=1MB")
    assert r.returncode == 17, r.stderr
    envelope = json.loads(r.stdout)
    assert envelope["exitCode"] == 17 and "lock risk" in envelope["error"] and "public.orders" in envelope["error"]
    assert "public.settings" not in envelope["error"]  # 16 kB: below the threshold
    assert envelope["locks"][0]["relation"] == "public.orders"
    r = rehearse(run_pgmi, shop, project, "--fail-on-lock-risk", "1GB")
    assert r.returncode == 0, r.stderr
    database, role, _ = shop
    r = run_pgmi("deploy", "--fail-on-lock-risk", str(project), "-d", database, "-U", role, "--rehearse")
    assert r.returncode == 17, r.stderr  # the flag without a size (10MB) does not swallow the project path
    assert_unchanged(pg, shop)


@pytest.mark.parametrize("args, code, message", [
    (["--fail-on-lock-risk=10MB"], 10, "--fail-on-lock-risk only applies together with --rehearse"),
    (["--rehearse-lock-timeout", "1s"], 10, "--rehearse-lock-timeout only applies together with --rehearse"),
    (["--rehearse", "--fail-on-lock-risk=lots"], 2, '"--fail-on-lock-risk" flag'),
    (["--rehearse", "--rehearse-lock-timeout", "soon"], 2, '"--rehearse-lock-timeout" flag'),
])
def test_bad_lock_flags_are_one_line_errors(tmp_path, run_pgmi, args, code, message):
    project = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    r = run_pgmi("deploy", str(project), "-d", "lockrep_never_created", *args)
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@needs_mcp_sdk
def test_the_mcp_deploy_tool_rehearses_and_returns_the_locks(tmp_path, pg, shop):
    """Through the official MCP SDK: `rehearse: true` returns the same `locks` as --json."""
    import asyncio
    import os
    import sys
    from pathlib import Path
    from urllib.parse import quote

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    database, role, _ = shop
    project = migrations(tmp_path, {"001.sql": "CREATE INDEX orders_amount ON orders (amount);\n"})
    connection = f"postgresql://{role}@{quote(pg.env()['PGHOST'], safe='')}:{pg.env()['PGPORT']}/postgres" \
                 "?sslmode=disable"
    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PYTHON"))}
    env["PGMI_NON_INTERACTIVE"] = "1"
    params = StdioServerParameters(command=sys.executable, args=[str(repo / "pgmi.py"), "serve"], env=env,
                                   cwd=str(repo))
    errlog = (tmp_path / "server-stderr.txt").open("w+")

    async def scenario():
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            listed = await client.list_tools()
            [deploy] = [t for t in listed.tools if t.name == "deploy"]
            assert deploy.inputSchema["properties"]["rehearse"]["type"] == "boolean"
            answer = await client.call_tool("deploy", {"path": str(project), "connection": connection,
                                                       "database": database, "rehearse": True})
            assert not answer.isError, answer.content[0].text
            return answer.structuredContent

    try:
        result = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        errlog.close()
    assert result["rehearsed"] is True and result["relationsCreated"] == 1
    [orders] = result["locks"]
    assert orders["relation"] == "public.orders" and orders["mode"] == "ShareLock" and orders["rewritten"] is False
    assert orders["file"] == "./migrations/001.sql" and orders["line"] == 1
    assert_unchanged(pg, shop)


def test_a_fleet_rehearsal_lists_each_targets_locks(tmp_path, pg, shop, run_pgmi):
    database, role, _ = shop
    project = migrations(tmp_path, {"001.sql": "ALTER TABLE settings ADD COLUMN note text;\n"})
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  - name: shop\n    connection: {{database: {database}, username: {role}}}\n")
    r = run_pgmi("deploy", str(project), "--targets", str(targets), "--rehearse", "--json")
    assert r.returncode == 0, r.stderr
    [target] = json.loads(r.stdout)["targets"]
    assert [(lock["relation"], lock["rewritten"]) for lock in target["locks"]] == [("public.settings", False)]
    assert_unchanged(pg, shop)


def test_a_blocked_statement_written_in_deploy_sql_is_found_through_the_projects_text(tmp_path, pg, shop, run_pgmi):
    """No CONTEXT names the statement: the relations the project's statements lock are checked for holders."""
    import pg8000.native

    database, role, _ = shop
    deploy_sql = "BEGIN;\nCREATE INDEX orders_amount ON orders (amount);\nALTER TABLE settings ADD COLUMN z int;\nCOMMIT;\n"
    project = write_project(tmp_path / "p", {}, deploy_sql)
    blocker = pg8000.native.Connection(**{**pg.conn_kwargs(database), "user": role})
    try:
        blocker.run("BEGIN")
        blocker.run("SELECT * FROM settings")
        pid = blocker.run("SELECT pg_backend_pid()")[0][0]
        r = rehearse(run_pgmi, shop, project, "--json", "--rehearse-lock-timeout", "100ms")
        assert r.returncode == 13, r.stderr
        locks = locks_of(r)
        assert list(locks) == ["public.settings"]  # orders: nobody holds a conflicting lock on it
        settings = locks["public.settings"]
        assert settings["acquired"] is False and (settings["file"], settings["line"]) == ("deploy.sql", 3)
        assert [b["pid"] for b in settings["blockers"]] == [pid]
    finally:
        blocker.close()
    assert_unchanged(pg, shop)


def test_a_failing_report_query_does_not_fail_the_rehearsal(tmp_path, pg, shop, run_pgmi):
    # The head drops the snapshot the report compares against: the report is lost, the rehearsal is not.
    project = write_project(tmp_path / "p", {}, "BEGIN;\nALTER TABLE settings ADD COLUMN q int;\n"
                                                "DROP TABLE pg_temp._pgmi_rehearsal_before;\nCOMMIT;\n")
    r = rehearse(run_pgmi, shop, project, "--json")
    assert r.returncode == 0, r.stderr
    assert "WARNING: the rehearsal's lock report is unavailable" in r.stderr
    envelope = json.loads(r.stdout)
    assert envelope["status"] == "success" and "locks" not in envelope
    assert_unchanged(pg, shop)


def test_lock_retries_rehearse_again_and_report_the_last_attempt(tmp_path, pg, shop, run_pgmi):
    import pg8000.native

    database, role, _ = shop
    project = migrations(tmp_path, {"001.sql": "ALTER TABLE settings ADD COLUMN r int;\n"})
    blocker = pg8000.native.Connection(**{**pg.conn_kwargs(database), "user": role})
    try:
        blocker.run("BEGIN")
        blocker.run("LOCK TABLE settings IN ROW EXCLUSIVE MODE")
        r = rehearse(run_pgmi, shop, project, "--json", "--rehearse-lock-timeout", "100ms", "--retry-lock-timeout", "1")
        assert r.returncode == 13, r.stderr
        envelope = json.loads(r.stdout)
        assert envelope["lockRetries"] == 1
        [settings] = envelope["locks"]
        assert settings["relation"] == "public.settings" and settings["blockers"][0]["mode"] == "RowExclusiveLock"
    finally:
        blocker.close()
    assert_unchanged(pg, shop)
