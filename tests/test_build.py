"""The single-file build (build.py): runs isolated, survives a bad HOME, reproducible, pure Python.

One session-scoped fixture builds the zipapp twice (the second build is the reproducibility
check); dependencies come from build.py's cache under build/, so after the first run on a
machine the builds take about a second each. Marked `build` (`pytest -m "not build"` skips).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

import pgmilib

pytestmark = pytest.mark.build

REPO = Path(__file__).resolve().parent.parent


def _build(output: Path, **env: str) -> Path:
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "-o", str(output)], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """(first, second): two builds of the same tree, made back to back."""
    root = tmp_path_factory.mktemp("zipapp")
    first = _build(root / "a" / "pgmi")
    second = _build(root / "b" / "pgmi")
    return first, second


@pytest.fixture(scope="session")
def zipapp(builds):
    return builds[0]


@pytest.fixture(scope="session")
def shiv_root(tmp_path_factory):
    """One extraction directory for the ordinary runs, so they extract once."""
    return tmp_path_factory.mktemp("shiv-root")


def _run(app: Path, *args: str, env: dict[str, str], unset: tuple[str, ...] = (), stdin: str | None = None,
         wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run `python3 -I <app> args` with a minimal environment (no PYTHON*, no stray SHIV_*)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIV_", "PYTHON", "PG"))}
    full = {**base, **env}
    for name in unset:
        full.pop(name, None)
    return subprocess.run([*(wrap or []), sys.executable, "-I", str(app), *args], env=full, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def _build_id(app: Path) -> str:
    with zipfile.ZipFile(app) as archive:
        return json.loads(archive.read("environment.json"))["build_id"]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def test_version_runs_isolated(zipapp, shiv_root):
    result = _run(zipapp, "version", env={"SHIV_ROOT": str(shiv_root)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"pgmi {pgmilib.__version__} (compat {pgmilib.SUPPORTED_COMPAT[0]})"
    commit = _git_commit()
    if commit:
        assert lines[1].startswith(f"Commit: {commit}, Built: 20"), lines[1]
    assert "unknown" not in lines[1]  # build.py baked commit and date in
    assert zipapp.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(zipapp, os.X_OK)


def test_reproducible(builds):
    first, second = builds
    assert hashlib.sha256(first.read_bytes()).hexdigest() == hashlib.sha256(second.read_bytes()).hexdigest()


def test_build_date_follows_source_date_epoch(tmp_path, shiv_root):
    app = _build(tmp_path / "pgmi", SOURCE_DATE_EPOCH="1700000000")
    result = _run(app, "version", env={"SHIV_ROOT": str(shiv_root)})
    assert ", Built: 2023-11-14T22:13:20Z," in result.stdout, result.stdout + result.stderr


def test_archive_contents(zipapp):
    with zipfile.ZipFile(zipapp) as archive:
        names = archive.namelist()
        for kind in ("sql", "templates"):  # every resource file inside the package, byte for byte
            for path in (REPO / kind).rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    arcname = f"site-packages/pgmilib/{kind}/{path.relative_to(REPO / kind).as_posix()}"
                    assert archive.read(arcname) == path.read_bytes(), arcname
    assert any(n.startswith("site-packages/pgmilib/sql/") and n.endswith(".sql") for n in names)
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib", ".dll"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("site-packages/bin/")]
    assert not [n for n in names if n.startswith("site-packages/tests/") or "/tests/" in n.split("pgmilib/")[0]]
    for dep in ("pg8000/", "scramp/", "asn1crypto/", "dateutil/", "yaml/", "scramp-1.5.0.dist-info/"):
        assert any(n.startswith("site-packages/" + dep) for n in names), dep


def test_dependencies_and_resources_work_inside(zipapp, shiv_root, pg):
    """pg8000 (+scramp metadata, dateutil), pure-Python yaml and pgmilib's bundled sql/, from the archive only."""
    script = (
        "import importlib.metadata, json, sys, pg8000.native, yaml\n"
        "from pgmilib import resources\n"
        "kw = json.loads(sys.argv[1])\n"
        "c = pg8000.native.Connection(**kw)\n"
        "print(c.run('select 40 + 2')[0][0])\n"
        "c.close()\n"
        "print(yaml.__with_libyaml__, yaml.safe_load('a: [1, 2]') == {'a': [1, 2]})\n"
        "print(importlib.metadata.version('scramp'))\n"
        "print(resources.resource_dir('sql'))\n"
        "print(pg8000.__file__)\n"
    )
    result = _run(zipapp, "-c", script, json.dumps(pg.conn_kwargs()),
                  env={"SHIV_ROOT": str(shiv_root), "SHIV_INTERPRETER": "1"})
    assert result.returncode == 0, result.stderr
    answer, yaml_line, scramp_version, sql_dir, pg8000_file = result.stdout.splitlines()
    assert answer == "42"
    assert yaml_line == "False True"  # no C extension, still parses
    assert scramp_version == "1.5.0"
    assert sql_dir.startswith(str(shiv_root)) and sql_dir.endswith("pgmilib/sql")
    assert pg8000_file.startswith(str(shiv_root))


