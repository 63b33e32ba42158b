"""The empty deploy's process: what it imports, and how it ends (pgmilib.cli.app.run).

A deploy without TLS, without a failure and without metadata does not load the modules only those
need (bench/empty.py measures what that saves); the process entry point ends without interpreter
teardown but after flushing everything, and keeps the normal exit when an atexit hook or a running
thread needs it. Each check runs a real interpreter in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from projects import query, write_project

REPO = Path(__file__).resolve().parent.parent

# Loaded by a deploy only when it needs them: TLS, a failed statement to locate, a rehearsal's lock
# report, a deploy long enough for the live status, files with <pgmi-meta> blocks. (importlib.resources,
# for a bundled file that is not on disk, is not listed: in a checkout the published scramp loads it
# through asn1crypto, which the zipapp defers, see tests/test_build.py.)
NOT_NEEDED = ("ssl", "pgmilib.deploy.lockreport", "pgmilib.deploy.lockstatements", "pgmilib.deploy.locate",
              "pgmilib.observe.render", "pgmilib.observe.second", "pgmilib.project.metadata",
              # Nor dataclasses (with inspect and ast behind it: pgmilib.records instead), nor getpass
              # (only when no user is named anywhere).
              "dataclasses", "getpass",
              # Nor what uuid and argparse import for nothing here (pgmilib/lean.py). (locale is not
              # listed: in a checkout the published driver loads it through dateutil and calendar; the
              # zipapp's does not, see tests/test_build.py.)
              "platform", "gettext")

# Regular expressions compiled on first use, which a plain re-deploy (no URI in a message, no BEGIN
# ATOMIC, no test macro or report, no parameters, no .env, every checksum in the cache) does not use:
# compiling them all at import cost ~5 ms of every start-up.
COMPILED_ON_FIRST_USE = (
    "pgmilib.redact._uri", "pgmilib.redact._token", "pgmilib.sqllex._begin_atomic", "pgmilib.deploy.testing._macro",
    "pgmilib.deploy.testing._ident", "pgmilib.deploy.reports._xml_invalid", "pgmilib.config.params._param_key",
    "pgmilib.config.params._secret_name", "pgmilib.config.dotenv._expand", "pgmilib.project.checksums._tokens",
    "pgmilib.project.checksums._wide_space",
)

# Runs pgmi's process entry point with main() wrapped, to write sys.modules once the deploy is done.
PROBE = """\
import builtins, json, sys
sys.path.insert(0, sys.argv[1])
typing_importers = set()  # the modules whose own import statements ask for typing
plain_import = builtins.__import__
def recording_import(name, globals=None, *args):
    if name == "typing":
        typing_importers.add((globals or {}).get("__name__"))
    return plain_import(name, globals, *args)
builtins.__import__ = recording_import
from pgmilib.cli import app
inner = app.main
def main(argv=None):
    code = inner(argv)
    # The patterns compiled on first use (functools.cache accessors) that the run did compile.
    compiled = sorted(f"{name}.{attr}" for name, module in list(sys.modules.items()) if name.startswith("pgmilib")
                      for attr, value in list(vars(module).items())
                      if getattr(value, "__module__", None) == name and hasattr(value, "cache_info")
                      and value.cache_info().currsize)
    with open(sys.argv[2], "w") as fh:
        json.dump({"modules": sorted(sys.modules), "compiled": compiled,
                   "typing_importers": sorted(map(str, typing_importers))}, fh)
    return code
