"""The password file (~/.pgpass or $PGPASSFILE), with libpq's matching and permission rules."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

from pgmilib.errors import go_quote
from pgmilib.redact import register_secret


def home_dir(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


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
                  out: Any = None) -> str | None:
    """Password for this connection from $PGPASSFILE or ~/.pgpass, libpq rules; None if no match.

    First line whose four fields each equal the value or are `*` wins; a Unix-socket host
    matches `localhost`. Like libpq (and unlike the original, which followed pgx), a file
    readable by group or others is ignored with a warning: a password file anyone can read
    is a leak, and silently using it would hide that.
    """
    path = environ.get("PGPASSFILE") or os.path.join(home_dir(environ), ".pgpass")
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
    match_host = "localhost" if (not host or host.startswith("/")) else host
    wanted = (match_host, str(port), database, user)
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


