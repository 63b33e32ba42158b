#!/usr/bin/env python3
"""Phase profile of the empty deploy: where a deploy of `SELECT 1;` into an existing database spends
its time, from `exec` of the interpreter to the exit status, against `psql -c 'SELECT 1'`.

    python3 bench/empty.py [--runs 15] [--pgmi dist/pgmi] [--python PY]

One throwaway cluster (or the server of PGHOST/PGPORT/PGUSER with --use-env), one database, an
empty project whose deploy.sql is `SELECT 1;`. Each run is a fresh process of the interpreter
`dist/pgmi` runs on (`PY -S -c CHILD`, which imports this module, the zipapp's extracted site-packages first
on sys.path, the same entry point as the zipapp's launcher), with timers inside the real code path:

  interpreter start   from the parent's fork to the child's first line (exec, `-S` start-up)
  imports             every import the run does, wherever it happens (exclusive: not in the phases)
  connect + auth      early.start and open_connection: socket, start-up packet, authentication, ParameterStatus
  version check, deploy lock, session API (the sql/ scripts), load (COPY), parameters,
  deploy.sql, unlock + close: pgmi's own phase functions, imports done inside them excluded
  other               the rest of main(): argparse, configuration, output, the scan of the project
  exit                from main()'s return to the parent seeing the exit status: flushing, and the
                      interpreter's finalization when the entry point does not skip it

The parent also times, interleaved with the profiled runs, the whole `dist/pgmi deploy` process (as
users run it: the sh launcher), `python -S -c pass` and `psql -X -c 'SELECT 1'` (the real binary),
and prints medians and the ratio against psql. `bench/run.py` imports `profile_empty()`.
"""

from __future__ import annotations

# Only what the interpreter has loaded anyway: the profiled child imports this module first.
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# The two commands compared, by the names the report's whole-process table prints.
PSQL = "psql -X -c 'SELECT 1'"
PGMI = "pgmi deploy (SELECT 1;)"

# (module, function, phase), in pipeline order.
PHASES = (
    ("pgmilib.conn.early", "start", "connect + auth"),  # the start-up packet sent before the driver's import
    ("pgmilib.conn.connect", "open_connection", "connect + auth"),
    ("pgmilib.deploy.session", "check_server_version", "version check"),
    ("pgmilib.deploy.lock", "acquire", "deploy lock"),
    ("pgmilib.deploy.session", "send_api", "session API (sql/ scripts)"),
    ("pgmilib.deploy.session", "adopt_api_ahead", "session API (sql/ scripts)"),  # sent behind the login
    ("pgmilib.deploy.pipeline", "_Opened.api_built", "session API (sql/ scripts)"),  # what the scan did not hide
    ("pgmilib.deploy.session", "run_scripts", "session API (sql/ scripts)"),
    ("pgmilib.deploy.session", "run_script", "session API (sql/ scripts)"),
    ("pgmilib.deploy.session", "_match_client_encoding", "session API (sql/ scripts)"),
    ("pgmilib.deploy.session", "load_files", "load files (COPY)"),
    ("pgmilib.deploy.session", "stream_sources", "load files (COPY)"),  # a project with files, streamed
    ("pgmilib.deploy.session", "load_parameters", "parameters"),
    ("pgmilib.deploy.execute", "run_units", "deploy.sql"),
    ("pgmilib.deploy.lock", "release", "unlock + close"),
)
ORDER = ("interpreter start", "imports", "other (argparse, config, scan, output)", "connect + auth",
         "version check", "deploy lock", "session API (sql/ scripts)", "load files (COPY)", "parameters",
         "deploy.sql", "unlock + close", "exit (flush, finalization)")


# ------------------------------------------------------------------------------------------ child
# The child imports this module (its .pyc is cached in bench/__pycache__), not runs it as a script,
# which would compile it on every run.
CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import empty; del sys.path[0]; empty.child(sys.argv[2], sys.argv[3], sys.argv[4:])"