app.main = main
app.run(sys.argv[3:])
"""


def _env(pg) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_PG_")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1", PGMI_CACHE_DIR="off")
    return env


def test_an_empty_deploy_loads_only_what_it_uses(pg, fresh_db, tmp_path):
    project = write_project(tmp_path / "p", {"schema/t.sql": "CREATE TABLE t (id int);\n"},
                            deploy_sql="BEGIN;\nSELECT 1;\nCREATE TABLE from_deploy (id int);\nCOMMIT;\n")
    dump = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO), str(dump), "deploy", str(project), "-d", fresh_db,
                           "--sslmode", "disable", "--timeout", "0"],
                          env=_env(pg), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(dump.read_text())
    loaded = set(seen["modules"])
    assert "pgmilib.deploy.pipeline" in loaded  # the probe saw a real deploy
    assert sorted(loaded.intersection(NOT_NEEDED)) == []
    # typing (~4 ms) is for type checkers only: no pgmi module imports it at run time. (The published
    # pg8000 still does, through functools.singledispatch; the zipapp's does not, see tests/test_build.py.)
    assert [name for name in seen["typing_importers"] if name.startswith("pgmilib")] == []
    assert "functools" in seen["typing_importers"]  # the record sees the imports a module makes
    assert query(pg, fresh_db, "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


# Records what is imported when the session API goes to the server: a local deploy hands it to
# the early start behind the login (deploy/pipeline.py `open_early`), before the driver is
# imported; whatever comes after that is client work the server's build hides. The probe also
# records that the API sent ahead was the one the session kept.
SEND_PROBE = """\
import sys
sys.path.insert(0, sys.argv[1])
from pgmilib.cli import app
from pgmilib.conn import early
from pgmilib.deploy import session
seen = {}
send = early.Started.send_at_login
def recording_send(self, query):
    seen["modules"] = sorted(sys.modules)  # before the probe's own json
    return send(self, query)
early.Started.send_at_login = recording_send
adopt = session.adopt_api_ahead
def recording_adopt(conn, pid):
    finish = adopt(conn, pid)
    def recorded():
        seen["kept"] = finish()
        return seen["kept"]
    return recorded
session.adopt_api_ahead = recording_adopt
code = app.main(sys.argv[3:])
import json
with open(sys.argv[2], "w") as fh:
    json.dump(seen, fh)
