"""The small things a new user meets in the first hour: help, suggestions, hints that say what to do.

Each message is checked the way the user meets it: the CLI in a subprocess or in-process,
against the session's real server (a missing role, a role without CREATEDB, a port where
nothing listens), `pgmi serve` on a real pseudo-terminal.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from projects import query, run_cli, write_project

from pgmilib.errors import Exit

REPO = Path(__file__).resolve().parent.parent


def test_dash_h_points_at_help_and_stays_host_on_deploy(capsys):
    for argv in (["-h"], ["info", "-h"], ["templates", "list", "-h"]):
        code, _, err = run_cli(argv, capsys)
        assert code == Exit.USAGE
        assert err == "pgmi: error: usage error: unrecognized arguments: -h; use --help for help\n", argv
    from pgmilib.cli.app import build_parser

    assert build_parser().parse_args(["deploy", ".", "-h", "db.example.com"]).host == "db.example.com"


def test_ai_help_lists_its_subcommands(capsys):
    code, out, _ = run_cli(["ai", "--help"], capsys)
    assert code == 0
    for sub in ("skills", "skill", "contract", "client", "setup", "check"):
        assert f"    {sub} " in out, sub
    assert "rest" not in out.split()


def test_templates_describe_suggests_the_close_name(capsys):
    code, out, err = run_cli(["templates", "describe", "advnced"], capsys)
    assert (code, out) == (Exit.USAGE, "")
    assert err.splitlines()[0] == ('pgmi: error: usage error: unknown template "advnced" (available: [basic '
                                   'advanced]); did you mean advanced?')
    code, _, err = run_cli(["templates", "describe", "zzz"], capsys)
    assert code == Exit.USAGE and "did you mean" not in err


def test_serve_on_a_terminal_says_what_it_is_and_on_a_pipe_says_nothing(tmp_path):
    from test_wizard import Terminal

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    term = Terminal([sys.executable, str(REPO / "pgmi.py"), "serve"], tmp_path, env)
    term.expect("pgmi serve speaks MCP (JSON-RPC) on stdin/stdout")
    term.send_raw(b"\x04")  # end of input: the server stops
    assert term.finish() == 0
    assert term.output.count("\n") == 1  # one line
    piped = subprocess.run([sys.executable, str(REPO / "pgmi.py"), "serve"], input="", capture_output=True,
                           text=True, env=env, timeout=60, check=False)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "", "")


def test_a_missing_role_is_named_with_what_to_do(run_pgmi, tmp_path):
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    result = run_pgmi("deploy", str(proj), "-d", "postgres", env={"PGUSER": "no_such_role_here"})
    assert result.returncode == Exit.CONNECTION
    assert 'hint: no role "no_such_role_here" on this server: connect as an existing one (-U, $PGUSER), or have ' \
           'an administrator create it (CREATE ROLE "no_such_role_here" LOGIN' in result.stderr, result.stderr
    assert "pg_hba.conf" not in result.stderr


def test_no_createdb_names_the_exit_code_and_both_ways_out(run_pgmi, pg, tmp_path):
    role, db = "nocreate_" + uuid.uuid4().hex[:8], "t_" + uuid.uuid4().hex[:12]
    query(pg, "postgres", f'CREATE ROLE "{role}" LOGIN')
    try:
        proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
        result = run_pgmi("deploy", str(proj), "-d", db, env={"PGUSER": role})
        assert result.returncode == Exit.GENERAL
        assert f'failed to create database "{db}": permission denied to create database' in result.stderr
        assert "hint: exit code 1: the connecting role may not create databases; grant it CREATEDB" in result.stderr
        assert f'or create "{db}" first' in result.stderr
        assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = :d", d=db) == [[0]]
    finally:
        query(pg, "postgres", f'DROP ROLE "{role}"')


def test_refused_on_localhost_suggests_ephemeral(run_pgmi, tmp_path):
    with socket.socket() as s:  # a port nothing listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
        result = run_pgmi("deploy", str(proj), "-d", "app", "--host", "127.0.0.1", "--port", str(port),
                          "--timeout", "20s")
    assert result.returncode == Exit.CONNECTION
    assert f"connection refused to 127.0.0.1:{port}" in result.stderr
    assert "or deploy into a throwaway local server instead: pgmi deploy <project> --ephemeral" in result.stderr
    remote = run_pgmi("deploy", str(proj), "-d", "app", "--host", "nonexistent.invalid", "--timeout", "20s")
    assert remote.returncode == Exit.CONNECTION and "--ephemeral" not in remote.stderr
