"""What is settled before a project is read: its directory and deploy.sql, and the caller's
environment settings for reading it (PGMI_MAX_FILE_SIZE, PGMI_CACHE_DIR).

Kept apart from the scan (project/scan.py) and the checksums (project/checksums.py) so that a
deploy settles all of this before it connects without importing the scan's machinery (hashlib
and its OpenSSL library): that import then happens while the server builds the session API
(deploy/pipeline.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from pgmilib.errors import ConfigError, DeploySqlMissing, PgmiError

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024


def validate_root(root: str | Path, *, require_deploy_sql: bool = True) -> tuple[Path, Path]:
    """The project directory and its deploy.sql, or the documented error."""
    text = str(root)
    base = Path(root)
    if not base.exists():
        raise ConfigError(f'project path "{text}" does not exist')
    if not base.is_dir():
        raise ConfigError(f'"{text}" is a file; pass the project directory')
    deploy = base / "deploy.sql"
    if not require_deploy_sql:
        return base, deploy
    try:
        mode = os.lstat(deploy).st_mode
    except FileNotFoundError:
        expected = f"{text.rstrip('/')}/deploy.sql" if text.rstrip("/") else "/deploy.sql"
        error = DeploySqlMissing(f"deploy.sql not found in {text}")
        error.trailer.append(f"expected: {expected} — run `pgmi init` to scaffold one")
        raise error from None
    except OSError as error:
        raise PgmiError(f"cannot read {deploy}: {error.strerror or error}") from error
    if stat.S_ISLNK(mode):  # refused like every other symlink: it could point out of the project
        raise PgmiError(symlink_refusal("./deploy.sql"))
    if stat.S_ISDIR(mode):
        raise PgmiError(f"{deploy} is a directory, expected a regular file")
    return base, deploy


def symlink_refusal(shown: str) -> str:
    """The one wording for a refused symlink, deploy.sql (here) and every scanned file (scan.py)."""
    return f"refusing to read symlink {shown} (symlinks are rejected by the scanner to avoid path-escape)"


def max_file_size_from(environ: Mapping[str, str]) -> int:
    """`environ`'s PGMI_MAX_FILE_SIZE when it is a positive integer, else the 10 MiB default.

    `environ` is the caller's environment (read once by the CLI or the MCP server)."""
    raw = environ.get("PGMI_MAX_FILE_SIZE", "").strip()
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_FILE_SIZE
    return value if value > 0 else DEFAULT_MAX_FILE_SIZE


def cache_dir_from(environ: Mapping[str, str]) -> Path | None:
    """Where checksum caches live, as `environ` says (the caller's environment, read once by the
    CLI or the MCP server); None: no cache (`PGMI_CACHE_DIR=off`, or no usable home directory)."""
    setting = environ.get("PGMI_CACHE_DIR", "")
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "pgmi"
    return directory if directory.is_absolute() else None
