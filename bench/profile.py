#!/usr/bin/env python3
"""Phase profile of one `pgmi deploy`: where the client's time goes, phase by phase.

    python3 bench/profile.py ddl-10000 mixed-1000 [--runs 3] [--cache off|warm]

Each run is a fresh child process (`python3 bench/profile.py --child ...`) that deploys the
generated project (bench/gen.py) into a fresh database of one throwaway cluster. The child
wraps pgmi's phase functions with timers, so the numbers come from inside the real code path:
wall time (`time.perf_counter`) and the client's CPU time (`time.process_time`) per phase.
`imports` is the import of every module a deploy needs, done up front (the CLI does the same
imports lazily during the run); `other` is whatever the phases do not cover (argparse, output,
config resolution). The parent reports the median of each phase over the runs and the wall
time of the whole child process (interpreter start included).

`--cache off` sets PGMI_CACHE_DIR=off, so every normalized checksum is computed (a project's
first deploy); `--cache warm` uses a private cache directory warmed by one untimed run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = time.perf_counter()

# (module, function, phase): the functions the child times, in pipeline order.
PHASES = (
    ("pgmilib.project.scan", "scan", "scan (read, validate, hash, metadata)"),
    ("pgmilib.project.scan", "Scan.__init__", "scan (read, validate, hash, metadata)"),  # streamed: the walk
    ("pgmilib.deploy.session", "stream_sources", "scan + load sources (streamed)"),
    ("pgmilib.conn.connect", "open_connection", "connect"),
    ("pgmilib.deploy.session", "check_server_version", "version check"),
    ("pgmilib.deploy.lock", "acquire", "deploy lock"),
    ("pgmilib.deploy.session", "send_api", "session scripts"),
    ("pgmilib.deploy.session", "adopt_api_ahead", "session scripts"),  # sent behind the login
    ("pgmilib.deploy.pipeline", "_Opened.api_built", "session scripts"),  # what the scan did not hide
    ("pgmilib.deploy.session", "run_scripts", "session scripts"),
    ("pgmilib.deploy.session", "run_script", "session scripts"),
    ("pgmilib.deploy.session", "_match_client_encoding", "session scripts"),
    ("pgmilib.deploy.session", "load_files", "load files (COPY)"),
    ("pgmilib.deploy.session", "load_parameters", "parameters"),
    ("pgmilib.deploy.execute", "run_units", "deploy.sql"),
    ("pgmilib.deploy.lock", "release", "unlock, close"),
)


def child(argv: list[str]) -> None:
    sys.path.insert(0, REPO)
    t0, c0 = time.perf_counter(), time.process_time()
    import importlib

    for module in ("pgmilib.cli", "pgmilib.cli.deploy", "pgmilib.deploy.pipeline", "pgmilib.deploy.session",
                   "pgmilib.deploy.execute", "pgmilib.deploy.lock", "pgmilib.conn.connect", "pgmilib.project.scan",
                   "pgmilib.deploy.testing", "pgmilib.sqllex", "pgmilib.conn.resolve", "pgmilib.deploy.dbadmin"):
        importlib.import_module(module)
    totals: dict[str, list[float]] = {"imports": [time.perf_counter() - t0, time.process_time() - c0]}
    depth = [0]

    def wrap(module: object, name: str, phase: str) -> None:
        owner, _, name = name.rpartition(".")  # "Class.method": a method, wrapped on its class
        if owner:
            module = getattr(module, owner, None)
        inner = getattr(module, name, None)
        if inner is None:  # an older or newer layout: profile what exists
            return

        def timed(*args, **kwargs):
            if depth[0]:
                return inner(*args, **kwargs)
            depth[0] += 1
            w, c = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                slot = totals.setdefault(phase, [0.0, 0.0])
                slot[0] += time.perf_counter() - w
                slot[1] += time.process_time() - c
                depth[0] -= 1

        setattr(module, name, timed)

    for module_name, name, phase in PHASES:
        wrap(sys.modules[module_name], name, phase)
    from pgmilib.cli import main

    w, c = time.perf_counter(), time.process_time()
    code = main(argv)
    run = [time.perf_counter() - w, time.process_time() - c]
    covered = [sum(v[i] for k, v in totals.items() if k != "imports") for i in (0, 1)]
    totals["other"] = [run[0] - covered[0], run[1] - covered[1]]
    totals["in-process total"] = [time.perf_counter() - START, time.process_time()]
    print(json.dumps({"code": code, "phases": totals}), file=sys.__stdout__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("projects", nargs="+", help="workload-size, e.g. ddl-10000 (generated on demand)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", choices=("off", "warm"), default="off")
    parser.add_argument("--variant", default="pgmi", help="pgmi | pgmi-ledger | pgmi-load")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    sys.path.insert(0, os.path.join(REPO, "bench"))
    import gen

    from pgmilib.server.cluster import Cluster

    settings = {"shared_buffers": "256MB", "max_locks_per_transaction": "1024"}
    with Cluster(settings=settings) as cluster, tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, **cluster.env(), PGCLIENTENCODING="UTF8", LC_ALL="C.UTF-8")
        env["PGMI_CACHE_DIR"] = "off" if args.cache == "off" else cache
        seq = 0
        for name in args.projects:
            workload, size = name.rsplit("-", 1)
            meta = gen.generate(workload, int(size))
            project = os.path.join(meta["dir"], args.variant)
            samples: list[dict] = []
            for run in range(args.runs + (1 if args.cache == "warm" else 0)):
                seq += 1
                db = f"prof_{seq}"
                subprocess.run(["psql", "-X", "-q", "-c", f"CREATE DATABASE {db}"], env=env, check=True)
                cmd = [args.python, __file__, "--child", "deploy", project, "-d", db,
                       "--host", cluster.dir, "--port", str(cluster.port), "-U", cluster.user,
                       "--sslmode", "disable", "--timeout", "0"]
                w = time.perf_counter()
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                wall = time.perf_counter() - w
                subprocess.run(["psql", "-X", "-q", "-c", f"DROP DATABASE {db}"], env=env, check=True)
                lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
                if done.returncode != 0 or not lines:
                    print(done.stderr[-2000:], file=sys.stderr)
                    return 1
                if args.cache == "warm" and run == 0:
                    continue
                result = json.loads(lines[-1])["phases"]
                result["process wall (incl. interpreter start)"] = [wall, float("nan")]
                samples.append(result)
            print(f"\n{name} ({meta['bytes'] / 1e6:.1f} MB, {args.variant}, cache {args.cache}, "
                  f"median of {len(samples)})\n")
            print("| phase | wall ms | CPU ms |\n|---|---|---|")
            for phase in samples[0]:
                wall = statistics.median(s[phase][0] for s in samples) * 1000
                cpu = statistics.median(s[phase][1] for s in samples) * 1000
                print(f"| {phase} | {wall:.0f} | {'' if math.isnan(cpu) else f'{cpu:.0f}'} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        sys.exit(main())
