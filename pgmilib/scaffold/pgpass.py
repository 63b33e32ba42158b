"""Save a wizard password to the libpq password file (config.md §7.3), only when asked.

The new line goes first (libpq uses the first match) and replaces any line for the same
host:port:database:user; the file is written beside the original and renamed over it, 0600.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def pgpass_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("PGPASSFILE"):
        return Path(env["PGPASSFILE"])
    if os.name == "nt" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "postgresql" / "pgpass.conf"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".pgpass"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def save_password(host: str, port: int, database: str, user: str, password: str,
                  environ: Mapping[str, str] | None = None) -> Path:
    """Upsert `host:port:database:user:password`; returns the file written. Raises OSError."""
    path = pgpass_path(environ)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = ":".join(_escape(v) for v in (host, str(port), database, user)) + ":"
    try:
        old = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old = []
    lines = [prefix + _escape(password)] + [line for line in old if not line.startswith(prefix)]
    temp = path.with_name(path.name + ".pgmi-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
