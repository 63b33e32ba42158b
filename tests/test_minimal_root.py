"""dist/pgmi inside a minimal root file system that holds a distribution's python3 and the file.

The air-gapped server and the minimal CI image, without docker: the file is copied into a chroot
and deploys to a throwaway server over TCP (a chroot shares the network, not the file system: no
unix socket, no host Python packages, no checkout inside). Two roots (docs/PORTABILITY.md):

- python-only: the host distribution's own /usr/bin/python3, its standard library and the shared
  libraries those load, and nothing else: no shell, no coreutils, no /etc/passwd (as distroless).
  Made from hard links in about a second, so it is part of `make test`. The file runs as
  `python3 /pgmi`, as it must where there is no /bin/sh.
- debootstrap: `debootstrap --variant=minbase --include=python3 bookworm`, a real Debian base
  with its python3. Building it takes minutes and Debian's mirror, so `make test-minimal-root`
  builds it once into PGMI_MINIMAL_ROOT_CACHE (default /var/cache/pgmi-test), outside the
  checkout, and runs this file; later runs, `make test` included, reuse it. The file runs
  through its /bin/sh launcher there. Until it is built that test is skipped with this reason.

chroot needs root: as another user both are skipped with that reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgmilib.python_floor import MINIMUM
from pgmilib.server.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PGMI_MINIMAL_ROOT_CACHE") or "/var/cache/pgmi-test")
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("PGMI_DEBIAN_MIRROR") or "http://deb.debian.org/debian"
DEPLOY_SQL = """BEGIN;
CREATE TABLE "from;root" (id int, how text);
INSERT INTO "from;root" VALUES (1, E'deployed over TCP from a chroot;\\n');
COMMIT;
INSERT INTO "from;root" VALUES (2, 'a unit after COMMIT');
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root (these tests run as root in CI)")


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("minimal-root-build") / "pgmi"
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "-o", str(output)], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope="module")
def tcp_server():
    """A throwaway server on 127.0.0.1 (trust), the only way into it from a chroot."""
    with Cluster(listen_tcp=True) as cluster:
        yield cluster


# ---- the python-only root ------------------------------------------------------------------


def _place(source: str, root: Path) -> None:
    """Put `source` at the same path under `root`: a hard link when possible, else a copy."""
    target = root / source.lstrip("/")
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(os.path.realpath(source), target)
    except OSError:
        shutil.copy2(os.path.realpath(source), target)


_LDD_PATH = re.compile(r"(/\S+) \(0x")


def _shared_libraries(binaries: list[str]) -> set[str]:
    """Every library (and the loader) `ldd` names for these binaries, and libgcc_s, which glibc
    loads by itself when a thread exits (every distribution's base has it; without it a deploy's
    reader threads ended in "libgcc_s.so.1 must be installed for pthread_exit to work")."""
    found: set[str] = set()
    for binary in binaries:
        listed = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
        found.update(_LDD_PATH.findall(listed))
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    found.update(re.findall(r"^\s*libgcc_s\.so\.1 \([^)]*\) => (\S+)$", cache, flags=re.MULTILINE)[:1])
    return found


def _python_only_root(base: Path, python: str) -> Path:
    info = subprocess.run([python, "-S", "-c", ("import sys, sysconfig; print(sys.executable); "
                           "print(sysconfig.get_paths()['stdlib']); print(sysconfig.get_config_var('DESTSHARED'))")],
                          capture_output=True, text=True, check=True).stdout.split()
    executable, stdlib, dynload = (os.path.realpath(p) for p in info)
    root = base / "python-only"
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip"}
    for directory, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            _place(os.path.join(directory, name), root)
    _place(executable, root)
    (root / "usr/bin/python3").symlink_to(os.path.basename(executable))
    modules = [os.path.join(directory, name) for directory, _, files in os.walk(dynload) for name in files]
    for library in _shared_libraries([executable, *modules]):
        _place(library, root)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    return root


