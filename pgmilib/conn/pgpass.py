"""The password file (~/.pgpass or $PGPASSFILE): where it is, libpq's matching, escaping and
permission rules, and the one writer (the wizards' "save password").

One module for reading and writing, so a line pgmi writes is a line its own look-up (and
libpq's) matches: the same path rule, the same escaping, the same host rule.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath

from pgmilib.errors import go_quote
from pgmilib.fileio import atomic_write
from pgmilib.redact import register_secret

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

#: The platform's rule applies unless a caller says which (tests hold both branches anywhere).
ON_WINDOWS = os.name == "nt"


def home_dir(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def pgpass_path(environ: Mapping[str, str] | None = None, passfile: str = "", *,
                windows: bool | None = None) -> Path:
    """libpq's rule: the `passfile` connection key, else $PGPASSFILE, else
    %APPDATA%\\postgresql\\pgpass.conf on Windows, else ~/.pgpass.

    `windows` defaults to the real platform; tests pass it to check either branch anywhere.
    The result is a PureWindowsPath on the Windows branch when run elsewhere.
    """
    env = os.environ if environ is None else environ
    on_windows = ON_WINDOWS if windows is None else windows
    if passfile:
        return Path(os.path.expanduser(passfile))
    if env.get("PGPASSFILE"):
        return Path(env["PGPASSFILE"])
    if on_windows and env.get("APPDATA"):
        return _windows_path(env["APPDATA"], "postgresql", "pgpass.conf")
    return Path(home_dir(env)) / ".pgpass"


def _windows_path(*parts: str) -> Path:
    path = PureWindowsPath(*parts)
    return Path(path) if ON_WINDOWS else path  # type: ignore[return-value]


def match_host(host: str) -> str:
    """The host field a connection is matched by: libpq matches a unix-socket directory (or no
    host) as `localhost`, never as the directory itself."""
    return "localhost" if (not host or host.startswith("/")) else host


def escape_field(value: str) -> str:
    """`\\` and `:` escaped, as the reader (`_pgpass_fields`) and libpq expect."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _pgpass_fields(line: str) -> list[str]:
    """Split a .pgpass line at unescaped ':'; `\\:` and `\\\\` are literal."""
    out, cur = [], []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if ch == ":" and len(out) < 4:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def pgpass_lookup(host: str, port: int, database: str, user: str, environ: Mapping[str, str],
                  out: Any = None, passfile: str = "") -> str | None:
    """Password for this connection from the password file (`pgpass_path`), libpq rules; None if no match.

    First line whose four fields each equal the value or are `*` wins; a Unix-socket host
    matches `localhost`. Like libpq (and unlike the original, which followed pgx), a file
    readable by group or others is ignored with a warning: a password file anyone can read
    is a leak, and silently using it would hide that.
    """
    path = str(pgpass_path(environ, passfile))
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        if out is not None:
            out.warn(f"password file {go_quote(path)} is not a plain file; ignoring it")
        return None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        if out is not None:
            out.warn(f"password file {go_quote(path)} has group or world access; permissions should be "
                     "u=rw (0600) or less; ignoring it")
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    wanted = (match_host(host), str(port), database, user)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = _pgpass_fields(line)
        if len(parts) != 5:
            continue
        if all(p == "*" or p == w for p, w in zip(parts[:4], wanted)):
            register_secret(parts[4])
            return parts[4]
    return None


def save_password(host: str, port: int, user: str, password: str,
                  environ: Mapping[str, str] | None = None) -> Path:
    """Upsert `host:port:*:user:password` first in the file (libpq uses the first match); 0600, atomic.

    The database field is `*`: a deploy connects to more than one database with the same
    role and password (the maintenance database to create or drop the target, then the
    target), and a line for the target alone leaves the first of those without a password.
    A password belongs to the role on that server, not to one database. The host is
    written as libpq matches it (`match_host`). Any earlier line for the same
    host:port:*:user is replaced. Returns the file written; raises OSError.
    """
    path = pgpass_path(environ)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = ":".join(escape_field(v) for v in (match_host(host), str(port), "*", user)) + ":"
    try:
        old = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old = []
    lines = [prefix + escape_field(password)] + [line for line in old if not line.startswith(prefix)]
    return atomic_write(path, "\n".join(lines) + "\n", mode=0o600)
