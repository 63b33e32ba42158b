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
from pgmilib.python_floor import MINIMUM, NEWER_PYTHON

pytestmark = pytest.mark.build

REPO = Path(__file__).resolve().parent.parent


def _build(output: Path, *, source: Path = REPO, umask: int = 0o022, args: tuple[str, ...] = (),
           **env: str) -> Path:
    result = subprocess.run([sys.executable, str(source / "build.py"), "-o", str(output), *args],
                            capture_output=True, text=True, env={**os.environ, **env}, umask=umask, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert result.stdout.splitlines()[-1] == f"{digest}  {os.path.relpath(output)}"  # sha256sum's format
    return output


def _build_elsewhere(root: Path) -> Path:
    """The build from a copy of the sources at another path: its own dependency download, umask 077,
    another time zone and temp dir. A copy is no git checkout, so it is told the commit and its date."""
    copy = root / "elsewhere" / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pgmilib", "sql", "templates"):
        shutil.copytree(REPO / name, copy / name, ignore=ignore)
    for name in ("build.py", "requirements.txt"):
        shutil.copy2(REPO / name, copy / name)
    temp = root / "elsewhere" / "tmp"
    temp.mkdir()
    head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H %ct"], capture_output=True,
                          text=True, check=False).stdout.split()
    commit, epoch = (head[0][:7], head[1]) if len(head) == 2 else ("unknown", "315532800")
    return _build(root / "b" / "pgmi", source=copy, umask=0o077, args=("--deps-cache", str(root / "deps")),
                  PGMI_BUILD_COMMIT=commit, SOURCE_DATE_EPOCH=epoch, TZ="Pacific/Chatham", TMPDIR=str(temp))


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """(first, second): a build of this checkout, and one of a copy of it made elsewhere."""
    root = tmp_path_factory.mktemp("zipapp")
    first = _build(root / "a" / "pgmi")
    second = _build_elsewhere(root)
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


def _pinned(dist: str) -> str:
    """The version requirements.txt pins for `dist` (what build.py bundles)."""
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == dist.lower():
            return version.split(";")[0].split("#")[0].strip()
    raise AssertionError(f"requirements.txt pins no {dist}")


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
    assert zipapp.read_bytes().startswith(b"#!/bin/sh\n")
    assert os.access(zipapp, os.X_OK)