def _host_python() -> str | None:
    """The distribution's own python3, when it is a supported version."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK) or shutil.which("ldd") is None:
        return None
    version = subprocess.run([python, "-S", "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                             capture_output=True, text=True, check=False).stdout.split()
    return python if len(version) == 2 and tuple(map(int, version)) >= MINIMUM else None


# ---- the debootstrap root ------------------------------------------------------------------


def debootstrap_root() -> Path:
    """The cached minbase root; built now when PGMI_MINIMAL_ROOT_BUILD=1 (make test-minimal-root)."""
    root = CACHE / f"{DEBIAN_SUITE}-minbase-python3"
    if (root / "usr/bin/python3").exists():
        return root
    if os.environ.get("PGMI_MINIMAL_ROOT_BUILD") != "1":
        pytest.skip(f"no debootstrap root at {root} yet: `make test-minimal-root` builds it once (~3 min, "
                    f"Debian's mirror); the python-only root above runs in every `make test`")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    staging = CACHE / f"{root.name}.tmp-{os.getpid()}"
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        made = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", DEBIAN_SUITE, str(staging),
                               DEBIAN_MIRROR], capture_output=True, text=True, timeout=1800, check=False)
        if made.returncode != 0:
            tail = " ".join((made.stdout + made.stderr).strip().splitlines()[-2:])
            pytest.skip(f"debootstrap could not make the root ({DEBIAN_MIRROR}): {tail}")
        staging.rename(root)  # whole or not at all; a concurrent build that won is as good
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


# ---- running the file in a root ------------------------------------------------------------


def _in_root(root: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    def enter() -> None:
        os.chroot(root)
        os.chdir("/")

    return subprocess.run(argv, env=env, preexec_fn=enter, capture_output=True, text=True, timeout=300,
                          check=False)


def _deploy_in(root: Path, zipapp: Path, server: Cluster, interpreter: list[str], env: dict[str, str]) -> None:
    """Copy the file and a project into the root (names of this process: the matrix may run two suites
    in one cached root at once), run `version` and `deploy` there, check the database, clean up."""
    name = f"pgmi-{os.getpid()}"
    shutil.copy2(zipapp, root / name)
    argv_prefix = [*interpreter, f"/{name}"]
    project = root / f"project-{os.getpid()}"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    (project / "deploy.sql").write_text(DEPLOY_SQL, encoding="utf-8")
    db = f"minimal_{root.name.replace('-', '_')}"
    import pg8000.native

    conn = pg8000.native.Connection(**server.conn_kwargs())
    try:
        conn.run(f'DROP DATABASE IF EXISTS "{db}"')
        conn.run(f'CREATE DATABASE "{db}"')
    finally:
        conn.close()
    tcp = {"PGHOST": "127.0.0.1", "PGPORT": str(server.port), "PGUSER": server.user, "PGSSLMODE": "disable",
           "PGMI_NON_INTERACTIVE": "1"}
    try:
        version = _in_root(root, [*argv_prefix, "version"], {**env, **tcp})
        assert version.returncode == 0, version.stderr
        digest = hashlib.sha256(zipapp.read_bytes()).hexdigest()
        assert f"SHA-256: {digest} (/{name})" in version.stdout.splitlines(), version.stdout
        run = _in_root(root, [*argv_prefix, "deploy", f"/{project.name}", "-d", db], {**env, **tcp})
        assert run.returncode == 0, (run.stdout, run.stderr)
        conn = pg8000.native.Connection(**server.conn_kwargs(db))
        try:  # what the database holds, read over the host's own connection
            assert conn.run('SELECT id, how FROM "from;root" ORDER BY id') == [
                [1, "deployed over TCP from a chroot;\n"], [2, "a unit after COMMIT"]]
        finally:
            conn.close()
    finally:
        conn = pg8000.native.Connection(**server.conn_kwargs())
        try:
            conn.run(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            conn.close()
        # The debootstrap root is cached for the next run: leave it as it was built.
        (root / name).unlink()
        shutil.rmtree(project, ignore_errors=True)
        shiv = root / "root/.shiv"
        for extracted in [*shiv.glob(f"{name}_*"), *shiv.glob(f".{name}_*_lock")]:
            if extracted.is_dir():
                shutil.rmtree(extracted, ignore_errors=True)
            else:
                extracted.unlink()


def test_python_only_root_like_distroless(zipapp, tcp_server, tmp_path):
    python = _host_python()
    if python is None:
        pytest.skip(f"no supported /usr/bin/python3 (>= {MINIMUM[0]}.{MINIMUM[1]}) with ldd on this machine")
    root = _python_only_root(tmp_path, python)
    assert not (root / "bin/sh").exists() and not (root / "etc").exists()  # nothing but Python
    _deploy_in(root, zipapp, tcp_server, ["/usr/bin/python3"], {"PATH": "/usr/bin"})
    assert list((root / "tmp").glob("pgmi-shiv-*/pgmi-*_*/site-packages/pgmilib"))  # no HOME: extracted to /tmp


def test_debootstrap_minbase_root_through_the_launcher(zipapp, tcp_server):
    root = debootstrap_root()
    _deploy_in(root, zipapp, tcp_server, [], {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"})
