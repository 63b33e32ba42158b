"""Fleet deploys: one project, many databases (`pgmi deploy DIR --targets FILE`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pg8000.native
import pytest
from projects import query, write_project

from pgmilib.deploy import ConnectionFlags, DeployRequest
from pgmilib.errors import ConfigError, UsageError
from pgmilib.fleet import (
    FleetCancellation,
    Target,
    load_targets_file,
    parse_shard,
    request_for,
    run_fleet,
    select,
    shard,
)

REPO = Path(__file__).resolve().parent.parent

# Each target records its tenant parameter and when its transaction ran (to check the pool bound).
DEPLOY = """\
BEGIN;
CREATE TABLE marker(tenant text, region text, release text, started timestamptz, finished timestamptz);
INSERT INTO marker(tenant, region, release, started)
SELECT (SELECT value FROM pg_temp.pgmi_parameter_view WHERE key = 'tenant'),
       (SELECT value FROM pg_temp.pgmi_parameter_view WHERE key = 'region'),
       (SELECT value FROM pg_temp.pgmi_parameter_view WHERE key = 'release'),
       clock_timestamp();
SELECT pg_sleep(0.3);
UPDATE marker SET finished = clock_timestamp();
COMMIT;
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def databases(pg):
    """names(n) -> n fresh database names (created by the deploy itself), all dropped afterwards."""
    made: list[str] = []

    def names(n: int) -> list[str]:
        prefix = "fl_" + uuid.uuid4().hex[:8]
        new = [f"{prefix}_{i:02d}" for i in range(1, n + 1)]
        made.extend(new)
        return new

    yield names
    admin = pg8000.native.Connection(**pg.conn_kwargs())
    for name in made:
        admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d", d=name)
        admin.run(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def _exists(pg, db: str) -> bool:
    return query(pg, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == [[1]]


def _targets_file(path: Path, entries: list[str]) -> Path:
    path.write_text("targets:\n" + "".join(entries))
    return path


def test_twenty_databases_parallel_four_with_a_canary_and_one_broken_target(tmp_path, pg, databases, run_pgmi):
    dbs = databases(19)
    proj = write_project(tmp_path / "p", {}, DEPLOY)
    (proj / "pgmi.yaml").write_text("params:\n  region: eu\n  tenant: from-yaml\n")
    host, port = pg.env()["PGHOST"], pg.env()["PGPORT"]
    entries = []
    for i, db in enumerate(dbs, start=1):
        if i % 2:  # a pgmi.yaml-style block
            entries.append(f"  - name: t{i:02d}\n    connection: {{database: {db}}}\n    params: {{tenant: T{i:02d}}}\n")
        else:  # a connection string carrying a (trust-ignored) password that must never be shown
            entries.append(f"  - name: t{i:02d}\n    connection: 'host={host} port={port} dbname={db} "
                           f"password=pw-secret-{i:02d}'\n    params: {{tenant: T{i:02d}}}\n")
    entries.insert(6, f"  - name: broken\n    connection: postgresql://deployer:tok-SECRET-77@127.0.0.1:"
                      f"{_closed_port()}/nowhere\n")
    entries[3] = entries[3].replace("params: {tenant: T04}", "params: {tenant: T04, region: us}")
    targets = _targets_file(tmp_path / "targets.yaml", entries)

    began = time.monotonic()
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--parallel", "4", "--canary", "t01",
                 "--param", "release=r42", "--json", timeout=300)
    elapsed = time.monotonic() - began
    assert r.returncode == 11, r.stderr  # the one failure's exit code: connection failed
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["exitCode"] == 11
    assert doc["summary"] == {**doc["summary"], "total": 20, "succeeded": 19, "failed": 1, "skipped": 0}
    by_name = {t["name"]: t for t in doc["targets"]}
    assert doc["targets"][0]["name"] == "t01"  # the canary first
    assert by_name["broken"]["status"] == "failed" and by_name["broken"]["exitCode"] == 11
    assert "connection refused" in by_name["broken"]["error"]
    assert all(by_name[f"t{i:02d}"]["status"] == "success" for i in range(1, 20))
    assert set(by_name["t05"]) >= {"name", "status", "exitCode", "durationMs", "database"}
    # Human output: one line per target as it finishes, the canary's first, then the table.
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(("✓ [", "✗ ["))]
    assert len(lines) == 20 and lines[0].startswith("✓ [1/20] t01:")
    assert "TARGET" in r.stderr and "19 succeeded, 1 failed" in r.stderr
    # Secrets of every target stay out of all output.
    for text in (r.stdout, r.stderr):
        assert "tok-SECRET-77" not in text and "pw-secret-" not in text
    # Every database got its own parameters; pgmi.yaml < target params < --param.
    rows = {db: query(pg, db, "SELECT tenant, region, release, started, finished FROM marker")[0] for db in dbs}
    assert [rows[db][0] for db in dbs] == [f"T{i:02d}" for i in range(1, 20)]
    assert rows[dbs[3]][1] == "us" and rows[dbs[4]][1] == "eu" and {r[2] for r in rows.values()} == {"r42"}
    # The canary finished before any other target started; never more than 4 ran at once.
    canary_done = rows[dbs[0]][4]
    assert all(rows[db][3] > canary_done for db in dbs[1:])
    events = sorted([(r[3], 1) for r in rows.values()] + [(r[4], -1) for r in rows.values()], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert 2 <= peak <= 4
    assert elapsed < 120


def test_canary_failure_starts_nothing_else(tmp_path, pg, databases, run_pgmi):
    dbs = databases(3)
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE made(id int);\n")
    entries = [f"  - name: c\n    connection: postgresql://x@127.0.0.1:{_closed_port()}/nowhere\n"]
    entries += [f"  - name: n{i}\n    connection: {{database: {db}}}\n" for i, db in enumerate(dbs)]
    targets = _targets_file(tmp_path / "t.yaml", entries)
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--canary", "c", "--json")
    assert r.returncode == 11, r.stderr
    doc = json.loads(r.stdout)
    assert doc["summary"]["failed"] == 1 and doc["summary"]["skipped"] == 3
    assert all(t["status"] == "skipped" and "canary" in t["error"] for t in doc["targets"] if t["name"] != "c")
    assert not any(_exists(pg, db) for db in dbs)  # none was even created


def test_max_failures_stops_starting_new_targets(tmp_path, pg, databases, run_pgmi):
    dbs = databases(2)
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    entries = [f"  - name: bad{i}\n    connection: postgresql://x@127.0.0.1:{_closed_port()}/nowhere\n"
               for i in range(2)]
    entries += [f"  - name: ok{i}\n    connection: {{database: {db}}}\n" for i, db in enumerate(dbs)]
    targets = _targets_file(tmp_path / "t.yaml", entries)
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--parallel", "1", "--max-failures", "2", "--json")
    assert r.returncode == 11
    statuses = {t["name"]: t["status"] for t in json.loads(r.stdout)["targets"]}
    assert statuses == {"bad0": "failed", "bad1": "failed", "ok0": "skipped", "ok1": "skipped"}
    assert "--max-failures 2 reached" in r.stderr


def test_only_and_shard_pick_the_targets(tmp_path, pg, databases, run_pgmi):
    dbs = databases(5)
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    targets = _targets_file(tmp_path / "t.yaml", [f"  - name: s{i}\n    connection: {{database: {db}}}\n"
                                                  for i, db in enumerate(dbs)])
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--shard", "2/2", "--json")
    assert r.returncode == 0, r.stderr
    assert [t["name"] for t in json.loads(r.stdout)["targets"]] == ["s1", "s3"]
    assert [_exists(pg, db) for db in dbs] == [False, True, False, True, False]
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--only", "s0,s4", "--json")
    assert [t["name"] for t in json.loads(r.stdout)["targets"]] == ["s0", "s4"]
    assert [_exists(pg, db) for db in dbs] == [True, True, False, True, True]


def test_pgmi_yaml_targets_list_deploys_a_fleet(tmp_path, pg, databases, run_pgmi):
    dbs = databases(2)
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE from_yaml_list(id int);\n")
    (proj / "pgmi.yaml").write_text("targets:\n" + "".join(f"  - name: y{i}\n    connection:\n      database: {db}\n"
                                                            for i, db in enumerate(dbs)))
    r = run_pgmi("deploy", str(proj))
    assert r.returncode == 0, r.stderr
    assert "2 succeeded" in r.stderr
    assert all(query(pg, db, "SELECT to_regclass('from_yaml_list') IS NOT NULL") == [[True]] for db in dbs)


def test_per_target_test_reports(tmp_path, pg, databases, run_pgmi):
    dbs = databases(2)
    proj = write_project(tmp_path / "p", {"__test__/test_a.sql": "SELECT 1;\n"}, "BEGIN;\nCALL pgmi_test();\nCOMMIT;\n")
    targets = _targets_file(tmp_path / "t.yaml", [f"  - name: r{i}\n    connection: {{database: {db}}}\n"
                                                  for i, db in enumerate(dbs)])
    report = tmp_path / "reports" / "{target}.xml"
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--test-report", f"junit:{report}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "reports" / "r0.xml").is_file() and (tmp_path / "reports" / "r1.xml").is_file()
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--test-report", "junit:one.xml")
    assert r.returncode == 2 and "{target}" in r.stderr


