"""`pgmi ... | head -1`: a reader that goes away ends pgmi quietly, like any Unix tool.

Through a real pipe whose reader closes after one line, with more output than the pipe's
buffer holds (so the write really fails): no traceback, no "this is a bug", exit 141 (the
status of a tool killed by SIGPIPE); nothing on stderr but pgmi's ordinary progress.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from projects import write_project

REPO = Path(__file__).resolve().parent.parent


def test_metadata_plan_into_a_closed_pipe(tmp_path):
    files = {"deploy.sql": "SELECT 1;\n"}
    files.update({f"schema/{n:05d}_a_rather_long_file_name_for_the_plan.sql": "SELECT 1;\n" for n in range(3000)})
    project = write_project(tmp_path / "p", files)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "metadata", "plan", str(project)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # `head -1` has what it wanted
        stderr = proc.stderr.read().decode()
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first
    assert code == 141, stderr
    assert "Traceback" not in stderr and "this is a bug" not in stderr and "Broken pipe" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
