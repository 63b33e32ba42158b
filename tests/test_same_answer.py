"""One rule, every caller: the CLI and the MCP server (driven by the official MCP SDK) give the
same answer for the same project, because both call the one function that holds the rule.

- the deploy timeout: explicit value > pgmi.yaml `timeout` > 3m (`config.resolve_timeout`);
- the `metadata validate` report (`project.reports.validation_report`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from projects import needs_mcp_sdk, query, run_cli, write_project

REPO = Path(__file__).resolve().parent.parent
SLOW_HEAD = "BEGIN;\nCREATE TABLE started (i int);\nSELECT pg_sleep(60);\nCOMMIT;\n"


def mcp_calls(calls: list[tuple[str, dict]], errlog_path: Path) -> list:
    """Run `pgmi serve` under the official MCP SDK client and make `calls` in order; the results."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PYTHON"))}
    env["PGMI_NON_INTERACTIVE"] = "1"
    params = StdioServerParameters(command=sys.executable, args=[str(REPO / "pgmi.py"), "serve"], env=env,
                                   cwd=str(REPO))

    async def scenario() -> list:
        with errlog_path.open("w+") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                return [await client.call_tool(name, arguments) for name, arguments in calls]

    return asyncio.run(scenario())


def _cli_error(stderr: str) -> str:
    [line] = [x for x in stderr.splitlines() if x.startswith("pgmi: error: ")]
    return line[len("pgmi: error: "):]


@needs_mcp_sdk
def test_a_pgmi_yaml_timeout_is_honoured_through_the_cli_and_mcp(pg, create_database, tmp_path, capsys):
    project = write_project(tmp_path / "p", {"pgmi.yaml": "timeout: 1s\n"}, SLOW_HEAD)
    cli_db, mcp_db, explicit_db = create_database(), create_database(), create_database()

    code, _, err = run_cli(["deploy", str(project), "--connection", pg.url("postgres"), "-d", cli_db], capsys)
    assert code == 16 and "deployment timed out after 1s (pgmi.yaml timeout)" in _cli_error(err)

    base = {"path": str(project), "connection": pg.url("postgres")}
    by_yaml, by_argument = mcp_calls([("deploy", {**base, "database": mcp_db}),
                                      ("deploy", {**base, "database": explicit_db, "timeout": "2s"})],
                                     tmp_path / "server-stderr.txt")
    assert by_yaml.isError and by_yaml.structuredContent["exitCode"] == 16
    assert "deployment timed out after 1s (pgmi.yaml timeout)" in by_yaml.structuredContent["message"]  # not 3m
    assert by_argument.isError and by_argument.structuredContent["exitCode"] == 16
    assert "deployment timed out after 2s" in by_argument.structuredContent["message"]  # the argument wins
    for db in (cli_db, mcp_db, explicit_db):  # the head was cut short and rolled back
        assert query(pg, db, "SELECT to_regclass('started') IS NULL") == [[True]]


@needs_mcp_sdk
def test_a_bad_timeout_gets_the_same_answer_through_the_cli_and_mcp(pg, tmp_path, capsys):
    project = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    broken_yaml = write_project(tmp_path / "y", {"pgmi.yaml": "timeout: later\n"}, "SELECT 1;\n")
    cases = [(project, "soon"), (project, "5 parsecs"), (project, "-5s"), (broken_yaml, None)]
    calls = []
    for path, timeout in cases:
        arguments = {"path": str(path), "connection": pg.url("postgres"), "database": "never_created"}
        calls.append(("deploy", arguments if timeout is None else {**arguments, "timeout": timeout}))
    answers = mcp_calls(calls, tmp_path / "server-stderr.txt")
    for (path, timeout), answer in zip(cases, answers):
        argv = ["deploy", str(path), "--connection", pg.url("postgres"), "-d", "never_created"]
        code, _, err = run_cli(argv if timeout is None else [*argv, f"--timeout={timeout}"], capsys)
        cli, mcp = _cli_error(err), answer.content[0].text
        assert answer.isError and answer.structuredContent["exitCode"] == code, (timeout, cli, mcp)
        if timeout is not None and not timeout.startswith("-"):
            # Worded as each caller names the value (the flag, the tool's argument); the rule's
            # own text is the same.
            parser_text = cli.split(" flag: ", 1)[1]
            assert code == 2 and mcp == f"invalid timeout: {parser_text}"
            assert cli == f'usage error: invalid argument "{timeout}" for "--timeout" flag: {parser_text}'
        else:
            assert code == 10 and mcp == cli
    assert _cli_error(err) == 'invalid configuration: invalid timeout in pgmi.yaml: time: invalid duration "later"'
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'never_created'") == [[0]]


def _meta(ident: str, key: str) -> str:
    return (f'/*\n<pgmi-meta id="{ident}" idempotent="true">\n<sortKeys><key>{key}</key></sortKeys>\n'
            "</pgmi-meta>\n*/\nSELECT 1;\n")