def test_ctrl_c_cancels_running_targets_and_reports_which_completed(tmp_path, pg, databases):
    dbs = databases(6)
    deploy = ("BEGIN;\nCREATE TABLE done(id int);\n"
              "SELECT pg_sleep((SELECT value FROM pg_temp.pgmi_parameter_view WHERE key = 'sleep')::float);\n"
              "COMMIT;\n")
    proj = write_project(tmp_path / "p", {}, deploy)
    sleeps = [0, 0, 60, 60, 0, 0]
    targets = _targets_file(tmp_path / "t.yaml", [
        f"  - name: k{i}\n    connection: {{database: {db}}}\n    params: {{sleep: '{s}'}}\n"
        for i, (db, s) in enumerate(zip(dbs, sleeps))])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(proj), "--targets", str(targets),
                             "--parallel", "2", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until both slow targets are inside pg_sleep
            sleeping = query(pg, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep((%' "
                                             "AND state = 'active' AND pid <> pg_backend_pid()")[0][0]
            if sleeping >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the slow targets never started")
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - began < 15
    assert proc.returncode == 130, stderr
    assert "cancelling the running targets" in stderr and "Traceback" not in stderr
    statuses = {t["name"]: t["status"] for t in json.loads(stdout)["targets"]}
    assert statuses == {"k0": "success", "k1": "success", "k2": "cancelled", "k3": "cancelled",
                        "k4": "skipped", "k5": "skipped"}
    assert "2 succeeded, 0 failed, 2 cancelled, 2 not started" in stderr
    assert query(pg, dbs[2], "SELECT to_regclass('done') IS NULL") == [[True]]  # rolled back
    assert not _exists(pg, dbs[4])


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    ("targets:\n  - name: a\n    connection: {database: x}\n  - name: a\n    connection: {database: y}\n",
     'line 4: duplicate target name "a" (first defined at line 2)'),
    ("targets:\n  - name: a\n    connection: {database: x}\n    colour: red\n", 'line 4: unknown key "colour"'),
    ("targets:\n  - name: a\n    connection: {database: x, password: hunter2}\n", 'unknown key "password"'),
    ("targets:\n  - name: a\n    connection: {host: h}\n", "needs a `database:`"),
    ("targets:\n  - name: a\n", 'target "a" needs a `connection:`'),
    ("targets:\n  - connection: {database: x}\n", "needs a `name:`"),
    ("targets:\n  - name: 'a b'\n    connection: {database: x}\n", "must be 1-63 letters"),
    ("targets: []\n", "empty list"),
    ("targets: {a: 1}\n", "targets must be a list"),
    ("tragets:\n  - name: a\n", 'line 1: unknown key "tragets"'),
    ("targets:\n  - name: a\n    connection: {database: x, port: '5432'}\n", "connection.port must be a number"),
    ("", "the file is empty"),
])
def test_targets_file_is_strict(tmp_path, body, message):
    path = tmp_path / "targets.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path)
    assert message in caught.value.message and str(path) in caught.value.message


