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
PostgreSQL 18. A failing run does not stop the others. Prints the runs' durations and pytest's
closing lines in a table; exit 1 when any run failed or no interpreter was found.

Usage: python3 pythons.py [pytest arguments]   (default: -q tests; e.g. tests/test_sqllex.py)
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from pgmilib.python_floor import MINIMUM, check  # after the path set-up above

SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|error|skipped|deselected)|no tests ran).*$")


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
            print(f"pythons.py: {python} ({label}): below the supported range, not run", flush=True)
            continue
        chosen.setdefault(version, python)
    return sorted(chosen.items())


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run pytest, its output passed through; (exit status, closing line, seconds)."""
    started = time.monotonic()
    closing = ""
    with subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if SUMMARY.match(line.strip()):
                closing = line.strip().strip("= ")
    return process.returncode, closing, time.monotonic() - started


def main(pytest_args: list[str]) -> int:
    check("run make with a newer one, e.g. make PYTHON=python3.11 test-pythons")
    found = interpreters()
    if not found:
        print("pythons.py: no supported interpreter found (set PGMI_PYTHONS to their paths)", file=sys.stderr)
        return 1
    args = pytest_args or ["-q", "tests"]
    make = os.environ.get("MAKE", "make")
    base = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PGMI_PG_SOURCE")}
    rows: list[tuple[str, str, str, float, str]] = []
    for index, (version, python) in enumerate(found):
        label = ".".join(map(str, version))
        venv = f".venv-{label}"
        print(f"\n=== {label} ({python}): {venv}", flush=True)
        started = time.monotonic()
        made = subprocess.run([make, "--no-print-directory", "venv", f"VENV={venv}", f"PYTHON={python}"],
                              cwd=REPO, env=base, check=False)
        setup = time.monotonic() - started
        if made.returncode != 0:
            rows.append((label, python, "venv", setup, f"make venv failed (exit {made.returncode})"))
            continue
        servers = ["system", "embedded"] if index in (0, len(found) - 1) else ["system"]
        for server in servers:
            print(f"\n=== {label} ({python}), PostgreSQL: {server}", flush=True)
            status, closing, seconds = run([f"{venv}/bin/python", "-m", "pytest", *args],
                                           {**base, "PGMI_PG_SOURCE": server})
            verdict = "ok" if status == 0 else f"FAILED (exit {status})"
            rows.append((label, python, server, seconds, f"{verdict}: {closing or 'no closing line'}"))
    print("\npythons.py: the suite per interpreter and server (wall time; venv set-up not included)")
    for label, python, server, seconds, result in rows:
        print(f"  {label:<8} {python:<45} {server:<8} {seconds:7.0f} s  {result}")
    failed = [row for row in rows if not row[4].startswith("ok")]
    print(f"pythons.py: {len(rows) - len(failed)} of {len(rows)} runs passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