@needs_mcp_sdk
def test_metadata_validate_and_plan_give_the_same_answer_through_the_cli_and_mcp(tmp_path, capsys):
    import json

    same = "5b0b2c1e-4a7e-4d5c-9f0e-3c2b1a0f9e8d"
    projects = {
        "clean": write_project(tmp_path / "clean", {"a.sql": _meta(same, "002"), "b.sql": "SELECT 2;\n",
                                                    "__test__/test_a.sql": "SELECT 3;\n", "notes.txt": "x"}),
        "duplicates": write_project(tmp_path / "dup", {"a.sql": _meta(same, "001"), "b/c.sql": _meta(same, "002"),
                                                       "d.sql": "SELECT 4;\n"}),
        "malformed": write_project(tmp_path / "bad", {"bad.sql": "/*\n<pgmi-meta id='x' idempotent='true'>\n"
                                                                 "</pgmi-meta>\n*/\n"}),
    }
    calls = [(tool, {"path": str(path)}) for path in projects.values()
             for tool in ("metadata_validate", "metadata_plan")]
    answers = iter(mcp_calls(calls, tmp_path / "server-stderr.txt"))
    for name, path in projects.items():
        for command in ("validate", "plan"):
            answer = next(answers)
            code, out, err = run_cli(["metadata", command, str(path), "--json"], capsys)
            if name == "malformed" or (name == "duplicates" and command == "plan"):  # a scan error: no report
                assert code == 10 and answer.isError and answer.structuredContent["exitCode"] == 10
                assert answer.content[0].text.splitlines()[0] == _cli_error(err), (name, command)
                continue
            assert not answer.isError, answer.content[0].text
            assert answer.structuredContent == json.loads(out), (name, command)  # key order included
            assert list(answer.structuredContent) == list(json.loads(out))
            if (name, command) == ("clean", "plan"):
                assert answer.structuredContent["total_files"] == 2  # the SQL files, not the test or notes.txt
            if command == "validate":
                passed = name == "clean"
                assert answer.structuredContent["validation_passed"] is passed and code == (0 if passed else 1)


@pytest.mark.parametrize(("parallel", "max_failures"), [(0, None), (-3, None), (None, 0), (2, -1)])
def test_fleet_limits_get_the_same_answer_from_the_cli_and_the_api(tmp_path, capsys, parallel, max_failures):
    from pgmilib.deploy import DeployRequest
    from pgmilib.errors import UsageError
    from pgmilib.fleet import run_fleet

    project = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - name: a\n    connection: {database: never_a}\n")
    argv = ["deploy", str(project), "--targets", str(targets)]
    argv += [] if parallel is None else [f"--parallel={parallel}"]
    argv += [] if max_failures is None else [f"--max-failures={max_failures}"]
    code, _, err = run_cli(argv, capsys)
    options = {"parallel": parallel} if parallel is not None else {}
    with pytest.raises(UsageError) as caught:
        run_fleet(DeployRequest(project_path=str(project)), [], max_failures=max_failures, **options)
    assert code == 2 and _cli_error(err) == str(caught.value)
    assert ("--parallel" if parallel is not None and parallel < 1 else "--max-failures") in str(caught.value)


def test_the_wizard_offers_the_defaults_the_resolver_uses():
    """Blank answers in the wizard's form give the host and port a deploy assumes when nothing names one."""
    import io

    from pgmilib.conn.params import DEFAULT_HOST, DEFAULT_PORT, ConnParams
    from pgmilib.conn.resolve import default_host
    from pgmilib.scaffold.connection_wizard import _cloud_form, _password_form
    from pgmilib.scaffold.prompts import Prompter

    class Lines(Prompter):
        def secret(self, label: str) -> str:  # getpass reads the terminal; the form's other answers are lines
            return ""

    stderr = io.StringIO()
    conn, password = _password_form(Lines(io.StringIO("\n\napp\n\n\n"), stderr), "local", {})
    assert (conn["host"], conn["port"], password) == (DEFAULT_HOST, DEFAULT_PORT, None)
    assert (conn["host"], conn["port"]) == (ConnParams().host, ConnParams().port)
    assert conn["host"] == default_host(DEFAULT_PORT, socket_dirs=())  # no local socket: TCP to this host
    assert f"Host [{DEFAULT_HOST}]" in stderr.getvalue() and f"Port [{DEFAULT_PORT}]" in stderr.getvalue()
    aws = _cloud_form(Prompter(io.StringIO("db.example.com\n\napp\n\n\n"), io.StringIO()), "aws", {})
    assert aws["port"] == DEFAULT_PORT


def test_an_unknown_canary_gets_the_same_answer_from_the_cli_and_the_api(tmp_path, capsys):
    from pgmilib.deploy import DeployRequest
    from pgmilib.errors import UsageError
    from pgmilib.fleet import load_targets_file, run_fleet

    project = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - name: a\n    connection: {database: never_a}\n")
    code, _, err = run_cli(["deploy", str(project), "--targets", str(targets), "--canary", "nope"], capsys)
    with pytest.raises(UsageError) as caught:
        run_fleet(DeployRequest(project_path=str(project)), load_targets_file(targets), canary="nope")
    assert code == 2 and _cli_error(err) == str(caught.value)
    assert 'unknown target(s) "nope"' in str(caught.value)


def test_init_without_a_template_gets_the_same_project_from_the_cli_and_mcp(tmp_path, capsys):
    from pgmilib.mcp.tools_project import init
    from pgmilib.scaffold.catalogue import DEFAULT_TEMPLATE

    code, _, err = run_cli(["init", str(tmp_path / "cli")], capsys)  # not a terminal: no wizard
    answer = init({"path": str(tmp_path / "mcp")}, None)
    assert code == 0 and answer["template"] == DEFAULT_TEMPLATE and f"({DEFAULT_TEMPLATE} template)" in err

    def tree(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    assert tree(tmp_path / "cli") == tree(tmp_path / "mcp")


def test_completion_offers_the_values_the_commands_accept():
    from pgmilib.ai.setup import ASSISTANTS
    from pgmilib.cli.app import build_parser
    from pgmilib.cli.completion import complete
    from pgmilib.conn import SSLMODES

    def names(before: list[str]) -> list[str]:
        return [name for name, _ in complete(build_parser(), before, "")[0]]

    assert names(["deploy", "--sslmode"]) == list(SSLMODES)
    assert names(["ai", "setup", "--assistant"]) == list(ASSISTANTS)