@pytest.mark.parametrize("args, code, message", [
    (["--targets", "{targets}", "--shard", "3/2"], 2, "--shard 3/2 is out of range"),
    (["--targets", "{targets}", "--shard", "0/2"], 2, "--shard 0/2 is out of range"),
    (["--targets", "{targets}", "--shard", "x"], 2, "invalid --shard"),
    (["--targets", "{targets}", "--parallel", "0"], 2, "--parallel must be at least 1"),
    (["--targets", "{targets}", "--max-failures", "0"], 2, "--max-failures must be at least 1"),
    (["--targets", "{targets}", "--canary", "nope"], 2, 'unknown target(s) "nope"'),
    (["--targets", "{targets}", "--only", "a,zz"], 2, 'unknown target(s) "zz"'),
    (["--targets", "{targets}", "-d", "x"], 2, "--database cannot be combined with a list of targets"),
    (["--targets", "{dup}"], 10, "duplicate target name"),
    (["--targets", "{missing}"], 10, "no such file"),
    (["-d", "x", "--parallel", "2"], 2, "--parallel needs a list of targets"),
])
def test_bad_fleet_command_lines(tmp_path, run_pgmi, args, code, message):
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    good = _targets_file(tmp_path / "t.yaml", ["  - name: a\n    connection: {database: never_a}\n",
                                               "  - name: b\n    connection: {database: never_b}\n"])
    dup = _targets_file(tmp_path / "d.yaml", ["  - name: a\n    connection: {database: x}\n"] * 2)
    names = {"targets": str(good), "dup": str(dup), "missing": str(tmp_path / "nope.yaml")}
    r = run_pgmi("deploy", str(proj), *[a.format(**names) for a in args])
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3