def test_runs_without_home(zipapp, tmp_path):
    """HOME unset: shiv resolves ~ from the password database; the run must still work."""
    import pwd

    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    cache = home / ".shiv" / f"pgmi_{_build_id(zipapp)}"
    existed = cache.exists()
    try:
        result = _run(zipapp, "version", env={"TMPDIR": str(tmp_path)}, unset=("HOME",))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("pgmi ")
    finally:
        if not existed:
            shutil.rmtree(cache, ignore_errors=True)


def _read_only_home(tmp_path: Path) -> tuple[str, list[str] | None]:
    """A HOME directory nobody can write to, root included: (home, command prefix to run under).

    Permissions do not stop root, so as root the directory is bind-mounted read-only in a
    private mount namespace (unshare); without unshare, a path under /proc serves.
    """
    home = tmp_path / "home"
    home.mkdir()
    if os.geteuid() != 0:
        home.chmod(0o500)
        return str(home), None
    if shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True,
                                                   check=False).returncode == 0:
        mount = f"mount --bind {home} {home} && mount -o remount,ro,bind {home} {home} && exec \"$@\""
        return str(home), ["unshare", "-m", "sh", "-c", mount, "sh"]
    return "/proc/self/fdinfo", None


@pytest.mark.parametrize("kind", ["not-a-directory", "read-only"])
def test_unusable_home_falls_back_to_temp(zipapp, tmp_path, kind):
    temp = Path(tempfile.mkdtemp(dir=tmp_path))
    if kind == "not-a-directory":
        home, wrap = "/dev/null/home", None
    else:
        home, wrap = _read_only_home(tmp_path)
    result = _run(zipapp, "version", env={"HOME": home, "TMPDIR": str(temp)}, wrap=wrap)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pgmi ")
    extracted = temp / f"pgmi-shiv-{os.getuid()}" / f"pgmi_{_build_id(zipapp)}" / "site-packages" / "pgmilib"
    assert (extracted / "__init__.py").is_file()  # the prelude chose the per-user temp dir
    assert not Path(home, ".shiv").exists()
    assert oct(extracted.parents[2].stat().st_mode & 0o777) == "0o700"


def test_pyproject_lists_every_package():
    """`pip install .` ships only the packages pyproject names: a new subpackage must be added there."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "pgmilib").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert config["package-dir"] == {"pgmilib": "pgmilib", "pgmilib.sql": "sql", "pgmilib.templates": "templates"}


def _other_pythons() -> dict[str, str]:
    """Other CPython interpreters on this machine, by "major.minor" (PATH, then pyenv's versions)."""
    import glob

    found: dict[str, str] = {}
    candidates = [shutil.which(f"python3.{minor}") for minor in range(9, 15)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    for exe in filter(None, candidates):
        probe = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, check=False)
        version = probe.stdout.strip()
        if probe.returncode == 0 and version != f"{sys.version_info[0]}.{sys.version_info[1]}":
            found.setdefault(version, exe)
    return found


def test_other_python_versions(zipapp, tmp_path):
    """Runs on every other CPython >= 3.11 found here; older ones get one clear error line, not a traceback."""
    pythons = _other_pythons()
    if not pythons:
        pytest.skip("no other Python interpreter on this machine")
    script = "import pg8000.native, yaml, scramp; print('deps ok')"
    for version, exe in sorted(pythons.items()):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIV_", "PYTHON"))}
        env["SHIV_ROOT"] = str(tmp_path / version)
        run = subprocess.run([exe, "-I", str(zipapp), "version"], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        if tuple(int(x) for x in version.split(".")) >= (3, 11):
            assert run.returncode == 0 and run.stdout.startswith("pgmi "), (version, run.stderr)
            deps = subprocess.run([exe, "-I", str(zipapp), "-c", script], env={**env, "SHIV_INTERPRETER": "1"},
                                  capture_output=True, text=True, timeout=120, check=False)
            assert deps.stdout.strip() == "deps ok", (version, deps.stderr)
        else:
            assert run.returncode == 1, version
            assert run.stderr == f"pgmi: error: Python 3.11 or newer is required (this is {version})\n"


def test_dependency_version_lookups_are_pinned(zipapp):
    """build.py writes the pinned versions in, so a deploy never imports importlib.metadata."""
    with zipfile.ZipFile(zipapp) as archive:
        for arcname, version in (("site-packages/pg8000/core.py", "1.31.6"),
                                 ("site-packages/scramp/__init__.py", "1.5.0")):
            text = archive.read(arcname).decode()
            assert "from importlib.metadata import" not in text, arcname
            assert f"return {version!r}" in text, arcname
