"""A throwaway local PostgreSQL cluster: for the test suite, `deploy --ephemeral` and `make demo`.

Why it looks the way it does:

- `initdb` is the slow part (0.6 s on tmpfs, 1-2 s on a disk); copying an already
  initialised data directory is ~10x faster. So the first start initialises a *template*
  once per server version (keyed by `initdb --version` and the initdb options) and every
  cluster after that is a `cp -a` of it. The template is published with an atomic
  rename, so concurrent test runs never see a half-written one and need no lock.
- The cluster lives in a fresh temporary directory, on tmpfs (/dev/shm) when there is one,
  and the server listens on a unix socket inside that directory (TCP only on request), so
  parallel runs cannot collide on a port.
- Durability is switched off (fsync, synchronous_commit, full_page_writes): the data is
  thrown away anyway. `max_locks_per_transaction = 1024` because one-transaction deploys
  of large projects exhaust the default 64 (feasibility notes, section 4).
- PostgreSQL refuses to run as root; as root the server programs run as the `postgres`
  system user, and the cluster directory is handed to that user.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from pgmilib.errors import PgmiError

_LIB_DIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RPM (PGDG)
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
    "/usr/local/pgsql/bin",
)
_TOOLS = ("initdb", "pg_ctl", "postgres")
_SERVER_USER = "postgres"  # the system account the server runs as when we are root
_SOCKET_PATH_MAX = 103  # sun_path is 104 bytes on macOS/BSD, 108 on Linux; stay under both
_TEMPLATE_PREFIX = "pgmi-template-"


class ClusterError(PgmiError):
    """The throwaway cluster could not be set up (missing binaries, initdb/pg_ctl failure)."""


def find_pg_bin() -> str | None:
    """Directory holding `initdb`, `pg_ctl` and `postgres`; None if there is none.

    Order: $PGMI_PG_BIN, the directory of `initdb` on PATH (symlinks resolved, because
    Debian links only some tools into /usr/bin), then the usual lib dirs, newest first.
    """
    explicit = os.environ.get("PGMI_PG_BIN")
    if explicit:
        return explicit if _has_tools(Path(explicit)) else None
    on_path = shutil.which("initdb")
    if on_path:
        for directory in (Path(on_path).resolve().parent, Path(on_path).parent):
            if _has_tools(directory):
                return str(directory)
    candidates: list[str] = []
    for pattern in _LIB_DIRS:
        candidates.extend(glob.glob(pattern))
    for directory in sorted(candidates, key=_version_key, reverse=True):
        if _has_tools(Path(directory)):
            return directory
    return None


def _has_tools(directory: Path) -> bool:
    return all(os.access(directory / tool, os.X_OK) for tool in _TOOLS)


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in path).split()
    return tuple(int(d) for d in digits) or (0,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_parent() -> str:
    """Where clusters and templates go: $PGMI_CLUSTER_TMP, else tmpfs (/dev/shm), else $TMPDIR."""
    explicit = os.environ.get("PGMI_CLUSTER_TMP")
    if explicit:
        return explicit
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def _server_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server programs as: None when we are not root (run as ourselves)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam(_SERVER_USER)
    except KeyError:
        raise ClusterError(
            f"running as root, but PostgreSQL refuses to run as root and there is no {_SERVER_USER!r} "
            f"system user to run it as; create one (useradd --system --user-group {_SERVER_USER}) "
            "or run as a normal user"
        ) from None
    return pw.pw_uid, pw.pw_gid


def _tail(text: str, limit: int = 600) -> str:
    """The telling part of a program's output, on one line: its error lines, else its last lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if any(w in line.lower() for w in ("error", "fatal", "could not", "failed"))]
    text = " | ".join(telling or lines[-3:])
    return text if len(text) <= limit else "..." + text[-limit:]