sys.exit(code)
"""

#: Not needed to connect, so imported only after the session API is sent: the driver and pgmi's
#: side of the connection (the API goes out behind the login, conn/early.py), the scan and what
#: follows it. (In a checkout the published driver loads hashlib, json, random and unicodedata
#: itself; the zipapp's does not: tests/test_build.py.)
AFTER_THE_SEND = ("pg8000", "pgmilib.conn.wire", "pgmilib.conn.connect", "pgmilib.project.checksums",
                  "pgmilib.project.scan", "pgmilib.sqllex", "pgmilib.deploy.execute", "secrets")


def test_the_session_api_is_sent_before_the_drivers_import(pg, fresh_db, tmp_path):
    project = write_project(tmp_path / "p", {"schema/t.sql": "CREATE TABLE t (id int);\n"},
                            deploy_sql="CREATE TABLE from_deploy (id int);\n")
    dump = tmp_path / "seen.json"
    done = subprocess.run([sys.executable, "-c", SEND_PROBE, str(REPO), str(dump), "deploy", str(project),
                           "-d", fresh_db, "--sslmode", "disable", "--timeout", "0"],
                          env=_env(pg), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(dump.read_text())
    at_send = set(seen["modules"])
    assert "pgmilib.deploy.session" in at_send  # the probe ran when the API was handed over
    assert sorted(at_send.intersection(AFTER_THE_SEND)) == []
    assert seen["kept"] is True  # the test server logs in without an exchange: the API went ahead
    assert query(pg, fresh_db, "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


def test_a_redeploy_compiles_no_pattern_it_does_not_use(pg, fresh_db, tmp_path):
    """The second deploy of a project finds its normalized checksums in the cache: it compiles none
    of the patterns compiled on first use; the first deploy compiled the checksum tokenizer's."""
    import importlib

    for accessor in COMPILED_ON_FIRST_USE:  # each still an accessor, so the check cannot pass vacuously
        module, _, name = accessor.rpartition(".")
        assert hasattr(getattr(importlib.import_module(module), name), "cache_info"), accessor
    project = write_project(tmp_path / "p", {"schema/t.sql": "-- a table\nCREATE TABLE t (id int);\n"},
                            deploy_sql="CREATE TABLE IF NOT EXISTS from_deploy (id int);\n")
    env = {**_env(pg), "PGMI_CACHE_DIR": str(tmp_path / "cache")}
    compiled = []
    for run in ("first", "second"):
        dump = tmp_path / f"{run}.json"
        done = subprocess.run([sys.executable, "-c", PROBE, str(REPO), str(dump), "deploy", str(project), "-d",
                               fresh_db, "--sslmode", "disable", "--timeout", "0"],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        compiled.append(sorted(set(json.loads(dump.read_text())["compiled"]).intersection(COMPILED_ON_FIRST_USE)))
    assert compiled == [["pgmilib.project.checksums._tokens"], []]
    assert query(pg, fresh_db, "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


def test_the_deploy_command_line_is_parsed_without_shutil():
    """argparse imports shutil for the terminal width unless its formatter is given one (cli/app.py
    `_Formatter`). In a bare interpreter: in a checkout, the published pg8000 loads shutil anyway."""
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from pgmilib.cli.app import build_parser; "
             "build_parser('deploy').parse_args(['deploy', 'p', '-d', 'x']); print(sorted({'shutil', 'tempfile'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-S", "-c", probe, str(REPO)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_wraps_at_the_terminal_width():
    """The formatter's own width rule: $COLUMNS first (as shutil.get_terminal_size reads it)."""
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from pgmilib.cli.app import build_parser; "
             "print(build_parser('deploy')._subparsers._group_actions[0].choices['deploy'].format_help())")
    widths = {}
    for columns in ("60", "160"):
        done = subprocess.run([sys.executable, "-S", "-c", probe, str(REPO)], capture_output=True, text=True,
                              timeout=60, check=False, env={**os.environ, "COLUMNS": columns})
        assert done.returncode == 0, done.stderr
        widths[columns] = max(len(line) for line in done.stdout.splitlines())
    assert widths["60"] <= 60 < widths["160"] <= 160


def test_a_failed_statement_still_loads_the_locator(pg, fresh_db, tmp_path):
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\nSELECT * FROM no_such_table;\n")
    dump = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO), str(dump), "deploy", str(project), "-d", fresh_db,
                           "--sslmode", "disable", "--timeout", "0"],
                          env=_env(pg), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "no_such_table" in done.stderr
    assert "pgmilib.deploy.locate" in set(json.loads(dump.read_text())["modules"])


def test_the_entry_point_flushes_before_it_ends(pg, fresh_db, tmp_path):
    """stdout is a pipe (block-buffered): the summary and the JSON document arrive whole."""
    import pg8000.native

    project = write_project(tmp_path / "p", {"a.sql": "CREATE TABLE a (id int);\n"},
                            deploy_sql="BEGIN;\nCREATE TABLE IF NOT EXISTS b (id int);\nCOMMIT;\n")
    # Open before pgmi runs, so the check right after it ends costs one query, not a connection
    # start-up (which alone would give the server time to finish ending pgmi's session).
    observer = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        for _ in range(3):  # the race, when there is one, is not lost every time
            done = subprocess.run([sys.executable, str(REPO / "pgmi.py"), "deploy", str(project), "-d", fresh_db,
                                   "--sslmode", "disable", "--timeout", "0", "--json"],
                                  env=_env(pg), capture_output=True, text=True, timeout=120, check=False)
            # The process ended at once, but only after the server had ended the session: no backend
            # of it is left, nor its temp tables (a DROP ROLE right after a deploy must not meet them).
            # pgmi's backends only (application_name): autovacuum may visit the new database.
            left = observer.run("SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND pid <> pg_backend_pid() AND application_name LIKE 'pgmi%'), "
                                "(SELECT count(*) FROM pg_class WHERE relname = '_pgmi_source')")
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["status"] == "success"
            assert left == [[0, 0]]
    finally:
        observer.close()
    assert query(pg, fresh_db, "SELECT to_regclass('public.b') IS NOT NULL") == [[True]]