def _python_dir(tmp_path: Path) -> Path:
    """A directory whose `python3` is this interpreter, for a PATH the launcher searches."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    return bin_dir


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIV_", "PYTHON", "PGMI_"))}
    return {**env, **extra}


def test_launcher_runs_under_every_posix_shell_here(zipapp, tmp_path):
    """The first lines are a POSIX sh launcher: dash (Debian's /bin/sh), bash in POSIX mode, and
    BusyBox's ash (Alpine) when installed all start the same archive."""
    shells = [["/bin/sh"]]
    shells += [[found] for found in filter(None, (shutil.which("dash"),))]
    shells += [[found, "--posix"] for found in filter(None, (shutil.which("bash"),))]
    shells += [[found, "sh"] for found in filter(None, (shutil.which("busybox"),))]
    env = _clean_env(PATH=f"{_python_dir(tmp_path)}:/usr/bin:/bin", SHIV_ROOT=str(tmp_path / "shiv"))
    for shell in shells:
        run = subprocess.run([*shell, str(zipapp), "version"], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        assert run.returncode == 0, (shell, run.stderr)
        assert run.stdout.startswith(f"pgmi {pgmilib.__version__} "), (shell, run.stdout)


def test_launcher_starts_python_without_site_and_passes_arguments(zipapp, tmp_path):
    """Executed directly: the kernel runs /bin/sh, which execs PGMI_PYTHON (else python3) with -S
    (no site start-up), the archive's path and every argument unchanged."""
    record = tmp_path / "argv.json"
    wrapper = tmp_path / "recording-python"
    wrapper.write_text(f"#!{sys.executable}\n"
                       "import json, os, sys\n"
                       f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
                       f"os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])\n")
    wrapper.chmod(0o755)
    odd = "two words; $HOME \\ 'quoted' \"x\""
    run = subprocess.run([str(zipapp), "version", "--no-such-flag", odd],
                         env=_clean_env(PGMI_PYTHON=str(wrapper), SHIV_ROOT=str(tmp_path / "shiv")),
                         capture_output=True, text=True, timeout=120, check=False)
    assert json.loads(record.read_text()) == ["-S", str(zipapp), "version", "--no-such-flag", odd]
    assert run.returncode == 2 and "unrecognized arguments: --no-such-flag" in run.stderr  # pgmi's parser ran
    default = subprocess.run([str(zipapp), "version"], env=_clean_env(
        PATH=f"{_python_dir(tmp_path)}:/usr/bin:/bin", SHIV_ROOT=str(tmp_path / "shiv")),
        capture_output=True, text=True, timeout=120, check=False)
    assert default.returncode == 0 and default.stdout.startswith("pgmi "), default.stderr


def _recording_python(tmp_path: Path) -> tuple[Path, Path]:
    """(an interpreter wrapper that appends its arguments to a JSON-lines file, that file)."""
    record = tmp_path / "argv.jsonl"
    wrapper = tmp_path / "recording-python"
    wrapper.write_text(f"#!{sys.executable}\n"
                       "import json, os, sys\n"
                       f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                       f"os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])\n")
    wrapper.chmod(0o755)
    return wrapper, record


def test_launcher_warm_start_runs_the_extracted_copy(zipapp, tmp_path):
    """Once this build is extracted, the shell starts Python on it directly (no runpy, no zipimport):
    same output, argv[0] still the archive (`version` hashes the running file), and nothing imported
    from the working directory, which `python -c` would otherwise put first on sys.path."""
    wrapper, record = _recording_python(tmp_path)
    hostile = tmp_path / "cwd"
    (hostile / "pgmilib").mkdir(parents=True)
    for name in ("signal.py", "pgmilib/__init__.py", "argparse.py"):
        (hostile / name).write_text(f"open({str(tmp_path / 'imported')!r}, 'w').write(__file__)\n")
    env = _clean_env(PGMI_PYTHON=str(wrapper), SHIV_ROOT=str(tmp_path / "shiv"))
    runs = [subprocess.run([str(zipapp), "version"], env=env, cwd=hostile, capture_output=True, text=True,
                           timeout=120, check=False) for _ in range(2)]
    cold, warm = [json.loads(line) for line in record.read_text().splitlines()]
    assert cold == ["-S", str(zipapp), "version"]  # nothing extracted yet: the archive, as always
    assert warm[:2] == ["-S", "-c"] and warm[3] == str(zipapp) and warm[5:] == ["version"]
    assert Path(warm[4]) == tmp_path / "shiv" / f"pgmi_{_build_id(zipapp)}" / "site-packages"
    digest = hashlib.sha256(zipapp.read_bytes()).hexdigest()
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert f"SHA-256: {digest} ({zipapp})" in run.stdout.splitlines()
    assert runs[0].stdout == runs[1].stdout
    assert not (tmp_path / "imported").exists()


@pytest.mark.parametrize("setting", ["SHIV_FORCE_EXTRACT", "SHIV_ENTRY_POINT", "SHIV_INTERPRETER"])
def test_launcher_leaves_shiv_settings_to_shiv(zipapp, tmp_path, setting):
    """A SHIV_* override asks for shiv's own bootstrap: the shell runs the archive even when warm."""
    wrapper, record = _recording_python(tmp_path)
    env = _clean_env(PGMI_PYTHON=str(wrapper), SHIV_ROOT=str(tmp_path / "shiv"))
    subprocess.run([str(zipapp), "version"], env=env, capture_output=True, timeout=120, check=True)  # extracts
    value = {"SHIV_ENTRY_POINT": "pgmilib.cli:run", "SHIV_INTERPRETER": ""}.get(setting, "1")
    subprocess.run([str(zipapp), "version"], env={**env, setting: value}, capture_output=True, timeout=120,
                   check=False)
    assert json.loads(record.read_text().splitlines()[-1])[:2] == ["-S", str(zipapp)]


def test_launcher_without_python3_on_path_fails_in_one_line(zipapp, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = subprocess.run(["/bin/sh", str(zipapp), "version"], env=_clean_env(PATH=str(empty)),
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 127
    assert "python3" in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_reproducible(builds):
    """Byte-identical although the second build ran elsewhere (see _build_elsewhere); and nothing of
    either build's paths is inside."""
    first, second = builds
    assert hashlib.sha256(first.read_bytes()).hexdigest() == hashlib.sha256(second.read_bytes()).hexdigest()
    data = first.read_bytes()
    with zipfile.ZipFile(first) as archive:
        data += b"".join(archive.read(name) for name in archive.namelist())
        assert {info.create_system for info in archive.infolist()} == {3}
        assert {info.external_attr >> 16 for info in archive.infolist()} <= {0o100644, 0o100755}
    for path in (first.parent, second.parent.parent, Path(tempfile.gettempdir()) / "pgmi-build-"):
        assert str(path).encode() not in data, path


def test_version_prints_the_sha256_of_the_running_file(zipapp, shiv_root, tmp_path):
    """What an air-gapped host compares with the published digest, also from a copy elsewhere."""
    copy = tmp_path / "bin" / "pgmi"
    copy.parent.mkdir()
    shutil.copy2(zipapp, copy)
    for app in (zipapp, copy):
        result = _run(app, "version", env={"SHIV_ROOT": str(shiv_root)})
        assert result.returncode == 0, result.stderr
        digest = hashlib.sha256(app.read_bytes()).hexdigest()
        assert f"SHA-256: {digest} ({app})" in result.stdout.splitlines()


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
    for dep in ("pg8000/", "scramp/", "asn1crypto/", "dateutil/", "yaml/", f"scramp-{_pinned('scramp')}.dist-info/"):
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
    assert scramp_version == _pinned("scramp")
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
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11: the same parser as a package (requirements-dev.txt)
        import tomli as tomllib

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
    """Runs on every other supported CPython found here; older ones get one clear error line, not a traceback."""
    pythons = _other_pythons()
    if not pythons:
        pytest.skip("no other Python interpreter on this machine")
    script = "import pg8000.native, yaml, scramp; print('deps ok')"
    for version, exe in sorted(pythons.items()):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIV_", "PYTHON"))}
        env["SHIV_ROOT"] = str(tmp_path / version)
        run = subprocess.run([exe, "-I", str(zipapp), "version"], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        if tuple(int(x) for x in version.split(".")) >= MINIMUM:
            assert run.returncode == 0 and run.stdout.startswith("pgmi "), (version, run.stderr)
            deps = subprocess.run([exe, "-I", str(zipapp), "-c", script], env={**env, "SHIV_INTERPRETER": "1"},
                                  capture_output=True, text=True, timeout=120, check=False)
            assert deps.stdout.strip() == "deps ok", (version, deps.stderr)
        else:
            assert run.returncode == 1, version
            assert run.stderr.startswith(f"pgmi: error: Python {MINIMUM[0]}.{MINIMUM[1]} or newer is required, "
                                         f"but {exe} is Python {version}."), run.stderr
            assert "PGMI_PYTHON=" in run.stderr and NEWER_PYTHON in run.stderr and run.stderr.count("\n") == 1


_DEFERRED_PROBE = """
import json, ssl, sys
import pg8000.native
loaded = sorted(m for m in sys.modules if m.startswith(("asn1crypto", "dateutil")))
from scramp.core import _make_cb_data
from pg8000.converters import timestamp_in, timestamptz_in
text = open(sys.argv[1]).read()
class Peer:  # what scramp reads from the TLS socket: the server's certificate
    def getpeercert(self, binary_form):
        return ssl.PEM_cert_to_DER_cert(text)
print(json.dumps({
    "loaded_at_import": loaded,
    "cbind": _make_cb_data("tls-server-end-point", Peer()).hex(),
    "timestamps": [str(timestamp_in("2024-01-02T03:04:05")), timestamp_in("not a time"),
                   str(timestamptz_in("2024-01-02T03:04:05+02"))],
}))
"""


def test_deferred_driver_imports_behave_like_the_published_driver(zipapp, pki, tmp_path):
    """build.py defers asn1crypto (SCRAM channel binding) and dateutil (odd timestamps) to first
    use: a deploy's import of pg8000 loads neither, and both give the published driver's results."""
    cert = str(pki / "server.crt")
    env = _clean_env(SHIV_ROOT=str(tmp_path / "shiv"), SHIV_INTERPRETER="1")
    bundled = subprocess.run([sys.executable, "-I", str(zipapp), "-c", _DEFERRED_PROBE, cert], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert bundled.returncode == 0, bundled.stderr
    published = subprocess.run([sys.executable, "-c", _DEFERRED_PROBE, cert], capture_output=True, text=True,
                               timeout=120, check=False)
    assert published.returncode == 0, published.stderr
    ours, theirs = json.loads(bundled.stdout), json.loads(published.stdout)
    assert ours.pop("loaded_at_import") == []
    assert theirs.pop("loaded_at_import")  # the published driver imports them eagerly
    assert ours == theirs
    assert ours["timestamps"][1] == "not a time" and len(ours["cbind"]) == 64  # a SHA-256 of the certificate


def test_dependency_version_lookups_are_pinned(zipapp):
    """build.py writes the pinned versions in, so a deploy never imports importlib.metadata."""
    with zipfile.ZipFile(zipapp) as archive:
        for arcname, version in (("site-packages/pg8000/core.py", _pinned("pg8000")),
                                 ("site-packages/scramp/__init__.py", _pinned("scramp"))):
            text = archive.read(arcname).decode()
            assert "from importlib.metadata import" not in text, arcname
            assert f"return {version!r}" in text, arcname


_DISPATCH_PROBE = """
import datetime, decimal, enum, json, sys
import pg8000.native
from pg8000 import converters
typing_loaded = "typing" in sys.modules
def fingerprint(func):  # the handler's code, whatever its line numbers
    code = func.__code__
    return [func.__name__, code.co_code.hex(), list(code.co_names), [repr(c) for c in code.co_consts
                                                                      if not hasattr(c, "co_code")]]
class Word(str):
    pass
class Colour(enum.Enum):
    RED = 1
values = [None, True, 7, 1.5, decimal.Decimal("1.20"), b"ab", bytearray(b"c"), "it's", Word("w"), Colour.RED,
          datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.date(2024, 1, 2), datetime.time(3, 4),
          datetime.timedelta(days=1, seconds=5), [1, "a", None, [2.5]], ("x", None, 3), {"k": [1]}]
def outcome(func, value):
    try:
        return func(value)
    except Exception as error:
        return type(error).__name__
print(json.dumps({
    "typing_loaded": typing_loaded,
    "tables": {name: sorted([f"{cls.__module__}.{cls.__qualname__}", *fingerprint(func)]
                            for cls, func in getattr(converters, name).registry.items())
               for name in ("array_out", "composite_out", "literal")},
    "results": {name: [outcome(getattr(converters, name), v) for v in values]
                for name in ("array_out", "composite_out", "literal")},
    "native": pg8000.native.literal([None, 1, "a"]),
}))
"""


def test_the_bundled_driver_dispatches_as_the_published_one(zipapp, tmp_path):
    """build.py names the type of each pg8000 handler registered by annotation and gives the module a
    singledispatch for plain classes: the same dispatch tables and results, and no `typing` import."""
    env = _clean_env(SHIV_ROOT=str(tmp_path / "shiv"), SHIV_INTERPRETER="1")
    # shiv's bootstrap (interpreter mode) imports typing before the probe runs: forget it, to see who imports it again
    bundled = subprocess.run([sys.executable, "-I", str(zipapp), "-c", "import sys; sys.modules.pop('typing', None)\n"
                              + _DISPATCH_PROBE], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bundled.returncode == 0, bundled.stderr
    published = subprocess.run([sys.executable, "-c", _DISPATCH_PROBE], capture_output=True, text=True, timeout=120,
                               check=False)
    assert published.returncode == 0, published.stderr
    ours, theirs = json.loads(bundled.stdout), json.loads(published.stdout)
    assert (ours.pop("typing_loaded"), theirs.pop("typing_loaded")) == (False, True)
    assert ours == theirs
    assert len(ours["tables"]["literal"]) == 13 and ours["results"]["literal"][:3] == ["NULL", "TRUE", "7"]


def test_a_register_the_build_cannot_name_fails_the_build(tmp_path):
    """A driver update that registers a handler some other way stops the build, naming the file."""
    import build

    site = tmp_path / "site"
    (site / "pg8000").mkdir(parents=True)
    head = "from functools import singledispatch\n@singledispatch\ndef f(v):\n    return v\n"
    handler = "@f.register\ndef _(v: int):\n    return 1\n"
    cases = {"count": head + handler, "annotation": head + handler.replace("v: int", "v: 'int'") * 14,
             "import": head.replace("from functools import singledispatch", "import functools") + handler * 14}
    for case, text in cases.items():
        (site / "pg8000" / "converters.py").write_text(text, encoding="utf-8")
        with pytest.raises(build.BuildError, match="pg8000/converters.py") as raised:
            build.register_dispatch_types(site)
        assert "\n" not in str(raised.value), case
    (site / "pg8000" / "converters.py").write_text(head + handler * 14, encoding="utf-8")
    build.register_dispatch_types(site)  # what it expects: rewritten
    text = (site / "pg8000" / "converters.py").read_text(encoding="utf-8")
    assert text.count("@f.register(int)\n") == 14 and "class singledispatch:" in text


def test_a_deploy_from_the_archive_never_imports_typing(zipapp, pg, create_database, tmp_path):
    """The real launcher's warm start, on this interpreter and the oldest and newest other supported
    one: pgmi's modules import typing for type checkers only, the bundled driver not at all."""
    from projects import query, write_project

    project = write_project(tmp_path / "small", {"schema/t.sql": "CREATE TABLE t (id int);\n"},
                            "CREATE TABLE done (id int);\n")
    for version, python in sorted(_supported_pythons().items()):
        db = create_database()
        env = _clean_env(PGMI_PYTHON=python, SHIV_ROOT=str(tmp_path / "shiv"), PGMI_NON_INTERACTIVE="1")
        env = {k: v for k, v in env.items() if not k.startswith("PG") or k.startswith("PGMI_")}
        subprocess.run([str(zipapp), "version"], env=env, capture_output=True, timeout=120, check=True)  # extracts
        run = subprocess.run([str(zipapp), "deploy", str(project), "-d", db],
                             env={**env, **pg.env(), "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True,
                             timeout=180, check=False)
        assert run.returncode == 0, (version, run.stderr)
        imported = {line.rpartition("|")[2].strip() for line in run.stderr.splitlines()
                    if line.startswith("import time:")}
        assert {"pgmilib.deploy.pipeline", "pg8000.converters"} <= imported, version  # the record is whole
        assert "typing" not in imported, version
        assert query(pg, db, "SELECT to_regclass('public.done') IS NOT NULL") == [[True]], version


# A deploy.sql whose statements after COMMIT (each sent as its own unit, split by the lexer) hide
# semicolons and quotes in quoted identifiers, E'' strings and plain strings: where the lexer's
# regular expressions differed by interpreter (possessive quantifiers on Debian 12's 3.11.2), a
# statement was cut in the middle of an identifier.
TRICKY_DEPLOY = r"""BEGIN;
CREATE TABLE "semi;colon" ("a""b;c" text, x int);
INSERT INTO "semi;colon" VALUES (E'it\'s; E\\', 1);
COMMIT;
INSERT INTO "semi;colon" ("a""b;c", x) VALUES ('plain;''q', 2);
INSERT INTO "semi;colon" VALUES (E'\x3b;\'\n', 3), (e'tab\there;', 4);
CREATE TABLE "x""y;z" AS SELECT count(*) AS "n;" FROM "semi;colon";
COMMENT ON TABLE "x""y;z" IS 'made after COMMIT; in a unit of its own';
"""
TRICKY_ROWS = [["it's; E\\", 1], ["plain;'q", 2], [";;'\n", 3], ["tab\there;", 4]]


def _supported_pythons() -> dict[str, str]:
    """This interpreter, and the oldest and newest other supported one found here, by "major.minor"."""
    others = {v: exe for v, exe in _other_pythons().items() if tuple(map(int, v.split("."))) >= MINIMUM}
    chosen = {f"{sys.version_info[0]}.{sys.version_info[1]}": sys.executable}
    by_age = sorted(others, key=lambda v: tuple(map(int, v.split("."))))
    chosen.update({v: others[v] for v in by_age[:1] + by_age[-1:]})
    return chosen


def test_the_file_deploys_quoted_semicolons_alike_on_every_interpreter(zipapp, pg, create_database, tmp_path):
    """`PGMI_PYTHON=<python> dist/pgmi deploy`: the same database contents on this interpreter and
    on the oldest and newest other supported one (the whole matrix runs it on each in turn)."""
    from projects import query, write_project

    project = write_project(tmp_path / "tricky", {}, TRICKY_DEPLOY)
    for version, python in sorted(_supported_pythons().items()):
        db = create_database()
        env = _clean_env(PGMI_PYTHON=python, SHIV_ROOT=str(tmp_path / "shiv"), PGMI_NON_INTERACTIVE="1")
        env = {k: v for k, v in env.items() if not k.startswith("PG") or k.startswith("PGMI_")}
        run = subprocess.run([str(zipapp), "deploy", str(project), "-d", db], env={**env, **pg.env()},
                             capture_output=True, text=True, timeout=180, check=False)
        assert run.returncode == 0, (version, run.stdout, run.stderr)
        assert query(pg, db, 'SELECT "a""b;c", x FROM "semi;colon" ORDER BY x') == TRICKY_ROWS, version
        assert query(pg, db, 'SELECT "n;" FROM "x""y;z"') == [[4]], version
        assert query(pg, db, """SELECT obj_description('"x""y;z"'::regclass)""") == [
            ["made after COMMIT; in a unit of its own"]], version


_SCRAM_PROBE = """
import json, ssl, sys
import pg8000.native
context = ssl.create_default_context(cafile=sys.argv[2])
context.check_hostname = False
conn = pg8000.native.Connection(**json.loads(sys.argv[1]), ssl_context=context)
print(conn.auth.mechanism_name, conn.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0][0])
conn.close()
"""


def test_the_bundled_driver_binds_scram_to_the_tls_channel(zipapp, pki, tmp_path):
    """The archive's own pg8000 and scramp (asn1crypto deferred by build.py) log in with
    SCRAM-SHA-256-PLUS on this interpreter (tests/test_scram_tls.py: the installed driver)."""
    from cloudfakes import create_login, start_scram_tls_cluster

    cluster = start_scram_tls_cluster(pki)
    try:
        create_login(cluster, "scramuser", "Scram-Secret-41")
        kwargs = {"host": "127.0.0.1", "port": cluster.port, "user": "scramuser", "password": "Scram-Secret-41",
                  "database": "postgres"}
        env = _clean_env(SHIV_ROOT=str(tmp_path / "shiv"), SHIV_INTERPRETER="1")
        run = subprocess.run([sys.executable, "-I", str(zipapp), "-c", _SCRAM_PROBE, json.dumps(kwargs),
                              str(pki / "ca.crt")], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["SCRAM-SHA-256-PLUS", "True"]
    finally:
        cluster.stop()


# What the archive's driver defers beyond asn1crypto and dateutil (build.py DEFERRED_IMPORTS): scramp
# to a SCRAM login or a TLS connection (its channel binding), hashlib to an md5 login, json to a
# json value. Loaded at import or not, the stand-ins must give the published driver's results.
_LAZY_PROBE = """
import sys
if sys.argv[1] != "-":
    sys.path.insert(0, sys.argv[1])
import pg8000.native
loaded = sorted(m for m in ("scramp", "hashlib", "json", "unicodedata", "stringprep") if m in sys.modules)
from pg8000 import converters, core
import json, scramp
print(json.dumps({
    "loaded_at_import": loaded,
    "json_in": converters.json_in('{"a": [1, 2.5, null], "b": "\\u00e9"}'),
    "json_out": converters.json_out({"b": [True, None], "a": "x"}),
    "md5": core.md5(b"secretuser").hexdigest(),
    "scram_client": core.scramp.ScramClient is scramp.ScramClient,
}))
"""


@pytest.fixture(scope="session")
def extracted_site(zipapp, shiv_root) -> Path:
    """The archive's site-packages, extracted once into `shiv_root`, to run a probe there with -S
    (shiv's own bootstrap, which SHIV_INTERPRETER runs, imports hashlib and json itself)."""
    subprocess.run([str(zipapp), "version"], env=_clean_env(SHIV_ROOT=str(shiv_root)), capture_output=True,
                   timeout=120, check=True)
    site = shiv_root / f"pgmi_{_build_id(zipapp)}" / "site-packages"
    assert (site / "pgmilib").is_dir()
    return site


def test_the_drivers_deferred_modules_give_the_published_results(extracted_site):
    bundled = subprocess.run([sys.executable, "-S", "-c", _LAZY_PROBE, str(extracted_site)], env=_clean_env(),
                             capture_output=True, text=True, timeout=120, check=False)
    assert bundled.returncode == 0, bundled.stderr
    published = subprocess.run([sys.executable, "-c", _LAZY_PROBE, "-"], capture_output=True, text=True,
                               timeout=120, check=False)
    assert published.returncode == 0, published.stderr
    ours, theirs = json.loads(bundled.stdout), json.loads(published.stdout)
    assert ours.pop("loaded_at_import") == []
    assert theirs.pop("loaded_at_import") == ["hashlib", "json", "scramp", "stringprep", "unicodedata"]
    assert ours == theirs
    assert ours["md5"] == hashlib.md5(b"secretuser").hexdigest() and ours["scram_client"] is True


def test_a_deploy_from_the_archive_sends_the_session_api_before_the_drivers_import(extracted_site, pg, fresh_db,
                                                                                    tmp_path):
    """What a deploy needs only after the server has its session API (the driver, the scan's
    hashing, json, SCRAM, random) is imported while the server builds it, from the archive as
    from a checkout."""
    from projects import query, write_project
    from test_startup_imports import AFTER_THE_SEND, SEND_PROBE

    project = write_project(tmp_path / "p", {"schema/t.sql": "CREATE TABLE t (id int);\n"},
                            deploy_sql="CREATE TABLE from_deploy (id int);\n")
    dump = tmp_path / "seen.json"
    env = {**_clean_env(PGMI_CACHE_DIR="off"), **pg.env()}
    done = subprocess.run([sys.executable, "-S", "-c", SEND_PROBE, str(extracted_site), str(dump), "deploy",
                           str(project), "-d", fresh_db, "--sslmode", "disable", "--timeout", "0"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(dump.read_text())
    at_send = set(seen["modules"])
    assert "pgmilib.deploy.session" in at_send and seen["kept"] is True  # the API went ahead and stayed
    deferred = set(AFTER_THE_SEND) | {"hashlib", "json", "scramp", "random", "unicodedata",
                                      "platform", "gettext", "locale", "urllib.parse"}  # these: pgmilib/lean.py
    assert sorted(at_send & deferred) == []
    assert query(pg, fresh_db, "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


# Writes the names of the loaded modules once the deploy is done (one a line: no json of its own).
_END_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from pgmilib.cli import app
code = app.main(sys.argv[3:])
with open(sys.argv[2], "w") as fh:
    fh.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def test_a_small_deploy_from_the_archive_loads_neither_openssl_nor_json(extracted_site, pg, fresh_db, tmp_path):
    """A few small files are hashed by the interpreter's own SHA-256 (project/checksums.py
    `sha256`), and no test event needs json: OpenSSL's library (~4 ms) and json stay unloaded."""
    from projects import query, write_project

    project = write_project(tmp_path / "p", {f"schema/t{i}.sql": f"-- table {i}\nCREATE TABLE t{i} (id int);\n"
                                             for i in range(25)},
                            deploy_sql="DO $$ BEGIN PERFORM 1 FROM pg_temp.pgmi_plan_view; END $$;\n"
                                       "CREATE TABLE from_deploy (n int);\n"
                                       "INSERT INTO from_deploy SELECT count(*) FROM pg_temp.pgmi_source_view;\n")
    dump = tmp_path / "modules.txt"
    env = {**_clean_env(PGMI_CACHE_DIR=str(tmp_path / "cache")), **pg.env()}
    done = subprocess.run([sys.executable, "-S", "-c", _END_PROBE, str(extracted_site), str(dump), "deploy",
                           str(project), "-d", fresh_db, "--sslmode", "disable", "--timeout", "0"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(dump.read_text().split())
    assert "pgmilib.project.checksums" in loaded  # the files were hashed
    assert sorted(loaded & {"hashlib", "_hashlib", "json"}) == []
    assert query(pg, fresh_db, "SELECT n FROM from_deploy") == [[25]]
    assert list((tmp_path / "cache").iterdir())  # the checksum cache was written, with these checksums


_MD5_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import pg8000.native
conn = pg8000.native.Connection(user="md5user", password="Md5-Secret-7", host="127.0.0.1", port=int(sys.argv[2]),
                                database="postgres", ssl_context=False)
print(conn.run("SELECT current_user")[0][0], "scramp" in sys.modules)
conn.close()
"""


def test_the_bundled_driver_logs_in_with_md5(extracted_site, pki):
    """hashlib is imported by the archive's driver only when the server asks for md5: that login works."""
    from cloudfakes import admin, start_scram_tls_cluster

    cluster = start_scram_tls_cluster(pki)
    try:
        with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
            fh.write("local all all trust\nhost all all 127.0.0.1/32 md5\n")
        admin(cluster, "SELECT pg_reload_conf()")
        verifier = "md5" + hashlib.md5(b"Md5-Secret-7" + b"md5user").hexdigest()  # stored as md5, so md5 is asked
        admin(cluster, f"CREATE ROLE md5user LOGIN PASSWORD '{verifier}'")
        run = subprocess.run([sys.executable, "-S", "-c", _MD5_PROBE, str(extracted_site), str(cluster.port)],
                             env=_clean_env(), capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["md5user", "False"]  # logged in (no TLS: no channel binding), without SCRAM machinery
    finally:
        cluster.stop()


# The archive's pg8000 loads its DB-API layer (legacy.py, dbapi.py) on the first use of one of its
# names (build.py defer_legacy_api); the package must offer the published driver's names and connect().
_LEGACY_PROBE = """
import json, sys
if sys.argv[1] != "-":
    sys.path.insert(0, sys.argv[1])
import pg8000.native
loaded = sorted(m for m in ("pg8000.legacy", "pg8000.dbapi") if m in sys.modules)
import pg8000
def describe(value):
    return [type(value).__name__, getattr(value, "__module__", None), getattr(value, "__qualname__", repr(value))]
names = {name: describe(getattr(pg8000, name)) for name in pg8000.__all__}
star = {}
exec("from pg8000 import *", star)
conn = pg8000.connect(**json.loads(sys.argv[2]))
cursor = conn.cursor()
cursor.execute("SELECT 41 + 1, %s", ("x",))
row = cursor.fetchone()
conn.close()
print(json.dumps({"loaded": loaded, "names": names, "star": sorted(k for k in star if not k.startswith("__")),
                  "row": list(row), "missing": hasattr(pg8000, "no_such_name")}))
"""


def test_the_drivers_db_api_layer_is_loaded_on_first_use(extracted_site, pg):
    kwargs = json.dumps(pg.conn_kwargs())
    bundled = subprocess.run([sys.executable, "-S", "-c", _LEGACY_PROBE, str(extracted_site), kwargs],
                             env=_clean_env(),
                             capture_output=True, text=True, timeout=120, check=False)
    assert bundled.returncode == 0, bundled.stderr
    published = subprocess.run([sys.executable, "-c", _LEGACY_PROBE, "-", kwargs], capture_output=True, text=True,
                               timeout=120, check=False)
    assert published.returncode == 0, published.stderr
    ours, theirs = json.loads(bundled.stdout), json.loads(published.stdout)
    assert ours.pop("loaded") == [] and theirs.pop("loaded") == ["pg8000.dbapi", "pg8000.legacy"]
    assert ours == theirs
    assert ours["row"] == [42, "x"] and len(ours["names"]) > 50 and ours["missing"] is False


def test_the_build_refuses_a_driver_whose_db_api_import_moved(tmp_path):
    """An alias, another import, or no connect() to point at the lazy Connection stops the build."""
    import build

    (tmp_path / "pg8000").mkdir()
    init = tmp_path / "pg8000" / "__init__.py"
    for text in ("from pg8000.legacy import Connection as C\ndef connect():\n    return Connection(\n    )\n",
                 ("from pg8000.legacy import Connection\nfrom pg8000.core import x\ndef connect():\n"
                 "    return Connection(\n    )\n"),
                 "from pg8000.legacy import Connection\n"):
        init.write_text(text, encoding="utf-8")
        with pytest.raises(build.BuildError, match="pg8000/__init__.py"):
            build.defer_legacy_api(tmp_path)
    init.write_text("from pg8000.legacy import (\n    Connection,\n    Cursor,\n)\ndef connect(u):\n"
                    "    return Connection(\n        u)\n", encoding="utf-8")
    build.defer_legacy_api(tmp_path)
    assert "import" not in init.read_text().replace("from pg8000 import legacy", "")
