"""End-to-end `pgmi deploy` through the real CLI against a real server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from projects import EXECUTE_LOOP, query, write_project

REPO = Path(__file__).resolve().parent.parent


def make_project(root: Path, deploy_sql: str, files: dict[str, str] | None = None) -> Path:
    return write_project(root, files or {}, deploy_sql)


def new_db_name() -> str:
    return "d_" + uuid.uuid4().hex[:10]


def test_deploy_applies_files_and_reports(tmp_path, pg, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", EXECUTE_LOOP, {"a/001.sql": "CREATE TABLE t1(id int);",
                                              "a/002.sql": "INSERT INTO t1 VALUES (1), (2);"})
    result = run_pgmi("deploy", str(proj), "-d", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f'Database "{db}" does not exist; creating' in result.stderr
    assert "Loaded 2 files" in result.stderr
    assert f"{db}: 2 files loaded in " in result.stderr
    assert query(pg, db, "SELECT count(*) FROM t1") == [[2]]


def test_json_envelope_is_the_only_stdout(tmp_path, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", "DO $$ BEGIN RAISE NOTICE 'hello from deploy'; END $$;\n")
    result = run_pgmi("deploy", str(proj), "-d", db, "--json")
    assert result.returncode == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert envelope["status"] == "success" and envelope["exitCode"] == 0
    assert envelope["database"] == db and envelope["filesLoaded"] == 0
    assert envelope["executionUnits"] == envelope["unitsCommitted"] == 1
    assert "hello from deploy" in result.stderr


def test_missing_deploy_sql_wins_over_unreachable_host(tmp_path, run_pgmi):
    (tmp_path / "empty").mkdir()
    result = run_pgmi("deploy", str(tmp_path / "empty"), "-d", "x", "-h", "127.0.0.1", "-p", "1",
                      env={"PGHOST": "", "PGPORT": ""})
    assert result.returncode == 14, result.stderr
    assert "deploy.sql not found" in result.stderr


def test_missing_project_path_is_usage_error(run_pgmi):
    result = run_pgmi("deploy")
    assert result.returncode == 2
    assert "missing required argument: <project_path>" in result.stderr


def test_syntax_error_reports_line_and_column(tmp_path, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", "SELECT 1;\n\nSELEC 2;\n")
    result = run_pgmi("deploy", str(proj), "-d", db, "--json")
    assert result.returncode == 13, result.stderr
    envelope = json.loads(result.stdout)
    assert envelope["sqlstate"] == "42601"
    assert envelope["line"] == 3 and envelope["column"] == 1
    assert "LOCATION: deploy.sql line 3, column 1" in result.stderr


def test_error_inside_executed_file_names_the_file(tmp_path, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", EXECUTE_LOOP, {"m/001_ok.sql": "CREATE TABLE ok1(id int);",
                                              "m/002_bad.sql": "CREATE TABLE ok2(id int);\nSELECT * FROM nowhere;\n"})
    result = run_pgmi("deploy", str(proj), "-d", db, "--json")
    assert result.returncode == 13
    assert "./m/002_bad.sql:2:" in result.stderr
    assert "relation \"nowhere\" does not exist" in result.stderr


def test_atomic_failure_leaves_nothing(tmp_path, pg, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", EXECUTE_LOOP, {"1.sql": "CREATE TABLE kept(id int);", "2.sql": "SELECT 1/0;"})
    result = run_pgmi("deploy", str(proj), "-d", db)
    assert result.returncode == 13
    assert query(pg, db, "SELECT to_regclass('kept') IS NULL") == [[True]]


def test_begin_without_commit_fails_and_applies_nothing(tmp_path, pg, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", "BEGIN;\nCREATE TABLE never(id int);\n")
    result = run_pgmi("deploy", str(proj), "-d", db)
    assert result.returncode == 13
    assert "open transaction" in result.stderr
    assert query(pg, db, "SELECT to_regclass('never') IS NULL") == [[True]]


def test_empty_deploy_sql_succeeds_with_nothing_to_do(tmp_path, run_pgmi):
    proj = make_project(tmp_path / "p", "")
    result = run_pgmi("deploy", str(proj), "-d", new_db_name(), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "success"


def test_server_statement_timeout_is_13_client_timeout_is_16(tmp_path, run_pgmi):
    proj = make_project(tmp_path / "p", "SET statement_timeout = '200ms';\nCOMMIT;\nSELECT pg_sleep(5);\n")
    server = run_pgmi("deploy", str(proj), "-d", new_db_name())
    assert server.returncode == 13, server.stderr
    proj2 = make_project(tmp_path / "q", "SELECT pg_sleep(30);\n")
    started = time.monotonic()
    client = run_pgmi("deploy", str(proj2), "-d", new_db_name(), "--timeout", "1s")
    assert client.returncode == 16, client.stderr
    assert time.monotonic() - started < 15


def test_unsupported_compat_rejected_before_anything(tmp_path, run_pgmi):
    proj = make_project(tmp_path / "p", "SELECT 1;")
    result = run_pgmi("deploy", str(proj), "-d", "postgres", "--overwrite", "--force", "--compat", "99")
    assert result.returncode == 10
    assert 'unsupported API version "99"; supported: [1]' in result.stderr


def test_overwrite_refused_without_terminal(tmp_path, pg, run_pgmi):
    db = new_db_name()
    proj = make_project(tmp_path / "p", "SELECT 1;")
    assert run_pgmi("deploy", str(proj), "-d", db).returncode == 0
    result = run_pgmi("deploy", str(proj), "-d", db, "--overwrite", input="")
    assert result.returncode == 12
    assert "pass --force" in result.stderr
    forced = run_pgmi("deploy", str(proj), "-d", db, "--overwrite", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f'Recreated database "{db}"' in forced.stderr


def test_concurrent_deploys_second_gets_15(tmp_path, pg, run_pgmi):
    db = new_db_name()
    slow = make_project(tmp_path / "slow", "SELECT pg_sleep(3);\n")
    assert run_pgmi("deploy", str(make_project(tmp_path / "init", "SELECT 1;")), "-d", db).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    first = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(slow), "-d", db],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        second = run_pgmi("deploy", str(slow), "-d", db)
        assert second.returncode == 15, second.stderr
        assert "concurrent deployment in progress" in second.stderr
    finally:
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_sigint_cancels_and_exits_130(tmp_path, pg):
    proj = make_project(tmp_path / "p", "SELECT pg_sleep(30);\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(proj), "-d", new_db_name(),
                             "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - started < 8
    assert "interrupted, cancelling deployment" in stderr
    assert json.loads(stdout)["exitCode"] == 130


def test_notice_is_streamed_before_statement_ends(tmp_path, pg):
    proj = make_project(tmp_path / "p", "DO $$ BEGIN RAISE NOTICE 'early bird'; PERFORM pg_sleep(3); END $$;\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(proj), "-d", new_db_name()],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_at = None
    for line in proc.stderr:
        if "early bird" in line:
            seen_at = time.monotonic()
            break
    proc.communicate(timeout=30)
    ended = time.monotonic()
    assert seen_at is not None
    assert ended - seen_at > 1.5, "the notice arrived only when the statement ended"
    assert proc.returncode == 0


def test_secrets_never_reach_output(tmp_path, pg, run_pgmi):
    canary = "Canary-Pw-7731"
    proj = make_project(tmp_path / "p", "SELECT 1;\n")
    (proj / ".env").write_text(f"PGPASSWORD={canary}\n")
    (tmp_path / "params.env").write_text(f"secret={canary}\n")
    runs = [
        run_pgmi("deploy", str(proj), "-d", new_db_name(), "-v", "--json", "--params-file", str(tmp_path / "params.env")),
        run_pgmi("deploy", str(proj), "--connection",
                 f"postgresql://nobody:{canary}@127.0.0.1:1/x?connect_timeout=1", "-v", "--json",
                 env={"PGHOST": "", "PGPORT": "", "PGUSER": ""}),
        run_pgmi("deploy", str(proj), "-d", "x", "-v", env={"PGMI_CONNECTION_STRING": f"host=127.0.0.1 port=1 "
                                                              f"password={canary} connect_timeout=1", "PGHOST": ""}),
        run_pgmi("deploy", str(proj), "-d", "x", "-v", "--param", f"k={canary}", "--param", "1bad=x"),
    ]
    for result in runs:
        assert result.returncode != 3, result.stderr
        assert canary not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("bad", ["1abc", "x" * 64])
def test_bad_param_key_is_config_error(tmp_path, run_pgmi, bad):
    proj = make_project(tmp_path / "p", "SELECT 1;\n")
    result = run_pgmi("deploy", str(proj), "-d", new_db_name(), "--param", f"{bad}=v")
    assert result.returncode == 10
    assert "pgmi: error:" in result.stderr and "Traceback" not in result.stderr


def test_invalid_utf8_file_named_and_nothing_connected(tmp_path, run_pgmi):
    proj = make_project(tmp_path / "p", "SELECT 1;\n")
    (proj / "bad.sql").write_bytes(b"SELECT '\xff\xfe';\n")
    result = run_pgmi("deploy", str(proj), "-d", "never_created", "-h", "127.0.0.1", "-p", "1",
                      env={"PGHOST": "", "PGPORT": ""})
    assert result.returncode == 1
    assert "bad.sql" in result.stderr


def test_ephemeral_deploy_of_the_demo(run_pgmi):
    result = run_pgmi("deploy", str(REPO / "examples" / "demo"), "--ephemeral", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "applying ./schema/001_tables.sql" in result.stderr
    assert "files loaded" in result.stderr


def test_ephemeral_server_is_removed_even_when_the_deploy_fails(tmp_path, run_pgmi):
    parent = tempfile.mkdtemp(prefix="pgmi-eph-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    os.chmod(parent, 0o755)  # reachable by the server account when we are root
    try:
        proj = make_project(tmp_path / "p", "SELECT 1/0;\n")
        result = run_pgmi("deploy", str(proj), "--ephemeral", env={"PGMI_CLUSTER_TMP": parent}, timeout=180)
        assert result.returncode == 13, result.stderr
        assert "runs only during this deploy" in result.stderr
        assert os.listdir(parent) == []
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_ephemeral_keep_leaves_a_reachable_server(tmp_path, run_pgmi):
    import re

    import pg8000.native

    proj = make_project(tmp_path / "p", "CREATE TABLE kept(id int);\n")
    result = run_pgmi("deploy", str(proj), "--ephemeral", "--keep", "-d", "app", timeout=180)
    assert result.returncode == 0, result.stderr
    where = re.search(r'psql "host=(\S+) ', result.stderr).group(1)
    try:
        port = next(name.rsplit(".", 1)[1] for name in os.listdir(where) if name.startswith(".s.PGSQL."))
        c = pg8000.native.Connection(user="postgres", database="app", unix_sock=f"{where}/.s.PGSQL.{port}")
        assert c.run("SELECT to_regclass('kept') IS NOT NULL") == [[True]]
        c.close()
    finally:
        stop = result.stderr.split("Stop and remove it with: ", 1)[1].splitlines()[0]
        subprocess.run(stop, shell=True, check=False, capture_output=True)
    assert not os.path.exists(where)


def test_keep_without_ephemeral_is_config_error(tmp_path, run_pgmi):
    result = run_pgmi("deploy", str(make_project(tmp_path / "p", "SELECT 1;")), "-d", "x", "--keep")
    assert result.returncode == 10
    assert "--keep only applies together with --ephemeral" in result.stderr


@pytest.mark.parametrize("script, what", [
    ("SELECT 1;\nSELECT $body$ never closed;\n", "unterminated dollar-quoted string $body$ starting at line 2"),
    ("SELECT 1;\n/* never closed\n", "unterminated block comment starting at line 2"),
    ("SELECT 'never closed;\n", "unterminated quoted string starting at line 1"),
])
def test_unterminated_constructs_are_execution_errors_that_say_where(tmp_path, run_pgmi, script, what):
    result = run_pgmi("deploy", str(make_project(tmp_path / "p", script)), "-d", new_db_name())
    assert result.returncode == 13, result.stderr
    assert f"NOTE: deploy.sql has an {what}" in result.stderr