EXIT_PROBE = """\
import atexit, sys, threading, time
sys.path.insert(0, sys.argv[1])
from pgmilib.cli import app
case = sys.argv[2]
if case == "atexit":
    atexit.register(lambda: print("atexit hook ran", flush=True))
elif case == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=True))).start()
elif case.startswith("late-"):  # a signal right after the result, as the exit starts
    import os, signal
    sig = getattr(signal, case[len("late-"):])
    checked = app._needs_normal_exit
    app._needs_normal_exit = lambda: (os.kill(os.getpid(), sig), checked())[1]
print("needs normal exit:", app._needs_normal_exit() if not case.startswith("late-") else False)
app.run(["version"])
"""


def _exit_probe(case: str) -> subprocess.CompletedProcess:
    # -S, as the zipapp runs: a site-packages .pth hook may register an atexit callback of its own
    return subprocess.run([sys.executable, "-S", "-c", EXIT_PROBE, str(REPO), case], capture_output=True, text=True,
                          timeout=60, check=False)


def test_nothing_pending_ends_at_once_with_the_output_flushed():
    done = _exit_probe("plain")
    assert done.returncode == 0, done.stderr
    assert "needs normal exit: False" in done.stdout
    assert "pgmi " in done.stdout  # `version` printed before the process ended


def test_an_atexit_hook_keeps_the_normal_exit():
    done = _exit_probe("atexit")
    assert done.returncode == 0, done.stderr
    assert "needs normal exit: True" in done.stdout
    assert done.stdout.rstrip().endswith("atexit hook ran")


def test_a_running_thread_keeps_the_normal_exit():
    done = _exit_probe("thread")
    assert done.returncode == 0, done.stderr
    assert "needs normal exit: True" in done.stdout
    assert done.stdout.rstrip().endswith("thread finished")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_after_the_result_keeps_the_exit_code_and_prints_no_traceback(sig):
    done = _exit_probe(f"late-{sig}")
    assert done.returncode == 0, done.stderr
    assert "pgmi " in done.stdout and "Traceback" not in done.stderr and done.stderr == ""


def test_the_deploy_branch_alone_parses_as_the_whole_tree():
    """`pgmi deploy ...` builds only the deploy branch of the command tree: same result, same help."""
    from pgmilib.cli.app import build_parser

    argv = ["deploy", "proj", "-d", "db", "-h", "host", "--param", "a=b", "--timeout", "5s", "--json", "-v"]
    assert vars(build_parser("deploy").parse_args(argv)).keys() == vars(build_parser().parse_args(argv)).keys()
    alone, whole = build_parser("deploy").parse_args(argv), build_parser().parse_args(argv)
    assert {k: v for k, v in vars(alone).items() if k not in ("_parser", "func")} == \
        {k: v for k, v in vars(whole).items() if k not in ("_parser", "func")}
    assert alone._parser.format_help() == whole._parser.format_help()
    assert list(build_parser("deploy")._subparsers._group_actions[0].choices) == ["deploy"]


# ---- the cyclic garbage collector: off for one command (pgmilib.cli.app.run) ---------------------

GC_PROBE = """\
import gc, sys
sys.path.insert(0, sys.argv[1])
from pgmilib.cli import app
from pgmilib.mcp import server
import pgmilib.fleet as fleet
server.Server.serve = lambda self: print("serve, collector on:", gc.isenabled(), flush=True) or 0
deploy_fleet = fleet.run_fleet
def run_fleet(*args, **kwargs):
    print("fleet, collector on:", gc.isenabled(), flush=True)
    return deploy_fleet(*args, **kwargs)
fleet.run_fleet = run_fleet
inner = app.main
app.main = lambda argv=None: print("command, collector on:", gc.isenabled(), flush=True) or inner(argv)
app.run(sys.argv[2:])
"""