def child(stamps_path: str, site: str, argv: list[str]) -> None:
    """Run `pgmi <argv>` in this process with phase timers; write the stamps before the exit."""
    started = time.time()
    import builtins
    import importlib
    import json

    sys.path.insert(0, site)
    clock = time.perf_counter
    totals: dict[str, float] = {}
    depth = [0]  # import nesting: only the outermost import is timed
    imported = [0.0]  # import time so far, to take out of the phase that triggered it

    def timed_import(original):
        def run(*args, **kwargs):
            if depth[0]:
                return original(*args, **kwargs)
            depth[0] += 1
            t = clock()
            try:
                return original(*args, **kwargs)
            finally:
                imported[0] += clock() - t
                depth[0] -= 1
        return run

    builtins.__import__ = timed_import(builtins.__import__)
    importlib.import_module = timed_import(importlib.import_module)
    active = [0]

    def wrap(module: object, name: str, phase: str) -> None:
        owner, _, name = name.rpartition(".")  # "Class.method": a method, wrapped on its class
        if owner:
            module = getattr(module, owner, None)
        inner = getattr(module, name, None)
        if inner is None:  # another layout: profile what exists
            return

        def timed(*args, **kwargs):
            if active[0]:
                return inner(*args, **kwargs)
            active[0] += 1
            t, i = clock(), imported[0]
            try:
                return inner(*args, **kwargs)
            finally:
                totals[phase] = totals.get(phase, 0.0) + (clock() - t) - (imported[0] - i)
                active[0] -= 1

        setattr(module, name, timed)

    t0 = clock()
    from pgmilib.cli import app

    for module_name, name, phase in PHASES:  # imported here, outside the timed run: see the stamps below
        module = importlib.import_module(module_name)
        wrap(module, name, phase)
    setup_imports = imported[0]
    inner_main = app.main

    def main(args=None):
        t = clock()
        code = inner_main(args)
        ran = clock() - t
        stamps = {"start": started, "main_end": time.time(), "code": code,
                  "imports": imported[0], "phases": totals,
                  "other": ran - (imported[0] - setup_imports) - sum(totals.values()),
                  "harness": clock() - t0 - ran - setup_imports}
        with open(stamps_path, "w", encoding="utf-8") as fh:
            json.dump(stamps, fh)
        return code

    app.main = main
    entry = getattr(app, "run", None)  # the CLI entry point (flushes and ends the process), if any
    if entry is not None:
        entry(argv)
    sys.exit(main(argv))


# ------------------------------------------------------------------------------------------ parent
def _site_packages(pgmi: str, py: str, work: str) -> str:
    """The extracted site-packages of this very zipapp build (extracted once under `work`), else the checkout."""
    import json
    import subprocess
    import zipfile

    if not os.path.isfile(pgmi):
        return REPO
    root = os.path.join(work, "shiv")
    subprocess.run([py, "-S", pgmi, "version"], env=dict(os.environ, SHIV_ROOT=root), capture_output=True,
                   check=True)
    with zipfile.ZipFile(pgmi) as archive:  # shiv's directory name: <name>_<build id>, as the launcher finds it
        build_id = json.loads(archive.read("environment.json"))["build_id"]
    name = os.path.splitext(os.path.basename(os.path.realpath(pgmi)))[0]
    site = os.path.join(root, f"{name}_{build_id}", "site-packages")
    if not os.path.isdir(site):
        raise RuntimeError(f"{pgmi} did not extract to {site}")
    return site


def _wall(argv: list[str], env: dict) -> tuple[float, float, int]:
    """Wall and CPU seconds of one child process, and its exit status."""
    import subprocess

    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)


