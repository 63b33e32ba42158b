"""A transaction-mode pooler is refused before anything is loaded; a session-mode pool works.

Real PgBouncer (Debian package `pgbouncer`), started here with a generated ini on a free
127.0.0.1 port in front of the test cluster's unix socket, or on a unix socket of its own: there
a local deploy sends the session API behind the login (conn/early.py), before it knows which
server session runs it, and the pooler must end up with none of it (sql/session_ahead.sql).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from projects import query, write_project

INSTALL = "apt-get install -y pgbouncer"


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
                                                if os.access(p, os.X_OK)), None)
    if not found:
        # CI installs it (.ci/run) and must never skip; elsewhere it is optional (README), like openssl.
        if os.environ.get("CI"):
            pytest.fail(f"pgbouncer is not installed; these tests need a real one: {INSTALL}", pytrace=False)
        pytest.skip(f"pgbouncer is not installed (optional): {INSTALL}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """One pgbouncer process in front of `pg` (host = its socket directory or its TCP host)."""

    def __init__(self, pg, mode: str, transport: str = "tcp") -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgmi-pgbouncer-"))
        self.transport = transport
        listen = (f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n" if transport == "tcp"
                  else f"listen_addr =\nlisten_port = {self.port}\nunix_socket_dir = {self.dir}\n")
        env = pg.env()
        user = env["PGUSER"]
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={env['PGHOST']} port={env['PGPORT']}\n"
            "[pgbouncer]\n"
            + listen +
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\n"
            f"pool_mode = {mode}\ndefault_pool_size = 5\nmax_client_conn = 50\n"
            "ignore_startup_parameters = extra_float_digits, options\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        command = [_pgbouncer_binary(), str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root; the cluster's account will do
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            for name in os.listdir(self.dir):
                os.chown(self.dir / name, account.pw_uid, account.pw_gid)
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                if transport == "tcp":
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                else:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                        probe.settimeout(1)
                        probe.connect(str(self.dir / f".s.PGSQL.{self.port}"))
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "pgbouncer.log")
                    output = self.process.stdout.read().decode() if self.process.stdout else ""
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {output} {log.read_text() if log.exists() else ''}")
                time.sleep(0.1)

    def env(self) -> dict[str, str]:
        return {"PGHOST": "127.0.0.1" if self.transport == "tcp" else str(self.dir), "PGPORT": str(self.port)}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pgbouncer(pg):
    started: list[PgBouncer] = []

    def start(mode: str, transport: str = "tcp") -> PgBouncer:
        bouncer = PgBouncer(pg, mode, transport)
        started.append(bouncer)
        return bouncer

    yield start
    for bouncer in started:
        bouncer.stop()


DEPLOY = "BEGIN;\nCREATE TABLE through_pool(id int);\nCOMMIT;\n"


def _exists(pg, db: str, relation: str) -> bool:
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(db))
    try:
        return c.run("SELECT to_regclass(:r) IS NOT NULL", r=relation)[0][0]
    finally:
        c.close()


def _api_tables(pg, db: str) -> int:
    """The session API's tables in any session of `db` (a pooler's server sessions included)."""
    return query(pg, db, "SELECT count(*) FROM pg_class WHERE relname = '_pgmi_source'")[0][0]


TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "unix socket"])


@TRANSPORTS
def test_transaction_mode_pooler_is_refused_before_loading(tmp_path, pg, pgbouncer, create_database, run_pgmi,
                                                           transport):
    bouncer = pgbouncer("transaction", transport)
    db = create_database()
    proj = write_project(tmp_path / "p", {"a.sql": "SELECT 1;\n"}, DEPLOY)
    r = run_pgmi("deploy", str(proj), "-d", db, "--json", env=bouncer.env())
    assert r.returncode == 10, r.stderr
    assert "transaction-mode connection pooler" in r.stderr
    assert "pool_mode = session" in r.stderr and "directly to PostgreSQL" in r.stderr  # what to change
    assert "Traceback" not in r.stderr
    assert "Loaded" not in r.stderr  # refused before the session API or any file was loaded
    assert not _exists(pg, db, "through_pool")
    # The pooler keeps its server sessions open: none holds the session API. On the unix socket
    # it went out behind the login, ran in one of them, and was rolled back there.
    assert _api_tables(pg, db) == 0
    r = run_pgmi("deploy", str(proj), "-d", db, "-v", env=bouncer.env())
    assert r.returncode == 10
    assert ("sent behind the login did not stay" in r.stderr) == (transport == "unix socket")


@TRANSPORTS
def test_session_mode_pool_deploys(tmp_path, pg, pgbouncer, create_database, run_pgmi, transport):
    bouncer = pgbouncer("session", transport)
    db = create_database()
    proj = write_project(tmp_path / "p", {"a.sql": "SELECT 1;\n"}, DEPLOY)
    r = run_pgmi("deploy", str(proj), "-d", db, "-v", env=bouncer.env())
    assert r.returncode == 0, r.stderr
    assert "a proxy or pooler is in between" in r.stderr  # the second-connection probe really ran
    assert ("sent behind the login did not stay" in r.stderr) == (transport == "unix socket")
    assert "Loaded 1 files" in r.stderr
    assert _exists(pg, db, "through_pool")


def test_session_mode_pool_without_a_free_server_session_still_deploys(tmp_path, pg, pgbouncer, create_database,
                                                                        run_pgmi):
    """pool size 1: the probe's second client waits for a server session, times out, and that means 'pinned'."""
    bouncer = pgbouncer("session")
    ini = bouncer.dir / "pgbouncer.ini"
    ini.write_text(ini.read_text().replace("default_pool_size = 5", "default_pool_size = 1"))
    bouncer.process.send_signal(1)  # SIGHUP: reload the ini
    time.sleep(0.5)
    db = create_database()
    proj = write_project(tmp_path / "p", {}, DEPLOY)
    r = run_pgmi("deploy", str(proj), "-d", db, "-v", env=bouncer.env())
    assert r.returncode == 0, r.stderr
    assert "got no server session in time" in r.stderr
    assert _exists(pg, db, "through_pool")