@pytest.mark.parametrize("command", ["version", "deploy", "serve", "fleet"])
def test_the_entry_point_runs_one_deploy_without_the_cyclic_collector(command, pg, fresh_db, tmp_path):
    """Off for the one command of the process; back on for `serve` (runs for hours) and a fleet
    deploy (many deploys in one process)."""
    project = write_project(tmp_path / "p", {}, deploy_sql="CREATE TABLE from_deploy (id int);\n")
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  - name: one\n    connection: {{database: {fresh_db}}}\n")
    argv = {"version": ["version"], "serve": ["serve"],
            "deploy": ["deploy", str(project), "-d", fresh_db, "--timeout", "0"],
            "fleet": ["deploy", str(project), "--targets", str(targets), "--timeout", "0"]}[command]
    done = subprocess.run([sys.executable, "-c", GC_PROBE, str(REPO), *argv], stdin=subprocess.DEVNULL, env=_env(pg),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "collector on" in line]
    assert said[0] == "command, collector on: False"
    assert said[1:] == {"serve": ["serve, collector on: True"], "fleet": ["fleet, collector on: True"]}.get(command, [])
    if command in ("deploy", "fleet"):
        assert query(pg, fresh_db, "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


def _cyclic_garbage_of_a_deploy(db: str, root: Path, size: int, *, tests: bool = False, fail: bool = False) -> int:
    """Deploy a project of `size` files and statements (and tests, and a failing last statement)
    with the collector off, then count the unreachable objects the collector finds."""
    import gc

    from pgmilib.cli import main

    files = {f"schema/{i:04}.sql": f"-- file {i}\nCREATE TABLE IF NOT EXISTS t{i} (id int);\n" for i in range(size)}
    if tests:
        files.update({f"__test__/test_{i:04}.sql": f"SELECT {i};\n" for i in range(size)})
    statements = "".join(f"SELECT {i};\n" for i in range(size))
    tail = ("CALL pgmi_test();\n" if tests else "") + "COMMIT;\n" + ("SELECT 1/0;\n" if fail else "")
    project = write_project(root, files, deploy_sql=f"BEGIN;\nCREATE TABLE IF NOT EXISTS gc_marker (n int);\n"
                                                    f"INSERT INTO gc_marker VALUES ({size});\n{statements}{tail}")
    gc.collect()
    gc.disable()
    try:
        assert main(["deploy", str(project), "-d", db, "--timeout", "0"]) == (13 if fail else 0)
        return gc.collect()
    finally:
        gc.enable()


def test_what_a_deploy_leaves_the_collector_does_not_grow_with_its_work(pg, fresh_db, tmp_path, monkeypatch, capsys):
    """The premise of running without the collector: a deploy's files and statements leave it a
    constant few hundred objects (argparse's parser, the connection's handlers); a failure or a
    test run leaves at most the project's own graph, which the process then ends with."""
    from pgmilib.observe import watch

    monkeypatch.setenv("PGMI_CACHE_DIR", "off")
    for key, value in pg.env().items():
        monkeypatch.setenv(key, value)
    # The live status starts at once in every deploy here, the first included (its thread's imports
    # are first-use costs like the others), and looks once. By default it starts only after a
    # second, which a loaded machine's 800-file deploy may or may not last: its first start then
    # added its imports' cycles to `large` alone (253 against 326 in one CI run).
    start = watch.start
    monkeypatch.setattr(watch, "start", lambda settings, out, conn, pid: start(
        watch.WatchSettings(start_after=0.0, interval=3600.0), out, conn, pid))
    _cyclic_garbage_of_a_deploy(fresh_db, tmp_path / "warm", 5, tests=True, fail=True)  # first-use caches, imports
    small = _cyclic_garbage_of_a_deploy(fresh_db, tmp_path / "small", 10)
    large = _cyclic_garbage_of_a_deploy(fresh_db, tmp_path / "large", 800)
    assert large <= small + 50, (small, large)
    tested = _cyclic_garbage_of_a_deploy(fresh_db, tmp_path / "tested", 400, tests=True, fail=True)
    capsys.readouterr()
    assert tested <= small + 12 * 400, (small, tested)  # some objects per file and test, once
    assert query(pg, fresh_db, "SELECT n FROM gc_marker ORDER BY n") == [[5], [10], [400], [800]]  # all committed
