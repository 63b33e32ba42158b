#!/usr/bin/env python3
"""The whole suite on every supported CPython interpreter of this machine (`make test-pythons`).

Interpreters: PGMI_PYTHONS (paths, space-separated) when set; otherwise every version `pyenv` has
(its root from `pyenv root`, else ~/.pyenv) and the distribution's own /usr/bin/python3, one per
exact version. Those below pgmilib/python_floor.py's MINIMUM are listed and left out: the suite
checks that they get one line and exit 1 (tests/test_build.py, tests/test_portability.py).

Each interpreter gets its own virtual environment `.venv-<version>`, made (once, and again when
requirements*.txt change) by the Makefile's own `venv` rule from the pinned requirements, whose
environment markers pick the test tools' releases that install on that interpreter. The suite runs
against the system PostgreSQL on each; the oldest and the newest also against the embedded
PostgreSQL 18. A failing run does not stop the others.

PGMI_PYTHONS_JOBS=N (default 1) works on N interpreters at a time; each run's output then goes to
build/pythons/<version>-<server>.log and is shown whole when the run failed. At the end: a table of
the runs (wall time, pytest's closing line) and the tests of all runs added up; exit 1 when any run
failed or no interpreter was found.

Usage: python3 pythons.py [pytest arguments]   (default: -q tests; e.g. tests/test_sqllex.py)
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from pgmilib.python_floor import MINIMUM, check  # after the path set-up above

CLOSING = re.compile(r"^=*\s*((\d+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)"
                     r"(, )?)+ in [\d.]+s.*|no tests ran.*)$")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped)")
LOGS = REPO / "build" / "pythons"
_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def candidates() -> list[str]:
    """Interpreter paths to consider, in the order given or found."""
    given = os.environ.get("PGMI_PYTHONS", "").split()
    if given:
        return given
    root = ""
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        root = found.stdout.strip() if found.returncode == 0 else ""
    root = root or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")))
    return [*found, "/usr/bin/python3"]


def probe(python: str) -> tuple[int, ...] | None:
    """The interpreter's exact version, or None when it cannot run."""
    try:
        result = subprocess.run([python, "-S", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return tuple(int(part) for part in result.stdout.split("."))


def interpreters() -> list[tuple[tuple[int, ...], str]]:
    """(version, path) of each supported interpreter, oldest first, one per exact version."""
    chosen: dict[tuple[int, ...], str] = {}
    for python in candidates():
        version = probe(python)
        label = ".".join(map(str, version)) if version else "cannot run"
        if version is None or version[:2] < MINIMUM:
            say(f"pythons.py: {python} ({label}): below the supported range, not run")
            continue
        chosen.setdefault(version, python)
    return sorted(chosen.items())


class Matrix:
    """The runs of one `make test-pythons`, shared by the worker threads."""

    def __init__(self, pytest_args: list[str], jobs: int) -> None:
        self.args = pytest_args or ["-q", "tests"]
        self.jobs = jobs
        self.make = os.environ.get("MAKE", "make")
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PGMI_PG_SOURCE")}
        self.rows: list[tuple[str, str, str, float, str]] = []
        self.counts: dict[str, int] = {}

    def _run(self, argv: list[str], env: dict[str, str], log: Path) -> tuple[int, str, float]:
        """Run a command; its output passed through (one job) or into `log` (several)."""
        started = time.monotonic()
        closing = ""
        with open(log, "w", encoding="utf-8") as sink, subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace") as process:
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                if self.jobs == 1:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                if CLOSING.match(line.strip()):
                    closing = line.strip().strip("= ")
        if process.returncode != 0 and self.jobs > 1:
            say(f"--- {log.name}\n{log.read_text(encoding='utf-8', errors='replace')}--- end of {log.name}")
        return process.returncode, closing, time.monotonic() - started

    def interpreter(self, version: tuple[int, ...], python: str, servers: list[str]) -> None:
        label = ".".join(map(str, version))
        venv = f".venv-{label}"
        say(f"=== {label} ({python}): {venv}")
        status, _, seconds = self._run([self.make, "--no-print-directory", "venv", f"VENV={venv}",
                                        f"PYTHON={python}"], self.env, LOGS / f"{label}-venv.log")
        if status != 0:
            self.rows.append((label, python, "venv", seconds, f"FAILED: make venv (exit {status})"))
            return
        for server in servers:
            say(f"=== {label} ({python}), PostgreSQL: {server}")
            status, closing, seconds = self._run([f"{venv}/bin/python", "-u", "-m", "pytest", *self.args],  # -u: progress as it happens
                                                 {**self.env, "PGMI_PG_SOURCE": server},
                                                 LOGS / f"{label}-{server}.log")
            verdict = "ok" if status == 0 else f"FAILED (exit {status})"
            say(f"=== {label}, {server}: {verdict}: {closing or 'no closing line'} ({seconds:.0f} s)")
            with _print_lock:
                self.rows.append((label, python, server, seconds, f"{verdict}: {closing or 'no closing line'}"))
                for number, word in COUNT.findall(closing):
                    key = "failed" if word.startswith("error") else word  # errors count as failures
                    self.counts[key] = self.counts.get(key, 0) + int(number)


def main(pytest_args: list[str]) -> int:
    check("run make with a newer one, e.g. make PYTHON=python3.11 test-pythons")
    found = interpreters()
    if not found:
        say("pythons.py: no supported interpreter found (set PGMI_PYTHONS to their paths)")
        return 1
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        jobs = max(1, int(os.environ.get("PGMI_PYTHONS_JOBS") or 1))
    except ValueError:
        say("pythons.py: PGMI_PYTHONS_JOBS must be a whole number")
        return 1
    matrix = Matrix(pytest_args, jobs)
    started = time.monotonic()
    plans = [(version, python, ["system", "embedded"] if i in (0, len(found) - 1) else ["system"])
             for i, (version, python) in enumerate(found)]
    plans.sort(key=lambda plan: -len(plan[2]))  # the two-run interpreters first: shorter tail
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(matrix.interpreter, *plan) for plan in plans]:
            future.result()
    say(f"\npythons.py: the suite per interpreter and server, {jobs} at a time (wall time; "
        f"{time.monotonic() - started:.0f} s in all, venvs included)")
    for label, python, server, seconds, result in sorted(matrix.rows, key=lambda r: tuple(map(int, r[0].split(".")))):
        say(f"  {label:<8} {python:<42} {server:<8} {seconds:6.0f} s  {result}")
    failed = [row for row in matrix.rows if not row[4].startswith("ok")]
    totals = ", ".join(f"{matrix.counts.get(k, 0)} {k}" for k in ("passed", "failed", "skipped"))
    say(f"pythons: {totals}")  # all runs added up, in pytest's words
    say(f"pythons.py: {len(matrix.rows) - len(failed)} of {len(matrix.rows)} runs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
