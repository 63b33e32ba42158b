"""Run pgmi with `-v` and time it from its first stderr line, where its own `--timeout` clock starts.

Interpreter start-up and imports take a second or three on a loaded machine and are not part
of what `--timeout` promises; the fault trials count from the same line (test_rel_faults.py).
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

from harness import pgmi_cmd


@dataclass
class TimedRun:
    rc: int
    stdout: str
    stderr: str
    elapsed: float  # seconds from the first stderr line to the exit
    hung: bool  # killed after `kill_after` seconds


def run_timed(args: list[str], env: dict[str, str], kill_after: float) -> TimedRun:
    """Run `pgmi <args>` (add `-v` to args); kill it after `kill_after` seconds."""
    proc = subprocess.Popen(pgmi_cmd(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first: list[float] = []
    out: list[str] = []
    err: list[str] = []

    def drain(stream, sink: list[str]) -> None:
        for line in stream:
            if sink is err and not first:
                first.append(time.monotonic())
            sink.append(line)

    readers = [threading.Thread(target=drain, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, err), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=kill_after)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        hung = True
    ended = time.monotonic()
    for reader in readers:
        reader.join(10)
    return TimedRun(proc.returncode, "".join(out), "".join(err), ended - (first[0] if first else ended), hung)