def test_unreachable_target_is_reported_and_others_still_run(tmp_path, pg, databases):
    """Through the API: a FleetResult with one failed and one succeeded target."""
    (db,) = databases(1)
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE ok(id int);\n")
    base = DeployRequest(project_path=str(proj), environ={"HOME": "/nonexistent", "USER": "t", **pg.env()})
    targets = [Target("down", connection=f"postgresql://u@127.0.0.1:{_closed_port()}/x"),
               Target("up", block={"database": db})]
    seen: list[str] = []
    result = run_fleet(base, targets, parallel=2, on_done=lambda o, done, total: seen.append(o.name))
    assert sorted(seen) == ["down", "up"]
    assert [o.status for o in result.outcomes] == ["failed", "success"]
    assert result.outcomes[0].exit_code == 11 and result.exit_code == 11 and not result.ok
    assert query(pg, db, "SELECT to_regclass('ok') IS NOT NULL") == [[True]]


def test_the_project_is_scanned_once_for_the_whole_fleet(tmp_path, pg, databases, monkeypatch):
    import pgmilib.project.scan as scan_module

    dbs = databases(3)
    proj = write_project(tmp_path / "p", {"a.sql": "SELECT 1;\n"}, "SELECT 1;\n")
    calls: list[str] = []
    real = scan_module.scan
    monkeypatch.setattr(scan_module, "scan", lambda *a, **kw: calls.append("scan") or real(*a, **kw))
    base = DeployRequest(project_path=str(proj), environ={"HOME": "/nonexistent", "USER": "t", **pg.env()})
    result = run_fleet(base, [Target(f"x{i}", block={"database": db}) for i, db in enumerate(dbs)], parallel=3)
    assert result.ok and calls == ["scan"]
    assert all(o.result is not None and o.result.files_loaded == 1 for o in result.outcomes)


def test_a_bad_project_fails_before_any_target(tmp_path, pg, databases):
    from pgmilib.errors import DeploySqlMissing

    (db,) = databases(1)
    base = DeployRequest(project_path=str(tmp_path / "empty"), environ=pg.env())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeploySqlMissing):
        run_fleet(base, [Target("a", block={"database": db})])
    assert not _exists(pg, db)


def test_cancel_before_start_runs_nothing(tmp_path, pg, databases):
    (db,) = databases(1)
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    cancel = FleetCancellation()
    cancel.cancel()
    result = run_fleet(DeployRequest(project_path=str(proj), environ=pg.env()), [Target("a", block={"database": db})],
                       cancel=cancel)
    assert [o.status for o in result.outcomes] == ["skipped"] and result.exit_code == 130