@dataclass
class Cluster:
    """One throwaway cluster. Use as a context manager, or call start()/stop()."""

    base_dir: str | None = None  # parent for the temp dir; default $PGMI_CLUSTER_TMP, tmpfs, $TMPDIR
    listen_tcp: bool = False  # also listen on 127.0.0.1:<port>
    port: int | None = None  # default: a free port (also names the unix socket)
    settings: dict[str, str] = field(default_factory=dict)  # extra `name = value` server settings
    user: str = "postgres"  # database superuser created by initdb
    dir: str = ""  # set by start()
    pg_bin: str = ""  # default: find_pg_bin()
    use_template: bool = True  # copy a cached initdb result instead of running initdb each time

    @property
    def socket_dir(self) -> str:
        return self.dir

    @property
    def data_dir(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "log")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq key=value string reaching the server over its unix socket."""
        return f"host={self.dir} port={self.port} user={self.user} dbname={dbname} sslmode=disable"

    def url(self, dbname: str = "postgres") -> str:
        """postgresql:// URI reaching the server over its unix socket."""
        from urllib.parse import quote

        return f"postgresql://{self.user}@{quote(self.dir, safe='')}:{self.port}/{dbname}?sslmode=disable"

    def conn_kwargs(self, database: str = "postgres") -> dict:
        """Keyword arguments for pg8000.native.Connection (ssl off: 4 ms instead of 30 ms per connect)."""
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
    def start(self) -> Self:
        """Create the data directory (template copy or initdb) and start the server; wait until ready."""
        if self.dir:
            raise ClusterError(f"cluster already started in {self.dir}")
        self.pg_bin = self.pg_bin or find_pg_bin() or ""
        if not self.pg_bin:
            raise ClusterError(
                "no PostgreSQL server binaries found (initdb, pg_ctl, postgres on PATH, in $PGMI_PG_BIN or "
                "under /usr/lib/postgresql/*/bin); install them, e.g. apt-get install postgresql"
            )
        missing = [tool for tool in _TOOLS if not os.access(os.path.join(self.pg_bin, tool), os.X_OK)]
        if missing:
            raise ClusterError(f"PostgreSQL binaries missing in {self.pg_bin}: {', '.join(missing)}")
        account = _server_account()
        parent = self.base_dir or _default_parent()
        if not os.path.isdir(parent):
            raise ClusterError(f"cluster base directory {parent} does not exist")
        auto_port = self.port is None
        self.port = self.port or _free_port()
        self.dir = tempfile.mkdtemp(prefix="pgmi-pg-", dir=parent)
        atexit.register(self.stop)  # a crash or Ctrl-C must not leave a server behind
        try:
            sock = os.path.join(self.dir, f".s.PGSQL.{self.port}")
            if len(sock) > _SOCKET_PATH_MAX:
                raise ClusterError(f"socket path {sock} is too long for a unix socket; use a shorter base_dir")
            os.chmod(self.dir, 0o755)
            if account:
                os.chown(self.dir, *account)
            self._make_data_dir(account, parent)
            for attempt in range(3):
                self._write_settings()
                try:
                    self._run([self._tool("pg_ctl"), "-D", self.data_dir, "-l", self.log_path, "-w", "-t", "60",
                               "start"], account, what="pg_ctl start")
                    break
                except ClusterError:
                    # With TCP, another process may have taken the free port in between: pick another.
                    if not (self.listen_tcp and auto_port and attempt < 2):
                        raise
                    self.port = _free_port()
        except BaseException:
            self.stop()
            raise
        return self

    def detach(self) -> None:
        """Leave the server running after this process exits (`deploy --ephemeral --keep`)."""
        atexit.unregister(self.stop)

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete the directory. Idempotent."""
        if not self.dir:
            return
        atexit.unregister(self.stop)
        try:
            if self._postmaster_pid() is not None:
                pg_ctl = self._tool("pg_ctl")
                for mode in ("fast", "immediate"):
                    try:
                        result = self._run([pg_ctl, "-D", self.data_dir, "-m", mode, "-w", "-t", "10", "stop"],
                                           _server_account(), what="pg_ctl stop", check=False)
                    except (OSError, subprocess.SubprocessError, PgmiError):
                        continue
                    if result.returncode == 0:
                        break
                self._kill_leftover()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- internals -------------------------------------------------------------------
    def _tool(self, name: str) -> str:
        return os.path.join(self.pg_bin, name)

    def _initdb_args(self, data_dir: str, locale: str) -> list[str]:
        locale_args = ["--no-locale"] if locale == "C" else [f"--locale={locale}"]
        return [self._tool("initdb"), "-D", data_dir, "-U", self.user, "-A", "trust", "-E", "UTF8",
                *locale_args, "--no-sync"]

    def _initdb(self, data_dir: str, account: tuple[int, int] | None) -> None:
        """initdb with C.UTF-8 (Unicode-aware upper/lower), falling back to plain C where that locale is absent."""
        try:
            self._run(self._initdb_args(data_dir, "C.UTF-8"), account, what="initdb")
        except ClusterError as error:
            if "invalid locale" not in str(error).lower():
                raise
            shutil.rmtree(data_dir, ignore_errors=True)
            self._run(self._initdb_args(data_dir, "C"), account, what="initdb")

    def _make_data_dir(self, account: tuple[int, int] | None, parent: str) -> None:
        if not self.use_template:
            self._initdb(self.data_dir, account)
            return
        template = self._template(account, parent)
        if template is None:
            self._initdb(self.data_dir, account)
            return
        try:
            subprocess.run(["cp", "-a", template, self.data_dir], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):  # no cp -a here: copy in Python, then fix owners
            shutil.rmtree(self.data_dir, ignore_errors=True)
            shutil.copytree(template, self.data_dir, symlinks=True)
            if account:
                for root, dirs, files in os.walk(self.data_dir):
                    for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                        os.lchown(name, *account)
        os.chmod(self.data_dir, 0o700)

    def _template(self, account: tuple[int, int] | None, parent: str) -> str | None:
        """Path of the cached initdb data directory for this server version, creating it if needed.

        Returns None when the cache cannot be trusted (owned by someone else, writable by
        others): then the caller runs initdb directly, which is slower but always correct.
        """
        version = self._run([self._tool("initdb"), "--version"], None, what="initdb --version").stdout.strip()
        owner = account[0] if account else os.getuid()
        key = hashlib.sha256(
            "\0".join([version, os.path.realpath(self.pg_bin), self.user, str(owner), "v1"]).encode()
        ).hexdigest()[:16]
        final = os.path.join(parent, _TEMPLATE_PREFIX + key)
        if not os.path.isdir(final):
            staging = tempfile.mkdtemp(prefix=f"{_TEMPLATE_PREFIX}{key}.tmp-", dir=parent)
            try:
                os.chmod(staging, 0o700)
                if account:
                    os.chown(staging, *account)
                data = os.path.join(staging, "data")
                self._initdb(data, account)
                os.chmod(data, 0o700)
                try:
                    os.rename(data, final)  # atomic publish; fails if another run published first
                except OSError:
                    if not os.path.isdir(final):
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return final if _trustworthy(final, owner) else None

    def _write_settings(self) -> None:
        options = {
            "listen_addresses": "127.0.0.1" if self.listen_tcp else "",
            "unix_socket_directories": self.dir,
            "port": str(self.port),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_locks_per_transaction": "1024",
            # Shared-memory segments as files in the data dir: a killed server leaks nothing into /dev/shm.
            "dynamic_shared_memory_type": "mmap",
            **self.settings,
        }
        conf = "".join(f"{name} = '{str(value).replace(chr(39), chr(39) * 2)}'\n" for name, value in options.items())
        # postgresql.auto.conf is read last, so these win over the template's postgresql.conf.
        Path(self.data_dir, "postgresql.auto.conf").write_text(
            "# Written by pgmi's throwaway cluster (pgmilib/cluster.py).\n" + conf, encoding="utf-8"
        )

    def _run(self, cmd: list[str], account: tuple[int, int] | None, *, what: str,
             check: bool = True) -> subprocess.CompletedProcess:
        """Run a server program (as the server account when root); ClusterError with its output on failure."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGDATA/PGPORT
        env["LC_ALL"] = "C"  # stable, untranslated messages from the server programs
        kwargs: dict = {}
        if account:
            kwargs.update(user=account[0], group=account[1], extra_groups=[])
        try:
            result = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    text=True, env=env, cwd=self.dir or None, timeout=120, **kwargs)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ClusterError(f"{what} failed: {error}") from None
        if check and result.returncode != 0:
            log = ""
            if self.dir and os.path.exists(self.log_path):
                log = "; server log: " + _tail(Path(self.log_path).read_text(errors="replace"))
            hint = ""
            if account and "permission denied" in (result.stdout + log).lower():
                hint = (f" (as root the server runs as {_SERVER_USER!r}, which must be able to reach {self.dir}: "
                        "use a base directory outside root-only paths)")
            raise ClusterError(f"{what} failed (exit {result.returncode}): {_tail(result.stdout)}{log}{hint}")
        return result

    def _postmaster_pid(self) -> int | None:
        """PID of the running postmaster of this data dir, or None (no pid file, dead, or a zombie)."""
        try:
            pid = int(Path(self.data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:  # Linux: a killed server not yet reaped by init still answers kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (OSError, IndexError):
            pass
        return pid

    def _kill_leftover(self) -> None:
        """SIGKILL the postmaster if pg_ctl could not stop it (e.g. pg_ctl vanished)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pid = self._postmaster_pid()
            if pid is None:
                return
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                return
            time.sleep(0.05)


def _trustworthy(path: str, owner: int) -> bool:
    """A cached template is used only if it is a real directory owned by `owner` and not writable by others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == owner and not st.st_mode & 0o022


def clear_templates(parent: str | None = None) -> int:
    """Delete cached initdb templates (`make clean`); returns how many were removed."""
    removed = 0
    for path in glob.glob(os.path.join(parent or _default_parent(), _TEMPLATE_PREFIX + "*")):
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed
