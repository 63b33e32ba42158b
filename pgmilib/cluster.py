"""A throwaway local PostgreSQL cluster: for the test suite, `deploy --ephemeral` and `make demo`.

Finds the server binaries (PATH, then the usual Debian/RPM/Homebrew lib dirs), runs
`initdb` into a temporary directory (tmpfs when available), and starts the server on a
unix socket inside that directory (plus, optionally, a loopback TCP port). As root the
server runs as the `postgres` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PgmiError

_LIB_DIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RPM (PGDG)
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
    "/usr/local/pgsql/bin",
)


def find_pg_bin() -> str | None:
    """Directory holding `initdb` and `pg_ctl`, newest version first; None if absent."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return str(Path(on_path).resolve().parent) if _has_tools(Path(on_path).resolve().parent) else str(
            Path(on_path).parent
        )
    candidates: list[str] = []
    for pattern in _LIB_DIRS:
        candidates.extend(glob.glob(pattern))
    for directory in sorted(candidates, key=_version_key, reverse=True):
        if _has_tools(Path(directory)):
            return directory
    return None


def _has_tools(directory: Path) -> bool:
    return (directory / "initdb").exists() and (directory / "pg_ctl").exists()


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in path).split()
    return tuple(int(d) for d in digits) or (0,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """One throwaway cluster. Use as a context manager, or call start()/stop()."""

    base_dir: str | None = None  # parent for the temp dir; default tmpfs (/dev/shm) or $TMPDIR
    listen_tcp: bool = False  # also listen on 127.0.0.1:<port>
    port: int | None = None  # default: a free port (also names the unix socket)
    settings: dict[str, str] = field(default_factory=dict)  # extra `-c name=value` server settings
    user: str = "postgres"  # database superuser created by initdb
    dir: str = ""  # set by start()
    pg_bin: str = ""

    @property
    def socket_dir(self) -> str:
        return self.dir

    @property
    def data_dir(self) -> str:
        return os.path.join(self.dir, "data")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq key=value string reaching the server over its unix socket."""
        return f"host={self.dir} port={self.port} user={self.user} dbname={dbname} sslmode=disable"

    def url(self, dbname: str = "postgres") -> str:
        """postgresql:// URI reaching the server over its unix socket."""
        from urllib.parse import quote

        return f"postgresql://{self.user}@{quote(self.dir, safe='')}:{self.port}/{dbname}?sslmode=disable"

    def conn_kwargs(self, database: str = "postgres") -> dict:
        """Keyword arguments for pg8000.native.Connection."""
        return {
            "user": self.user,
            "database": database,
            "unix_sock": os.path.join(self.dir, f".s.PGSQL.{self.port}"),
            "ssl_context": False,
        }

    def env(self) -> dict[str, str]:
        """PG* variables that point libpq-style clients (psql, pgmi) at this server."""
        return {"PGHOST": self.dir, "PGPORT": str(self.port), "PGUSER": self.user, "PGSSLMODE": "disable"}

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> "Cluster":
        self.pg_bin = self.pg_bin or find_pg_bin() or ""
        if not self.pg_bin:
            raise PgmiError(
                "no PostgreSQL server binaries found (initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin); "
                "install them, e.g. apt-get install postgresql"
            )
        parent = self.base_dir or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        self.dir = tempfile.mkdtemp(prefix="pgmi-pg-", dir=parent)
        os.chmod(self.dir, 0o755)
        self.port = self.port or _free_port()
        as_root = os.geteuid() == 0
        if as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(
            [f"{self.pg_bin}/initdb", "-D", self.data_dir, "-U", self.user, "-A", "trust", "-E", "UTF8",
             "--locale=C.UTF-8", "--no-sync"]
        )
        options = {
            "listen_addresses": "127.0.0.1" if self.listen_tcp else "",
            "unix_socket_directories": self.dir,
            "port": str(self.port),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_locks_per_transaction": "1024",
            **self.settings,
        }
        conf = "".join(f"{k} = '{v}'\n" for k, v in options.items())
        with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a", encoding="utf-8") as fh:
            fh.write(conf)
        self._run([f"{self.pg_bin}/pg_ctl", "-D", self.data_dir, "-l", os.path.join(self.dir, "log"), "-w",
                   "-t", "60", "start"])
        return self

    def stop(self) -> None:
        if not self.dir:
            return
        try:
            self._run([f"{self.pg_bin}/pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"], check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def _run(self, cmd: list[str], check: bool = True) -> None:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and result.returncode != 0:
            log = ""
            log_path = os.path.join(self.dir, "log")
            if os.path.exists(log_path):
                log = Path(log_path).read_text(errors="replace")[-2000:]
            raise PgmiError(f"{os.path.basename(cmd[-1] if 'initdb' not in cmd[0] else 'initdb')} failed: "
                            f"{result.stdout.strip()[-2000:]} {log}".strip())

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
