"""Hostile or broken input: one line (or one block) naming the problem, the documented exit
code, never a traceback, nothing touched in the database."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from projects import write_project

REPO = Path(__file__).resolve().parent.parent

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def _db() -> str:
    return "h_" + uuid.uuid4().hex[:10]


def _no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "panic" not in result.stderr, result.stderr


# ---- the scan ------------------------------------------------------------------------------

def test_every_non_text_file_is_reported_in_one_run(tmp_path, run_pgmi):
    files = {f"img/{n}.png": PNG for n in ("a", "b", "c", "d")}
    files["bad/latin1.sql"] = "SELECT 'caf\xe9';".encode("latin-1")
    proj = write_project(tmp_path / "p", files)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == 1, result.stderr
    _no_traceback(result)
    for name in ("a", "b", "c", "d"):
        assert f"./img/{name}.png contains a NUL byte" in result.stderr
    assert "./bad/latin1.sql is not valid UTF-8" in result.stderr
    assert "and 4 more file problem(s)" in result.stderr
    assert len(json.loads(result.stdout)["fileProblems"]) == 5


def test_non_utf8_file_and_directory_names_exit_1(tmp_path, run_pgmi):
    proj = write_project(tmp_path / "p", {"ok.sql": "SELECT 1;"})
    raw = os.fsencode(str(proj))
    with open(raw + b"/caf\xe9.sql", "wb") as handle:
        handle.write(b"SELECT 1;")
    os.mkdir(raw + b"/dir\xff")
    result = run_pgmi("deploy", str(proj), "-d", _db())
    assert result.returncode == 1, result.stderr
    _no_traceback(result)
    assert "name ./caf\\xe9.sql is not valid UTF-8" in result.stderr
    assert "name ./dir\\xff is not valid UTF-8" in result.stderr


def test_a_2000_level_tree_is_walked_without_recursion(tmp_path):
    from pgmilib.project.scan import scan

    root = write_project(tmp_path / "p", {})
    deep = str(root)
    for _ in range(2000):  # os.makedirs itself recurses
        deep += "/d"
        os.mkdir(deep)
    try:
        with open(deep + "/x.sql", "w") as handle:
            handle.write("SELECT 1;")
        project = scan(root)
        assert [f.path for f in project.files] == ["./" + "d/" * 2000 + "x.sql"]
    finally:  # shutil.rmtree (pytest's clean-up) recurses too: remove the tree bottom-up
        if os.path.exists(deep + "/x.sql"):
            os.unlink(deep + "/x.sql")
        while deep != str(root):
            os.rmdir(deep)
            deep = deep[:-2]


def test_deploy_sql_symlink_out_of_the_project_is_refused(tmp_path, pg, run_pgmi):
    outside = tmp_path / "outside.sql"
    outside.write_text("CREATE TABLE leaked (a int);\n")
    proj = write_project(tmp_path / "p", {}, deploy_sql=None)
    (proj / "deploy.sql").symlink_to(outside)
    db = _db()
    result = run_pgmi("deploy", str(proj), "-d", db)
    assert result.returncode == 1, result.stderr
    _no_traceback(result)
    assert "refusing to read symlink ./deploy.sql" in result.stderr
    assert "creating" not in result.stderr  # refused offline, before any connection


# ---- database names ------------------------------------------------------------------------

def _databases(conn) -> set[str]:
    return {r[0] for r in conn.run("SELECT datname FROM pg_database")}


def test_database_name_with_nul_is_refused_before_anything(tmp_path, pg, conn, create_database, run_pgmi):
    victim = create_database()  # "t_xxx": a name a NUL-stripping quote would turn "t_\0xxx" into
    before = _databases(conn)
    proj = write_project(tmp_path / "p", {})
    nul_name = victim[:2] + "%00" + victim[2:]
    url = pg.url("postgres").rsplit("/", 1)[0] + "/" + nul_name
    result = run_pgmi("deploy", str(proj), "--connection", url, "--overwrite", "--force")
    assert result.returncode == 10, result.stderr
    _no_traceback(result)
    assert "contains a NUL character" in result.stderr
    assert _databases(conn) == before


def test_database_name_not_utf8_is_refused_before_anything(tmp_path, pg, conn, run_pgmi):
    import subprocess
    import sys

    before = _databases(conn)
    proj = write_project(tmp_path / "p", {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    result = subprocess.run([sys.executable, str(REPO / "pgmi.py"), "deploy", str(proj), "-d", b"caf\xe9",
                             "--overwrite", "--force"], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 10, result.stderr
    _no_traceback(result)
    assert "is not valid UTF-8" in result.stderr
    assert _databases(conn) == before


def test_quote_ident_refuses_nul_instead_of_dropping_it():
    from pgmilib.deploy.dbadmin import quote_ident
    from pgmilib.errors import ConfigError

    assert quote_ident('a"b') == '"a""b"'
    with pytest.raises(ConfigError):
        quote_ident("a\x00b")


# ---- pgmi.yaml -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", ids=["flow", "block"], argvalues=[
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels deep"),
    ("params:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(200)) + "    " * 201 + "v: 1\n",
     "nested more than 64 levels deep"),
])
def test_deeply_nested_pgmi_yaml_is_a_config_error(tmp_path, run_pgmi, text, message):
    proj = write_project(tmp_path / "p", {"pgmi.yaml": text})
    result = run_pgmi("deploy", str(proj), "-d", _db())
    assert result.returncode == 10, result.stderr
    _no_traceback(result)
    assert message in result.stderr and "pgmi.yaml" in result.stderr


def test_yaml_alias_bomb_is_cheap_and_rejected_by_the_schema(tmp_path):
    import time

    from pgmilib.config import load_project_config
    from pgmilib.errors import ConfigError

    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines.append("params:\n  bomb: *a9")
    write_project(tmp_path / "p", {"pgmi.yaml": "\n".join(lines) + "\n"})
    started = time.monotonic()
    with pytest.raises(ConfigError):
        load_project_config(tmp_path / "p")
    assert time.monotonic() - started < 5


# ---- test reports --------------------------------------------------------------------------

def test_test_reports_never_contain_a_secret_parameter(tmp_path, run_pgmi):
    secret = 'S3cr&t"<pw>'  # characters XML and JSON escape, so redacting the final text is not enough
    failing = ("DO $$ BEGIN RAISE EXCEPTION 'leaked: %', (SELECT value FROM pg_temp.pgmi_parameter_view "
               "WHERE key = 'db_password') USING DETAIL = (SELECT value FROM pg_temp.pgmi_parameter_view "
               "WHERE key = 'db_password'); END $$;\n")
    proj = write_project(tmp_path / "p", {"__test__/test_leak.sql": failing},
                         "BEGIN;\nCALL pgmi_test();\nCOMMIT;\n")
    reports = {fmt: tmp_path / f"report.{fmt}" for fmt in ("junit", "tap", "json")}
    args = ["deploy", str(proj), "-d", _db(), "--param", f"db_password={secret}"]
    for fmt, path in reports.items():
        args += ["--test-report", f"{fmt}:{path}"]
    result = run_pgmi(*args)
    assert result.returncode == 13, result.stderr
    assert secret not in result.stderr
    for fmt, path in reports.items():
        text = path.read_text()
        assert "leaked: " in text, (fmt, text)
        for form in (secret, json.dumps(secret)[1:-1], "S3cr&amp;t", "S3cr"):
            assert form not in text, (fmt, form, text)


# ---- connection lost in the first milliseconds ----------------------------------------------

class _CuttingProxy:
    """A Unix-socket proxy in front of the test server that cuts the connection when the client
    sends its Nth query ('Q' simple or 'P' parse) after start-up: a server that goes away at
    exactly that step (version check, lock query, session set-up, macro expansion, ...)."""

    def __init__(self, pg, cut_at: int) -> None:
        import socket
        import tempfile
        import threading

        self.dir = tempfile.mkdtemp(prefix="pgmi-cut-")
        self.port = int(pg.env()["PGPORT"])
        self.target = os.path.join(pg.env()["PGHOST"], f".s.PGSQL.{self.port}")
        self.cut_at = cut_at
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(os.path.join(self.dir, f".s.PGSQL.{self.port}"))
        self.listener.listen(8)
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.target)
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
            threading.Thread(target=self._client_side, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def _client_side(self, client, server) -> None:
        import struct

        buffer, started, queries = b"", False, 0
        try:
            while data := client.recv(65536):
                buffer += data
                out = b""
                while True:
                    if not started:
                        if len(buffer) < 4 or len(buffer) < struct.unpack("!i", buffer[:4])[0]:
                            break
                        size = struct.unpack("!i", buffer[:4])[0]
                        started = True
                    else:
                        if len(buffer) < 5 or len(buffer) < 1 + struct.unpack("!i", buffer[1:5])[0]:
                            break
                        size = 1 + struct.unpack("!i", buffer[1:5])[0]
                        if buffer[:1] in (b"Q", b"P"):
                            queries += 1
                            if queries == self.cut_at:
                                self.cuts += 1
                                raise OSError("cut")
                    out, buffer = out + buffer[:size], buffer[size:]
                server.sendall(out)
        except OSError:
            pass
        for s in (client, server):
            try:
                s.shutdown(2)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        import shutil

        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("cut_at", range(1, 17))
def test_connection_lost_early_is_exit_11_never_a_panic(tmp_path, pg, fresh_db, run_pgmi, cut_at):
    proj = write_project(tmp_path / "p", {"a.sql": "SELECT 1;", "__test__/test_x.sql": "SELECT 1;"},
                         "BEGIN;\nCREATE TABLE t (a int);\nCALL pgmi_test();\nCOMMIT;\n")
    proxy = _CuttingProxy(pg, cut_at)
    try:
        result = run_pgmi("deploy", str(proj), "-d", fresh_db, env={"PGHOST": proxy.dir}, timeout=60)
    finally:
        proxy.close()
    _no_traceback(result)
    assert result.stderr.count("\n") < 40
    if proxy.cuts == 0:  # the deploy needs fewer round trips than cut_at
        assert result.returncode == 0, result.stderr
    elif cut_at <= 8:  # version check, lock, session set-up, file load: before any user SQL
        assert result.returncode == 11, result.stderr
        assert "connection to the server lost" in result.stderr
    else:  # later: macro expansion (11), deploy.sql (13), or the clean-up after success (0)
        assert result.returncode in (0, 11, 13), result.stderr
        if result.returncode == 13:
            assert "Executing deploy.sql" in result.stderr
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        exists = c.run("SELECT to_regclass('t') IS NOT NULL")[0][0]
    finally:
        c.close()
    assert exists is (result.returncode == 0)


# ---- regressions for hostile input fixed earlier on main -------------------------------------

@pytest.mark.parametrize("which", [".env", "pgmi.yaml", "params"])
def test_fifo_config_files_are_refused_not_waited_on(tmp_path, run_pgmi, which):
    proj = write_project(tmp_path / "p", {})
    fifo = tmp_path / "params.env" if which == "params" else proj / which
    os.mkfifo(fifo)
    args = ["deploy", str(proj), "-d", _db()] + (["--params-file", str(fifo)] if which == "params" else [])
    result = run_pgmi(*args, timeout=30)  # a blocking open() would hang until the timeout
    _no_traceback(result)
    if which == ".env":  # an unusable .env is a warning (none of its values applied), as on main
        assert result.returncode == 0 and "could not be parsed" in result.stderr, result.stderr
    else:
        assert result.returncode == 10, result.stderr
        assert "a FIFO" in result.stderr


def test_nul_in_a_dotenv_value_is_a_warning_not_a_crash(tmp_path, run_pgmi):
    # A PGPORT value with NUL would be unusable: the whole .env is skipped with a warning (as on main).
    proj = write_project(tmp_path / "p", {".env": b"PGPORT=54\x0032\n"})
    result = run_pgmi("deploy", str(proj), "-d", _db())
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert ".env could not be parsed" in result.stderr


def test_a_100k_line_dotenv_parses_in_linear_time():
    import time

    from pgmilib.config.dotenv import parse_env_text

    def seconds(lines: int) -> float:
        text = "BASE=b\n" + "".join(f"KEY_{i}=value_{i} ${{BASE}}\n" for i in range(lines))
        started = time.process_time()
        parsed = parse_env_text(text, ".env", {})
        assert len(parsed) == lines + 1 and parsed[f"KEY_{lines - 1}"] == f"value_{lines - 1} b"
        return time.process_time() - started

    small, big = seconds(10_000), seconds(100_000)
    assert big < 5
    assert big < small * 10 * 4  # ten times the lines: far from a hundred times the time


@pytest.mark.parametrize("flag, value", [("PGCONNECT_TIMEOUT", "\u0663"), ("PGPORT", "\u0665\u0664\u0663\u0662")])
def test_non_ascii_digits_in_numeric_settings_are_config_errors(tmp_path, run_pgmi, flag, value):
    proj = write_project(tmp_path / "p", {})
    result = run_pgmi("deploy", str(proj), "-d", _db(), env={flag: value})
    assert result.returncode == 10, result.stderr
    _no_traceback(result)


def test_connect_timeout_with_non_ascii_digit_in_a_uri_is_a_config_error(tmp_path, pg, run_pgmi):
    proj = write_project(tmp_path / "p", {})
    url = pg.url("postgres") + "?connect_timeout=\u0663"
    result = run_pgmi("deploy", str(proj), "--connection", url)
    assert result.returncode == 10, result.stderr
    _no_traceback(result)


def test_redaction_of_a_60000_character_notice_is_linear():
    import time

    from pgmilib.redact import redact, register_secret, secret_scope

    with secret_scope():
        register_secret("hunter2-secret")
        text = ("x" * 59_990) + "hunter2-secret"
        started = time.process_time()
        for _ in range(20):
            cleaned = redact(text)
        assert time.process_time() - started < 2
        assert "hunter2-secret" not in cleaned


def test_panic_output_is_redacted(tmp_path, pg, monkeypatch, capsys):
    from projects import run_cli

    from pgmilib.deploy import session

    secret = "pw-panic-9f3e"

    def buggy(conn):
        raise RuntimeError(f"a bug that mentions {secret}")

    monkeypatch.setattr(session, "check_server_version", buggy)
    for key, value in pg.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PGMI_NON_INTERACTIVE", "1")
    proj = write_project(tmp_path / "p", {})
    code, out, err = run_cli(["deploy", str(proj), "-d", _db(), "--param", f"password={secret}"], capsys)
    assert code == 3
    assert "panic:" in err and "a bug that mentions" in err
    assert secret not in err and secret not in out
