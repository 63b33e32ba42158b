#!/usr/bin/env python3
"""A stand-in for dist/pgmi, used only to check the harness before pgmi can deploy.

    python3 bench/run.py --quick --pgmi bench/fake_pgmi.py --output bench/out/selftest.md

It understands `version` and `deploy <dir> -d DB --host H --port P -U U ...`: it reads the
project (skipping the root deploy.sql and hidden paths), builds a `pg_temp.pgmi_plan_view` with
the columns the benchmark's deploy.sql uses (path, content, checksum, execution_order), COPYs the
files and then runs the project's deploy.sql, all through one `psql` session. It is not pgmi;
its numbers are not reported anywhere. `PGMI_FAKE_FAIL=1` makes deploy fail (harness check).
"""

import hashlib
import os
import subprocess
import sys


def esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def deploy(argv):
    proj = argv[0]
    opts = dict(zip(argv[1::2], argv[2::2]))
    if os.environ.get("PGMI_FAKE_FAIL"):
        print("fake pgmi: deploy failed on purpose (PGMI_FAKE_FAIL)", file=sys.stderr)
        return 1
    rows = []
    for d, dirs, names in os.walk(proj):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for nm in sorted(names):
            rel = os.path.relpath(os.path.join(d, nm), proj).replace(os.sep, "/")
            if nm.startswith(".") or rel.lower() == "deploy.sql":
                continue
            with open(os.path.join(d, nm), encoding="utf-8", newline="") as fh:
                c = fh.read()
            rows.append(f"{esc('./' + rel)}\t{esc(c)}\t{hashlib.sha256(c.encode()).hexdigest()}\n")
    with open(os.path.join(proj, "deploy.sql"), encoding="utf-8") as fh:
        deploy_sql = fh.read()
    script = ("SET client_min_messages = warning;\n"
              "CREATE TEMP TABLE _pgmi_source (path text PRIMARY KEY, content text NOT NULL, checksum text NOT NULL);\n"
              "CREATE TEMP VIEW pgmi_plan_view AS SELECT path, content, checksum, path AS sort_key, "
              "row_number() OVER (ORDER BY path COLLATE \"C\") AS execution_order FROM pg_temp._pgmi_source;\n"
              "COPY _pgmi_source FROM STDIN;\n" + "".join(rows) + "\\.\n" + deploy_sql)
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", opts["-d"], "-h", opts["--host"], "-p", opts["--port"],
           "-U", opts.get("-U", "postgres"), "-f", "-"]
    return subprocess.run(cmd, input=script.encode(), stdout=subprocess.DEVNULL, check=False).returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["version"]:
        print("pgmi 0.0.0-fake (bench harness stand-in)")
        sys.exit(0)
    if sys.argv[1:2] == ["deploy"]:
        sys.exit(deploy(sys.argv[2:]))
    print("usage: fake_pgmi.py version | deploy DIR -d DB --host H --port P", file=sys.stderr)
    sys.exit(2)
