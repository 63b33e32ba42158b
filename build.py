#!/usr/bin/env python3
"""Build `dist/pgmi`: one executable file that runs pgmi on any CPython >= 3.9 (`make build`).

The file is a shiv zipapp holding our code (with `sql/` and `templates/` inside the
package as `pgmilib/sql`, `pgmilib/templates`), pg8000 and its dependencies, and PyYAML,
all pure Python: PyYAML's optional C extension is deleted (safe_load never uses it), so
the same file works on any OS and architecture.

Steps, and why:

1. Dependencies: `pip install --target --no-deps` of the pinned closure in
   requirements.txt, wheels chosen for one fixed target (WHEEL_TARGET), cached under build/
   keyed by that file's hash, so rebuilding is fast and depends neither on what happens to be
   installed in the build machine's site-packages nor on its interpreter or architecture.
2. Stage: copy the dependencies and our package; bake the commit and build date into the
   staged `pgmilib/__init__.py` (the checkout keeps "unknown"); drop compiled/platform
   files, console scripts and the dependencies' tests; normalise file modes.
3. shiv `--reproducible --compile-pyc`: timestamps come from SOURCE_DATE_EPOCH (the
   commit date by default), entries are sorted, the build id is a hash of the contents.
4. Copy shiv's archive entry by entry with modes and the creating system fixed, and prepend a
   small prelude to its `__main__.py`: shiv extracts its site-packages to
   `~/.shiv` and crashes when HOME is unset, read-only or missing; the prelude points
   SHIV_ROOT at a private per-user directory under the temp dir in that case. On warm
   runs (this build already extracted) it starts pgmi directly, without shiv's bootstrap.
5. Check the archive (no native code, no tests, no __pycache__, resources present), print
   its SHA-256 in `sha256sum` format.

Two builds of one commit are byte-identical (tests/test_build.py builds twice, from two
checkouts at different paths, with different umasks and clocks): nothing of the build host's
paths, time, interpreter or architecture reaches the file. What remains is the pinned tool
chain: shiv (requirements-dev.txt) and the zlib that compresses (both printed with the digest;
another deflate implementation, zlib-ng for one, may compress to other bytes).

Usage: python3 build.py [-o dist/pgmi] [--deps-cache DIR]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent
# The archive's first lines are a POSIX shell launcher (a zip archive may start with any bytes;
# Python finds the archive from its end). `#!/usr/bin/env python3` cannot pass `-S` portably
# (BusyBox env, on Alpine, has no `-S`), and `-S` matters: `site` start-up with .pth hooks can cost
# more than the rest of the interpreter's start-up together, and the archive needs nothing from
# site-packages. `python3 dist/pgmi` (or any interpreter) still runs the same archive directly.
# PGMI_PYTHON picks the interpreter when `python3` on PATH is not the one to use (e.g. too old).
#
# Warm start in the shell: when shiv has already extracted this build (under $SHIV_ROOT, else
# ~/.shiv: the directory `<name>_<build id>` appears whole, by an atomic rename) and no SHIV_*
# setting asks for shiv's own bootstrap, the launcher starts Python on that site-packages directly
# (WARM_START below). Running the archive instead costs ~6 ms of every run: runpy, zipimport
# reading the archive's directory, and compiling __main__.py. Otherwise (first run, HOME unset,
# a SHIV_* override), the archive runs as before, and its prelude does the rest.
LAUNCHER = """#!/bin/sh
# pgmi: single-file zipapp; the shell runs these lines, Python reads the zip archive below.
r=${SHIV_ROOT:-${HOME:+$HOME/.shiv}}
if [ -n "$r" ] && [ -z "${SHIV_INTERPRETER+1}${SHIV_ENTRY_POINT+1}${SHIV_CONSOLE_SCRIPT+1}${SHIV_MODULE+1}\
${SHIV_FORCE_EXTRACT+1}${SHIV_COMPILE_PYC+1}${SHIV_EXTEND_PYTHONPATH+1}${SHIV_PREPEND_PYTHONPATH+1}" ]; then
  for s in "$r"/*_@BUILD_ID@/site-packages; do
    [ -d "$s/pgmilib" ] && exec "${PGMI_PYTHON:-python3}" -S -c '@WARM_START@' "$0" "$s" "$@"
  done
fi
exec "${PGMI_PYTHON:-python3}" -S "$0" "$@"
"""
# What runs pgmi once its site-packages is first on sys.path (the shell's warm start and the
# prelude's): SIGTERM acts like Ctrl-C (exit 130) until main() installs its own handlers.
RUN_PGMI = """import signal


def _pgmi_interrupted(signum, frame):
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _pgmi_interrupted)
try:
    from pgmilib.cli import run
except KeyboardInterrupt:
    sys.stderr.write("pgmi: interrupted\\n")
    sys.exit(130)
run()
"""
# `python3 -S -c WARM_START ARCHIVE SITE_PACKAGES ARGS...` (no single quote: the shell quotes it).
# With -c, sys.path[0] is "" (the working directory): replaced, so nothing is imported from there.
# An interpreter below pgmi's floor runs the archive instead, whose prelude says what to do.
WARM_START = """import sys
if sys.version_info < @MINIMUM@:
    import os
    os.execv(sys.executable, [sys.executable, "-S", sys.argv[1]] + sys.argv[3:])
if sys.path and sys.path[0] == "":
    sys.path[0] = sys.argv.pop(2)
else:  # -P or PYTHONSAFEPATH: nothing was put first
    sys.path.insert(0, sys.argv.pop(2))
del sys.argv[0]  # argv[0] is now the archive, as when Python runs it
__file__ = sys.argv[0] + "/__main__.py"  # as well: `pgmi version` finds the running archive from it
""" + RUN_PGMI
ENTRY_POINT = "pgmilib.cli:run"  # main(), then os._exit when nothing else needs the normal exit
RESOURCE_DIRS = ("sql", "templates")  # top-level in the checkout, pgmilib/<name> in the build
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
FALLBACK_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can carry

# Runs before shiv's bootstrap. Kept free of braces-sensitive tricks and heavy imports: it
# costs nothing on the normal path (one mkdir that usually fails with EEXIST, one access()).
PRELUDE = '''\
import sys
if sys.version_info < @MINIMUM@:  # pgmilib/python_floor.py, copied in: its one line, then exit 1
    _pgmi_floor = {"__name__": "pgmilib.python_floor"}
    exec(@FLOOR_SOURCE@, _pgmi_floor)
    _pgmi_floor["check"]("set PGMI_PYTHON to a newer one, e.g. PGMI_PYTHON=python3.11 ./pgmi ...")


# pgmi: choose where shiv may extract before handing over to its bootstrap. shiv uses
# $SHIV_ROOT, else ~/.shiv; when HOME is unset, missing or read-only the latter fails,
# so fall back to a private per-user directory under the system temp dir.
def _pgmi_shiv_root():
    import os
    if os.environ.get("SHIV_ROOT"):
        return
    home_cache = os.path.expanduser("~/.shiv")
    if os.path.isabs(home_cache):
        try:
            os.mkdir(home_cache, 0o700)
        except FileExistsError:
            pass
        except OSError:
            home_cache = ""
        if home_cache and os.path.isdir(home_cache) and os.access(home_cache, os.W_OK | os.X_OK):
            return
    import stat
    import tempfile
    uid = os.getuid() if hasattr(os, "getuid") else None
    private = os.path.join(tempfile.gettempdir(), "pgmi-shiv-%s" % (uid if uid is not None else "user"))
    try:
        os.mkdir(private, 0o700)
    except FileExistsError:
        pass
    except OSError:
        private = ""
    if private:
        st = os.lstat(private)
        safe = stat.S_ISDIR(st.st_mode) and not (st.st_mode & 0o022) and (uid is None or st.st_uid == uid)
        if not safe:  # someone else's or a symlink: never extract code there
            private = ""
    os.environ["SHIV_ROOT"] = private or tempfile.mkdtemp(prefix="pgmi-shiv-")


_pgmi_shiv_root()
del _pgmi_shiv_root


# pgmi: warm start. Once shiv has extracted this build (its atomic rename makes the directory
# appear complete or not at all), putting that site-packages on sys.path is all its bootstrap
# would do; skipping the bootstrap's imports (zipfile, compileall, pathlib, json) saves tens of
# milliseconds on every run. Any other SHIV_* setting (interpreter mode, forced extraction, an
# entry-point override) takes the full bootstrap below.
def _pgmi_warm_start():
    import os
    if any(key.startswith("SHIV_") and key not in ("SHIV_ROOT", "SHIV_COMPILE_WORKERS") for key in os.environ):
        return
    root = os.environ.get("SHIV_ROOT") or os.path.expanduser("~/.shiv")
    name = os.path.splitext(os.path.basename(os.path.realpath(sys.argv[0])))[0]
    site_packages = os.path.join(root, "%s_%s" % (name, "@BUILD_ID@"), "site-packages")
    if not os.path.isdir(os.path.join(site_packages, "pgmilib")):
        return
    sys.path.insert(0, site_packages)  # ours first, as shiv orders it (it holds no .pth file)
@RUN_PGMI@

_pgmi_warm_start()
del _pgmi_warm_start


# pgmi: shiv extracts on a cold start and compiles what it extracted with compileall, by default
# in a process pool. Not here: the pool needs POSIX semaphores, i.e. a writable /dev/shm, which
# chroots, minimal containers and some serverless runtimes lack (the first run died with a
# traceback there); and its helper process (multiprocessing's resource tracker, started as
# `python -c ...`) has the working directory first on sys.path, so a `signal.py` in the directory
# pgmi was started from would run, and the extraction would never complete (Python 3.13 does
# this). One worker compiles in this process; a user's own SHIV_COMPILE_WORKERS still wins.
def _pgmi_compile_workers():
    import os
    os.environ.setdefault("SHIV_COMPILE_WORKERS", "1")


_pgmi_compile_workers()
del _pgmi_compile_workers
'''


def python_floor() -> tuple[str, str]:
    """(MINIMUM as written, e.g. "(3, 9)", the source) of pgmilib/python_floor.py."""
    source = (REPO / "pgmilib" / "python_floor.py").read_text(encoding="utf-8")
    minimum = re.search(r"^MINIMUM = (\(\d+, \d+\))$", source, flags=re.MULTILINE)
    if minimum is None:
        raise BuildError("pgmilib/python_floor.py must define MINIMUM = (major, minor) at top level")
    return minimum.group(1), source


def prelude(build_id: str) -> str:
    """PRELUDE with this build's id and the interpreter check of pgmilib/python_floor.py filled in."""
    minimum, source = python_floor()
    return (PRELUDE.replace("@RUN_PGMI@", textwrap.indent(RUN_PGMI, "    "))
            .replace("@BUILD_ID@", build_id).replace("@MINIMUM@", minimum)
            .replace("@FLOOR_SOURCE@", repr(source)))


def launcher(build_id: str) -> bytes:
    """The shell lines in front of the archive, with this build's id and warm start filled in."""
    warm = WARM_START.replace("@MINIMUM@", python_floor()[0])
    if "'" in warm:
        raise BuildError("the warm start must not contain a single quote: the launcher quotes it with them")
    return LAUNCHER.replace("@BUILD_ID@", build_id).replace("@WARM_START@", warm).encode("utf-8")


class BuildError(Exception):
    """A build step failed; the message says which and how to fix it."""


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(cmd[:4])} ... failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def git(*args: str) -> str | None:
    """Output of a git command in the repo, or None outside a checkout / without git."""
    try:
        result = subprocess.run(["git", "-C", str(REPO), *args], check=False, capture_output=True, text=True)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def build_identity() -> tuple[str, int]:
    """(commit, epoch): the commit from git, the date from SOURCE_DATE_EPOCH or the commit date.

    Never the wall clock: that would make two builds of the same commit differ.
    """
    # Seven characters of the full hash: `--short` grows with the clone's object count.
    commit = os.environ.get("PGMI_BUILD_COMMIT") or (git("rev-parse", "HEAD") or "unknown")[:7]
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or str(FALLBACK_EPOCH)
    try:
        epoch = max(int(epoch_text), FALLBACK_EPOCH)
    except ValueError:
        raise BuildError(f"SOURCE_DATE_EPOCH must be an integer, got {epoch_text!r}") from None
    return commit, epoch


#: The wheels are chosen for this one fixed target, whatever interpreter and machine build: the same
#: files then come out of pip everywhere (all are pure Python but PyYAML, whose C extension goes),
#: so the archive does not depend on the build host. The target says nothing about where pgmi runs.
WHEEL_TARGET = ("--platform", "manylinux2014_x86_64", "--implementation", "cp", "--python-version", "3.11",
                "--abi", "cp311")


def install_dependencies(cache_root: Path) -> Path:
    """Pure-Python site-packages of the pinned run-time closure, cached by requirements hash."""
    requirements = REPO / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + " ".join(WHEEL_TARGET).encode()).hexdigest()[:16]
    target = cache_root / f"deps-{key}"
    if target.is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"deps-{key}.tmp-", dir=cache_root))
    try:
        run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-compile", "--only-binary=:all:", *WHEEL_TARGET, "--target", str(staging), "-r", str(requirements)])
        try:
            staging.rename(target)  # atomic: a concurrent build may have won, which is fine
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _ignore_noise(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}


def stage(site: Path, deps: Path, commit: str, epoch: int) -> None:
    """Fill `site` with the dependencies and our package, cleaned and normalised."""
    shutil.copytree(deps, site, ignore=_ignore_noise)
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts of the deps: never run from the zipapp
    for path in sorted(site.rglob("*"), reverse=True):  # reverse: children before their directory
        if path.is_dir() and path.name in ("tests", "test") and path.parent != site:
            shutil.rmtree(path)
        elif path.is_file() and path.name.endswith(NATIVE_SUFFIXES):
            path.unlink()

    pin_version_lookups(site)
    defer_imports(site)
    register_dispatch_types(site)
    defer_legacy_api(site)

    package = site / "pgmilib"
    shutil.copytree(REPO / "pgmilib", package, ignore=_ignore_noise)
    for kind in RESOURCE_DIRS:
        source = REPO / kind
        if source.is_dir():
            shutil.rmtree(package / kind, ignore_errors=True)
            shutil.copytree(source, package / kind, ignore=_ignore_noise)

    init = package / "__init__.py"
    text = init.read_text(encoding="utf-8")
    built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    for name, value in (("BUILD_COMMIT", commit), ("BUILD_DATE", built)):
        text, count = re.subn(rf"^{name}\s*=.*$", f"{name} = {value!r}", text, flags=re.MULTILINE)
        if count != 1:
            raise BuildError(f"pgmilib/__init__.py must define {name} exactly once at top level (found {count})")
    init.write_text(text, encoding="utf-8")

    # Modes end up in the archive: make them independent of umask and checkout.
    for path in [site, *site.rglob("*")]:
        if path.is_symlink():
            raise BuildError(f"symlink in the staged tree: {path.relative_to(site)}")
        if path.is_dir():
            path.chmod(0o755)
        else:
            executable = path.stat().st_mode & stat.S_IXUSR
            path.chmod(0o755 if executable else 0o644)


#: Modules that ask importlib.metadata for their own version at import time. Importing
#: importlib.metadata (email, zipfile, csv, pathlib...) and searching sys.path for dist-info
#: costs ~10 ms of every deploy's start-up; the versions are pinned in requirements.txt, so
#: the build writes them in. The dist-info directories stay, for anything else that asks.
VERSION_LOOKUPS = {"pg8000/core.py": "pg8000", "scramp/__init__.py": "scramp"}
_VERSION_IMPORT = "from importlib.metadata import version\n"


def pin_version_lookups(site: Path) -> None:
    """Replace `from importlib.metadata import version` in VERSION_LOOKUPS by the installed version."""
    for relative, dist in VERSION_LOOKUPS.items():
        path = site / relative
        infos = sorted(site.glob(f"{dist}-*.dist-info"))
        if not path.is_file() or len(infos) != 1:
            raise BuildError(f"cannot pin the version lookup of {relative} (no single {dist} dist-info)")
        found = infos[0].name[len(dist) + 1:-len(".dist-info")]
        text = path.read_text(encoding="utf-8")
        if text.count(_VERSION_IMPORT) != 1:
            raise BuildError(f"{relative} no longer imports importlib.metadata.version as expected; update build.py")
        stub = f"def version(_name):  # pinned by pgmi's build.py (avoids importing importlib.metadata)\n" \
               f"    return {found!r}\n"
        path.write_text(text.replace(_VERSION_IMPORT, stub), encoding="utf-8")


# Module-level imports of the bundled driver that a deploy almost never needs, deferred to first
# use in the build (an installed checkout keeps the driver as published). Each stand-in forwards
# to the real object, so the driver behaves as published (tests/test_build.py compares them):
# - asn1crypto (with `inspect`) serves only SCRAM channel binding over TLS, and dateutil only
#   timestamps that strptime cannot read: together ~40 % of pg8000's own import time;
# - scramp (with unicodedata, stringprep, hmac, base64 and their extension modules) only a SCRAM
#   login, hashlib (OpenSSL's library) only an md5 login, json only json/jsonb values: a
#   deploy then imports hashlib for its checksums while the server builds the session API
#   (deploy/pipeline.py), and json not at all.
_DEFERRED_HELPER = (
    "class _PgmiDeferred:  # added by pgmi's build.py: imports its module on first attribute use\n"
    "    def __init__(self, module, name=None):\n"
    "        self._pgmi_target = (module, name)\n"
    "    def __getattr__(self, attr):\n"
    "        import importlib\n"
    "        module, name = self._pgmi_target\n"
    "        target = importlib.import_module(module)\n"
    "        return getattr(getattr(target, name) if name else target, attr)\n"
)
#: (file, the import line as published, its stand-in); each line must occur exactly once.
DEFERRED_IMPORTS = (
    ("scramp/core.py",
     "from asn1crypto.x509 import Certificate\n",
     _DEFERRED_HELPER + "Certificate = _PgmiDeferred('asn1crypto.x509', 'Certificate')\n"),
    ("pg8000/converters.py",
     "from dateutil.parser import ParserError, parse\n",
     ("class ParserError(ValueError):  # added by pgmi's build.py: dateutil's, re-raised by parse()\n"
     "    pass\n"
     "def parse(data):  # added by pgmi's build.py: dateutil imported when a timestamp needs it\n"
     "    from dateutil import parser\n"
     "    try:\n"
     "        return parser.parse(data)\n"
     "    except parser.ParserError as error:\n"
     "        raise ParserError(*error.args) from error\n")),
    ("pg8000/converters.py",
     "from json import dumps, loads\n",
     ("def dumps(*args, **kwargs):  # added by pgmi's build.py: json imported when a json value needs it\n"
     "    import json\n"
     "    return json.dumps(*args, **kwargs)\n"
     "def loads(*args, **kwargs):  # added by pgmi's build.py: json imported when a json value needs it\n"
     "    import json\n"
     "    return json.loads(*args, **kwargs)\n")),
    ("pg8000/core.py",
     "import scramp\n",
     _DEFERRED_HELPER + "scramp = _PgmiDeferred('scramp')\n"),
    ("pg8000/core.py",
     "from hashlib import md5\n",
     ("def md5(*args, **kwargs):  # added by pgmi's build.py: hashlib imported when an md5 login needs it\n"
     "    import hashlib\n"
     "    return hashlib.md5(*args, **kwargs)\n")),
)


def defer_imports(site: Path) -> None:
    """Replace each DEFERRED_IMPORTS import line by its stand-in; fail if a driver update moved it."""
    for relative, original, stand_in in DEFERRED_IMPORTS:
        path = site / relative
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if text.count(original) != 1:
            raise BuildError(f"{relative} no longer has the import build.py defers ({original.splitlines()[0]!r}); "
                             "update DEFERRED_IMPORTS")
        path.write_text(text.replace(original, stand_in), encoding="utf-8")


#: Modules of the bundled driver that register `functools.singledispatch` handlers by annotation
#: (`@f.register` over `def _(val: list)`), and how many. functools imports `typing` (~4 ms, 5 % of
#: an empty deploy) to read an annotation and, from Python 3.11 on, in every `register()` call. The
#: build names each type (`@f.register(list)`, read from the handler's one annotation) and gives the
#: module a stand-in singledispatch for plain classes: the same dispatch tables (tests/test_build.py
#: compares them with the published driver's), without typing.
ANNOTATED_DISPATCH = {"pg8000/converters.py": 14}
_DISPATCH_IMPORT = "from functools import singledispatch\n"
_DISPATCH_STAND_IN = (
    "class singledispatch:  # added by pgmi's build.py: functools.singledispatch for plain classes, without typing\n"
    "    def __init__(self, func):\n"
    "        self._pgmi_registry = {object: func}\n"
    "        self._pgmi_cache = {}\n"
    "        self.__wrapped__ = func\n"
    "        self.__name__, self.__qualname__, self.__doc__ = func.__name__, func.__qualname__, func.__doc__\n"
    "    @property\n"
    "    def registry(self):\n"
    "        from types import MappingProxyType\n"
    "        return MappingProxyType(self._pgmi_registry)\n"
    "    def register(self, cls):\n"
    "        if type(cls) is not type:  # an ABC, a union, an annotated function: functools' own cases\n"
    "            raise TypeError(f'pgmi build: singledispatch stand-in takes a plain class, not {cls!r}')\n"
    "        def add(func):\n"
    "            self._pgmi_registry[cls] = func\n"
    "            self._pgmi_cache.clear()\n"
    "            return func\n"
    "        return add\n"
    "    def dispatch(self, cls):  # plain classes only: the first of cls's MRO registered, as functools finds it\n"
    "        impl = self._pgmi_cache.get(cls)\n"
    "        if impl is None:\n"
    "            impl = next(self._pgmi_registry[c] for c in cls.__mro__ if c in self._pgmi_registry)\n"
    "            self._pgmi_cache[cls] = impl\n"
    "        return impl\n"
    "    def __call__(self, *args, **kwargs):\n"
    "        return self.dispatch(args[0].__class__)(*args, **kwargs)\n"
)


def _annotated_registrations(tree: ast.Module) -> list[tuple[ast.expr, str]]:
    """Each bare `@f.register` decorator of a singledispatch function `f`, with the source of the type
    to name: its handler's only annotation (None as `type(None)`, as get_type_hints reads it)."""
    dispatchers = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                   and any(isinstance(d, ast.Name) and d.id == "singledispatch" for d in node.decorator_list)}
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Attribute) and decorator.attr == "register"
                    and isinstance(decorator.value, ast.Name) and decorator.value.id in dispatchers):
                continue
            args = node.args.posonlyargs + node.args.args
            hints = [a.annotation for a in args + node.args.kwonlyargs if a.annotation is not None]
            annotation = args[0].annotation if args else None
            if node.returns is not None or hints != [annotation] or annotation is None:
                raise ValueError(f"line {node.lineno}: the handler must annotate its first parameter only")
            if isinstance(annotation, ast.Constant) and annotation.value is None:
                found.append((decorator, "type(None)"))
            elif isinstance(annotation, ast.Name):
                found.append((decorator, annotation.id))
            else:
                raise ValueError(f"line {node.lineno}: the annotation is not a plain class name")
    return found


def register_dispatch_types(site: Path) -> None:
    """Rewrite ANNOTATED_DISPATCH's `@f.register` decorators as `@f.register(<type>)` and give the module
    the stand-in singledispatch; fail if a driver update changed what they rely on."""
    for relative, expected in ANNOTATED_DISPATCH.items():
        path = site / relative
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        try:
            found = _annotated_registrations(ast.parse(text))
        except (SyntaxError, ValueError) as error:
            raise BuildError(f"{relative}: cannot name its singledispatch types ({error}); "
                             "update ANNOTATED_DISPATCH") from None
        if len(found) != expected:
            raise BuildError(f"{relative} has {len(found)} handlers registered by annotation, build.py expects "
                             f"{expected}; update ANNOTATED_DISPATCH")
        lines = text.splitlines(keepends=True)
        for decorator, type_source in found:  # one decorator per line: no position shifts another
            line = lines[decorator.lineno - 1]
            start, end = decorator.col_offset, decorator.end_col_offset
            if decorator.end_lineno != decorator.lineno or line[start - 1:end] != f"@{decorator.value.id}.register":
                raise BuildError(f"{relative}: line {decorator.lineno} is not a plain `@f.register`; "
                                 "update ANNOTATED_DISPATCH")
            lines[decorator.lineno - 1] = f"{line[:end]}({type_source}){line[end:]}"
        text = "".join(lines)
        if text.count(_DISPATCH_IMPORT) != 1:
            raise BuildError(f"{relative} no longer imports singledispatch as build.py expects; update build.py")
        path.write_text(text.replace(_DISPATCH_IMPORT, _DISPATCH_STAND_IN), encoding="utf-8")


#: pg8000's package `__init__` imports its DB-API layer (legacy.py, dbapi.py: ~1 ms of every start)
#: for names pgmi never uses: pgmi speaks pg8000.native. The build replaces that import by a
#: module `__getattr__` that loads the layer on the first use of one of those names, and lets the
#: package's own `connect()` find `Connection` through it.
_LEGACY_INIT = "pg8000/__init__.py"
_LEGACY_CONNECT = "    return Connection(\n"
_LEGACY_STAND_IN = (
    "_PGMI_LEGACY_NAMES = frozenset({names!r})  # added by pgmi's build.py, with __getattr__ below\n"
    "def __getattr__(name):  # added by pgmi's build.py: the DB-API layer loaded on first use\n"
    "    if name not in _PGMI_LEGACY_NAMES:\n"
    "        raise AttributeError(f\"module 'pg8000' has no attribute {{name!r}}\")\n"
    "    from pg8000 import legacy\n"
    "    value = globals()[name] = getattr(legacy, name)\n"
    "    return value\n"
)


def defer_legacy_api(site: Path) -> None:
    """Rewrite pg8000's `from pg8000.legacy import (...)` as a lazy module `__getattr__`; fail if a
    driver update changed what that relies on."""
    path = site / _LEGACY_INIT
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "pg8000.legacy"]
    others = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in imports
              and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    if (len(imports) != 1 or others or any(alias.asname for alias in imports[0].names)
            or text.count(_LEGACY_CONNECT) != 1):
        raise BuildError(f"{_LEGACY_INIT} no longer has the one DB-API import build.py defers; update defer_legacy_api")
    node = imports[0]
    names = sorted(alias.name for alias in node.names)
    lines = text.splitlines(keepends=True)
    text = "".join(lines[:node.lineno - 1]) + _LEGACY_STAND_IN.format(names=names) + "".join(lines[node.end_lineno:])
    path.write_text(text.replace(_LEGACY_CONNECT, '    return __getattr__("Connection")(\n'), encoding="utf-8")


def run_shiv(site: Path, output: Path, epoch: int) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    try:
        import shiv  # noqa: F401  (only to give a clear message if it is missing)
    except ImportError:
        raise BuildError("shiv is not installed: python3 -m pip install -r requirements-dev.txt") from None
    # No pip arguments: shiv packs the prepared site-packages as is (and has no -q; extra args go to pip).
    run([sys.executable, "-m", "shiv", "--site-packages", str(site), "--compile-pyc", "--reproducible",
         "-p", "/usr/bin/env python3", "-e", ENTRY_POINT, "-o", str(output)], env=env)


def add_prelude(shiv_output: Path, output: Path) -> None:
    """The launcher, then the archive copied entry by entry (same order, times, modes), the prelude
    prefixed to __main__.py."""
    with zipfile.ZipFile(shiv_output) as source, open(output, "wb") as fh:
        build_id = json.loads(source.read("environment.json"))["build_id"]
        fh.write(launcher(build_id))
        with zipfile.ZipFile(fh, "w") as target:
            seen_main = False
            for info in source.infolist():
                data = source.read(info)
                if info.filename == "__main__.py":
                    data = prelude(build_id).encode("utf-8") + data
                    seen_main = True
                entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                entry.compress_type = info.compress_type
                entry.create_system = 3  # Unix, on every build host (zipfile says 0 on Windows)
                # Modes as stage() normalised them; shiv's own bootstrap files keep their installed
                # modes, which follow the build host's umask: 0644, or 0755 when executable.
                executable = (info.external_attr >> 16) & 0o111
                entry.external_attr = (0o100755 if executable else 0o100644) << 16
                target.writestr(entry, data)
    if not seen_main:
        raise BuildError("shiv produced no __main__.py; is the pinned shiv version installed?")
    output.chmod(0o755)


def check_archive(path: Path) -> int:
    """Fail on anything that must not ship; returns the number of entries."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    problems = [n for n in names if n.endswith(NATIVE_SUFFIXES) or "__pycache__" in n or n.endswith(".pyc")]
    problems += [n for n in names if n.startswith("site-packages/bin/")]
    problems += [n for n in names if "/tests/" in n and not n.startswith("site-packages/pgmilib/")]
    if problems:
        raise BuildError(f"archive contains files that must not ship: {', '.join(problems[:5])}")
    for kind in RESOURCE_DIRS:
        wanted = [p for p in (REPO / kind).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        prefix = f"site-packages/pgmilib/{kind}/"
        if len([n for n in names if n.startswith(prefix)]) != len(wanted):
            raise BuildError(f"archive is missing files of {kind}/ (expected {len(wanted)} under {prefix})")
    return len(names)


def build(output: Path, deps_cache: Path) -> str:
    """Build the zipapp at `output`; returns its sha256."""
    commit, epoch = build_identity()
    deps = install_dependencies(deps_cache)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pgmi-build-") as tmp:
        site = Path(tmp, "site-packages")
        stage(site, deps, commit, epoch)
        raw = Path(tmp, "shiv.pyz")
        run_shiv(site, raw, epoch)
        partial = output.with_name(output.name + ".partial")
        add_prelude(raw, partial)
        check_archive(partial)
        partial.replace(output)
    return hashlib.sha256(output.read_bytes()).hexdigest()


def _shiv_version() -> str:
    try:
        from shiv import __version__
    except ImportError:
        return "?"
    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the single-file pgmi zipapp.")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "dist" / "pgmi", help="default: dist/pgmi")
    parser.add_argument("--deps-cache", type=Path, default=REPO / "build",
                        help="where pip-installed dependencies are cached (default: build/)")
    args = parser.parse_args(argv)
    try:
        digest = build(args.output.resolve(), args.deps_cache.resolve())
    except BuildError as error:
        print(f"build.py: error: {error}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size
    print(f"{args.output}: {size} bytes, commit {build_identity()[0]}, built with shiv {_shiv_version()} "
          f"and zlib {zlib.ZLIB_RUNTIME_VERSION}; its SHA-256 (check a copy with sha256sum):")
    print(f"{digest}  {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