def profile_empty(env: dict, *, pgmi: str, py: str, psql: str, runs: int, work: str) -> dict:
    """Profile the empty deploy against the server of `env` (PGHOST, PGPORT, PGUSER): medians in ms."""
    import json
    import shutil
    import statistics
    import subprocess
    import tempfile

    os.makedirs(work, exist_ok=True)
    env = dict(env, SHIV_ROOT=os.path.join(work, "shiv"), PGMI_PYTHON=py, PGMI_CACHE_DIR="off")
    site = _site_packages(pgmi, py, work)
    db = "pgmi_empty_profile"
    subprocess.run([psql, "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {db}",
                    "-c", f"CREATE DATABASE {db}"], env=env, check=True, capture_output=True)
    scratch = tempfile.mkdtemp(prefix="empty-", dir=work)  # removed at the end
    project = os.path.join(scratch, "project")
    os.mkdir(project)
    with open(os.path.join(project, "deploy.sql"), "w", encoding="utf-8") as fh:
        fh.write("SELECT 1;\n")
    deploy_args = ["deploy", project, "-d", db, "--timeout", "0"]
    # Beside the project, not in it: a file in the project would be loaded (a COPY and an ANALYZE
    # the empty deploy does not have; it was, before 2026-12-05). The child's stderr is checked.
    stamps_path = os.path.join(scratch, "stamps.json")
    err_path = os.path.join(scratch, "stderr")
    samples: dict[str, list[float]] = {}
    whole: dict[str, list[float]] = {}

    def add(store, key, value):
        store.setdefault(key, []).append(value * 1000)

    commands = {"python -S -c pass": [py, "-S", "-c", "pass"],
                PSQL: [psql, "-X", "-d", db, "-c", "SELECT 1"]}
    if os.path.isfile(pgmi):
        commands[PGMI] = [pgmi] + deploy_args
    try:
        for run in range(runs + 1):  # the first round warms the page cache and is not counted
            for name, argv in commands.items():
                wall, cpu, code = _wall(argv, env)
                if code != 0:
                    raise RuntimeError(f"{name} exited {code}")
                if run:
                    add(whole, name + ", wall", wall)
                    add(whole, name + ", CPU", cpu)
            with open(err_path, "w+b") as err:  # a file, not a pipe: nothing in the parent between exit and wait
                t = time.time()
                p = subprocess.Popen([py, "-S", "-c", CHILD, HERE, stamps_path, site] + deploy_args,
                                     env=env, stdout=subprocess.DEVNULL, stderr=err)
                _, status, _ = os.wait4(p.pid, 0)
                end = time.time()
                err.seek(0)
                said = err.read()
                if os.waitstatus_to_exitcode(status) != 0:
                    raise RuntimeError(f"profiled deploy exited {status}: {said[-400:]!r}")
                if b"Loaded 0 files" not in said:
                    raise RuntimeError(f"the profiled project is not empty: {said[-400:]!r}")
            with open(stamps_path, encoding="utf-8") as fh:
                s = json.load(fh)
            if not run:
                continue
            add(samples, "interpreter start", s["start"] - t)
            add(samples, "imports", s["imports"])
            add(samples, "other (argparse, config, scan, output)", s["other"])
            for phase, value in s["phases"].items():
                add(samples, phase, value)
            add(samples, "exit (flush, finalization)", end - s["main_end"])
            add(samples, "total (profiled process)", end - t)
    finally:
        subprocess.run([psql, "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {db}"], env=env,
                       check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    phases = [(k, med[k]) for k in ORDER if k in med]
    total = {k: statistics.median(v) for k, v in whole.items()}
    ratio, excess = versus_psql(total)
    return {"runs": runs, "site": site, "phases": phases, "profiled_total_ms": med.get("total (profiled process)"),
            "whole": total, "ratio_vs_psql": ratio, "excess_ms": excess}


def versus_psql(whole_ms: dict[str, float]) -> tuple[float | None, float | None]:
    """pgmi's empty deploy against psql's, from the whole-process wall medians (ms): (ratio, excess ms).

    Both are None unless both commands were measured. The excess is what bench/run.py's
    `fixed_cost_bound` adds to a small shape's floor."""
    psql, pgmi = whole_ms.get(PSQL + ", wall"), whole_ms.get(PGMI + ", wall")
    if not (psql and pgmi):
        return None, None
    return pgmi / psql, pgmi - psql


def render(result: dict) -> str:
    lines = [f"Empty deploy (`SELECT 1;` into an existing database), median of {result['runs']} runs, ms:", "",
             "| phase | ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in result["phases"]]
    if result["profiled_total_ms"] is not None:
        lines.append(f"| **total, profiled process** | {result['profiled_total_ms']:.1f} |")
    lines += ["", "| whole process | median ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in result["whole"].items()]
    if result["ratio_vs_psql"] is not None:
        lines += ["", f"pgmi empty deploy / psql -c 'SELECT 1' (wall): **{result['ratio_vs_psql']:.2f}x**"]
    return "\n".join(lines)


def main() -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pgmi", default=os.path.join(REPO, "dist", "pgmi"))
    parser.add_argument("--python", default=os.path.realpath(sys.executable),
                        help="the interpreter dist/pgmi runs on (default: this one, resolved)")
    parser.add_argument("--use-env", action="store_true", help="use the server of PGHOST/PGPORT/PGUSER")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = os.path.join(HERE, "work", "empty")
    if args.use_env:
        env = dict(os.environ)
        psql = os.path.join(os.environ.get("PGMI_PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
        result = profile_empty(env, pgmi=args.pgmi, py=args.python, psql=psql, runs=args.runs, work=work)
    else:
        sys.path.insert(0, REPO)
        from pgmilib.server.cluster import Cluster

        with Cluster(settings={"shared_buffers": "256MB"}) as cluster:
            env = dict(os.environ, **cluster.env(), PGCLIENTENCODING="UTF8", LC_ALL="C.UTF-8")
            for key in ("PGSERVICE", "PGDATABASE", "PGPASSWORD", "PGOPTIONS"):
                env.pop(key, None)
            result = profile_empty(env, pgmi=args.pgmi, py=args.python, psql=os.path.join(cluster.pg_bin, "psql"),
                                   runs=args.runs, work=work)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
