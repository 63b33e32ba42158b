"""Peer tools for the benchmark: find them, install them under bench/work/ when missing, build commands.

Peers (the tools a user would pick instead of pgmi):
  * Sqitch          -- Debian package `sqitch` (apt-get install), runs `psql` once per change
  * yoyo-migrations -- pip, into a venv at bench/work/venv-peers (with psycopg2-binary)
  * dbmate          -- npm package `dbmate`, installed with `npm install --prefix bench/work/npm`;
                       the native Go binary from @dbmate/linux-x64 is called directly (the npm Node
                       wrapper only adds ~125 ms of process start per call)

Every helper returns (path_or_None, reason); a peer that cannot be installed is skipped by the
harness with the reason printed, never silently.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
PEER_VENV = os.path.join(WORK, "venv-peers")
NPM_PREFIX = os.path.join(WORK, "npm")

SQITCH_ENV = {"SQITCH_FULLNAME": "Bench User", "SQITCH_EMAIL": "bench@example.invalid"}


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _run_quiet(cmd: list[str], timeout: int = 600, env: dict | None = None) -> tuple[bool, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    tail = (p.stdout[-600:] + p.stderr[-1200:]).strip()
    return p.returncode == 0, tail


def ensure_sqitch(install: bool = True) -> tuple[str | None, str]:
    path = shutil.which("sqitch")
    if path:
        return path, ""
    if not install:
        return None, "sqitch not on PATH (installation disabled)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "sqitch not on PATH and apt-get install needs root on a Debian/Ubuntu system"
    _log("installing sqitch with apt-get (Debian package 'sqitch') ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ok, tail = _run_quiet(["apt-get", "install", "-y", "-q", "--no-install-recommends", "sqitch"], env=env)
    if not ok:
        _run_quiet(["apt-get", "update", "-q"], env=env)
        ok, tail = _run_quiet(["apt-get", "install", "-y", "-q", "--no-install-recommends", "sqitch"], env=env)
    path = shutil.which("sqitch")
    if not path:
        return None, "apt-get install sqitch failed: " + tail[-300:]
    # Sqitch's pg engine needs DBD::Pg (Debian: libdbd-pg-perl, a Recommends of sqitch).
    ok, _ = _run_quiet(["perl", "-MDBD::Pg", "-e", "1"])
    if not ok:
        ok, tail = _run_quiet(["apt-get", "install", "-y", "-q", "libdbd-pg-perl"], env=env)
        if not ok:
            return None, "libdbd-pg-perl (DBD::Pg, needed by sqitch's pg engine) failed to install: " + tail[-300:]
    return path, ""


def ensure_yoyo(install: bool = True) -> tuple[str | None, str]:
    yoyo = os.path.join(PEER_VENV, "bin", "yoyo")
    if os.access(yoyo, os.X_OK):
        return yoyo, ""
    if not install:
        return None, "yoyo not installed in bench/work/venv-peers (installation disabled)"
    _log("installing yoyo-migrations + psycopg2-binary into bench/work/venv-peers ...")
    py = _base_python()
    ok, tail = _run_quiet([py, "-m", "venv", PEER_VENV])
    if not ok:
        return None, "python3 -m venv failed: " + tail[-300:]
    ok, tail = _run_quiet([os.path.join(PEER_VENV, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                           "yoyo-migrations", "psycopg2-binary"])
    if not ok or not os.access(yoyo, os.X_OK):
        return None, "pip install yoyo-migrations psycopg2-binary failed: " + tail[-300:]
    return yoyo, ""


def ensure_dbmate(install: bool = True) -> tuple[str | None, str]:
    found = _dbmate_native()
    if found:
        return found, ""
    if not install:
        return None, "dbmate not installed in bench/work/npm (installation disabled)"
    if not shutil.which("npm"):
        return None, "npm not found (dbmate is installed from the npm registry)"
    _log("installing dbmate with npm into bench/work/npm ...")
    os.makedirs(NPM_PREFIX, exist_ok=True)
    _, tail = _run_quiet(["npm", "install", "--prefix", NPM_PREFIX, "--no-audit", "--no-fund", "--loglevel=error",
                           "dbmate"])
    found = _dbmate_native()
    if not found:
        return None, "npm install dbmate failed: " + tail[-300:]
    return found, ""


def _dbmate_native() -> str | None:
    for cand in sorted(glob.glob(os.path.join(NPM_PREFIX, "node_modules", "@dbmate", "*", "bin", "dbmate"))):
        if os.access(cand, os.X_OK):
            return cand
    return None


def _base_python() -> str:
    """The real interpreter behind `python3` (not a pyenv shim)."""
    return os.path.realpath(sys.executable)


def versions(paths: dict[str, str]) -> dict[str, str]:
    """Best-effort version strings of the installed peers."""
    out: dict[str, str] = {}
    if paths.get("sqitch"):
        ok, tail = _run_quiet([paths["sqitch"], "--version"], timeout=60)
        out["sqitch"] = tail.splitlines()[-1].strip() if ok and tail else "?"
    if paths.get("yoyo"):
        py = os.path.join(PEER_VENV, "bin", "python")
        code = ("import importlib.metadata as m; print('yoyo-migrations', m.version('yoyo-migrations'), "
                "'/ psycopg2-binary', m.version('psycopg2-binary'))")
        ok, tail = _run_quiet([py, "-c", code])
        out["yoyo"] = tail.strip() if ok else "?"
    if paths.get("dbmate"):
        ok, tail = _run_quiet([paths["dbmate"], "--version"], timeout=60)
        out["dbmate"] = tail.strip() if ok else "?"
    return out


def command(peer: str, exe: str, proj: str, db: str, host: str, port: int) -> tuple[list[str], str | None, dict]:
    """(argv, cwd, extra env) that deploys project `proj` (its peer layout) into database `db` over TCP."""
    if peer == "sqitch":
        return ([exe, "deploy", f"db:pg://postgres@{host}:{port}/{db}"], os.path.join(proj, "sqitch"), dict(SQITCH_ENV))
    if peer == "yoyo":
        return ([exe, "apply", "--batch", "--no-config-file", "--database", f"postgresql://postgres@{host}:{port}/{db}",
                 os.path.join(proj, "yoyo")], None, {})
    if peer == "dbmate":
        return ([exe, "--url", f"postgres://postgres@{host}:{port}/{db}?sslmode=disable", "--migrations-dir",
                 os.path.join(proj, "dbmate", "migrations"), "--no-dump-schema", "up"], None, {})
    raise ValueError(peer)


ENSURE = {"sqitch": ensure_sqitch, "yoyo": ensure_yoyo, "dbmate": ensure_dbmate}

if __name__ == "__main__":  # `python3 bench/peers.py` installs every peer and prints versions
    got = {}
    for name, fn in ENSURE.items():
        path, why = fn()
        print(name, path or f"SKIPPED: {why}")
        if path:
            got[name] = path
    print(versions(got))