def test_a_targets_log_is_verbose_when_the_caller_says_so(tmp_path, pg, databases):
    """One verbosity source: run_fleet's `verbose` (the CLI passes its Output's mode); the request has none."""
    quiet_db, loud_db = databases(2)
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    base = DeployRequest(project_path=str(proj), environ=pg.env())
    quiet = run_fleet(base, [Target("q", block={"database": quiet_db})])
    loud = run_fleet(base, [Target("l", block={"database": loud_db})], verbose=True)
    assert [o.status for o in quiet.outcomes + loud.outcomes] == ["success", "success"]
    assert "[VERBOSE]" not in quiet.outcomes[0].log and "[VERBOSE]" in loud.outcomes[0].log


# ---- pure pieces --------------------------------------------------------------------------


def test_shards_partition_the_list_deterministically():
    targets = [Target(f"t{i}", block={"database": f"d{i}"}) for i in range(10)]
    parts = [shard(targets, i, 3) for i in (1, 2, 3)]
    assert sorted(t.name for p in parts for t in p) == sorted(t.name for t in targets)  # each exactly once
    assert [len(p) for p in parts] == [4, 3, 3]
    assert parts == [shard(targets, i, 3) for i in (1, 2, 3)]  # same input, same split
    assert [t.name for t in parts[1]] == ["t1", "t4", "t7"]
    assert parse_shard("2/3") == (2, 3) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/3", "4/3", "1/0", "a/b", "1", ""):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_select_puts_the_canary_first_and_checks_it_is_in_the_shard():
    targets = [Target(n, block={"database": n}) for n in "abcd"]
    assert [t.name for t in select(targets, canary="c")] == ["c", "a", "b", "d"]
    assert [t.name for t in select(targets, only=["d", "b"])] == ["b", "d"]
    with pytest.raises(UsageError, match="not in shard 1/2"):
        select(targets, shard_spec=(1, 2), canary="b")


def test_request_for_gives_each_target_its_own_connection_and_params():
    base = DeployRequest(project_path="p", environ={"DATABASE_URL": "postgresql://elsewhere/db", "PGPASSWORD": "x"},
                         params={"cli": "1"}, test_reports=("junit:out/{target}.xml",),
                         connection=ConnectionFlags(aws_region="eu-west-1"))
    block = request_for(base, Target("a", block={"host": "h1", "port": 6000, "database": "da",
                                                 "maintenance_database": "admin", "auth_method": "aws"},
                                     params={"tenant": "A"}))
    assert (block.connection.host, block.connection.port, block.connection.database) == ("h1", 6000, "da")
    assert block.connection.aws and block.connection.aws_region == "eu-west-1"
    assert block.connection.maintenance_database == "admin"
    assert "DATABASE_URL" not in block.environ and block.environ["PGPASSWORD"] == "x"  # never another target's db
    assert block.target_params == {"tenant": "A"} and block.params == {"cli": "1"}
    assert block.test_reports == ("junit:out/a.xml",) and block.approver is None
    string = request_for(base, Target("b", connection="host=h2 dbname=db2"))
    assert string.connection.connection == "host=h2 dbname=db2" and string.connection.host == ""
    assert base.environ["DATABASE_URL"]  # the base request is untouched


def test_targets_in_pgmi_yaml_follow_the_same_rules(tmp_path):
    from pgmilib.config import load_project_config
    from pgmilib.fleet import targets_from_project

    (tmp_path / "pgmi.yaml").write_text("params:\n  a: b\ntargets:\n  - name: x\n    connection: 'dbname=x'\n"
                                        "  - name: x\n    connection: 'dbname=y'\n")
    config = load_project_config(tmp_path)
    with pytest.raises(ConfigError, match=r"pgmi.yaml.*line 6: duplicate target name"):
        targets_from_project(config)




def test_rewriting_pgmi_yaml_keeps_its_targets(tmp_path):
    from pgmilib.config import load_project_config, write_project_config
    from pgmilib.fleet import targets_from_project

    (tmp_path / "pgmi.yaml").write_text("targets:\n  - name: x\n    connection: {database: dx, port: 6000}\n"
                                        "    params: {flag: 'yes'}\n")
    write_project_config(tmp_path, {"host": "h", "database": "app"})
    config = load_project_config(tmp_path)
    assert config.connection["host"] == "h"
    (target,) = targets_from_project(config)
    assert target.block == {"database": "dx", "port": 6000} and target.params == {"flag": "yes"}