# ---- the decision itself, with a scripted session (pure) -------------------------------------


class _Scripted:
    """Answers the probe queries from a script: pids (and whether the mark survives) per round trip."""

    def __init__(self, pids: list[int], keep_mark: bool = True, announced: int | None = None) -> None:
        self.pids = list(pids)
        self.keep_mark = keep_mark
        self.backend_pid = announced if announced is not None else pids[0]
        self.mark = None

    def run(self, sql: str, **params):
        pid = self.pids.pop(0)
        if "set_config" in sql:
            self.mark = params["mark"]
            return [[pid, self.mark]]
        return [[pid, self.mark if self.keep_mark else None]]


def _check(conn) -> list[str]:
    import io

    from pgmilib.deploy import pooler
    from pgmilib.output import Output

    opened: list[str] = []

    def open_probe():
        opened.append("probe")
        raise AssertionError("no second connection expected")

    pooler.check(conn, open_probe, Output(stderr=io.StringIO()), where="h:6432")
    return opened


def test_a_direct_server_costs_no_extra_connection():
    assert _check(_Scripted([41, 41])) == []


@pytest.mark.parametrize("conn", [_Scripted([41, 42]), _Scripted([41, 41], keep_mark=False)],
                         ids=["pid changed", "mark lost"])
def test_a_moved_session_is_refused_without_a_second_connection(conn):
    from pgmilib.deploy.pooler import PoolerDetected

    with pytest.raises(PoolerDetected, match="transaction-mode connection pooler") as caught:
        _check(conn)
    assert "h:6432" in caught.value.message and caught.value.trailer


def test_the_api_sent_behind_the_login_stays_in_no_pooled_session(pg, pgbouncer, create_database):
    """Behind a unix-socket pooler the API sent ahead runs in a server session the pooler picked,
    which the login's key does not name: it is rolled back there, while that server session lives on
    in the pool (a commit would leave it to whichever client gets the session next)."""
    from pgmilib.conn import early
    from pgmilib.conn.connect import open_connection
    from pgmilib.conn.conninfo import parse_connection_string
    from pgmilib.deploy import session

    bouncer = pgbouncer("transaction", "unix socket")
    db = create_database()
    params = parse_connection_string(f"host={bouncer.dir} port={bouncer.port} user={pg.env()['PGUSER']} "
                                     f"dbname={db} sslmode=disable application_name=pgmi")
    with early.start(params, db, 5) as started:
        started.send_at_login(session.api_at_login())
        conn = open_connection(params, db, started=started, retry=False)
    try:
        assert conn.query_ahead  # the pooler accepted the login without an exchange: the API went ahead
        kept = session.adopt_api_ahead(conn, conn.backend_pid)()
        assert _api_tables(pg, db) == 0  # in no session, the pooled one (still open) included
        assert kept is False and conn.transaction_status == "I"
    finally:
        conn.close()
