"""open_connection against real PostgreSQL: sockets, passwords, retries, notices, cancel."""

from __future__ import annotations

import io
import os
import random
import socket
import threading
import time

import pytest

from pgmilib.conn.connect import Deadline, LiveConnection, is_transient, open_connection, retry_delay
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConnectionFailed, Exit, Marker, exit_code
from pgmilib.output import Output, format_error
from pgmilib.server.cluster import Cluster, _free_port

APP_PASSWORD = "Right-Horse-Battery-42"


@pytest.fixture(scope="module")
def tcp_cluster():
    """A TCP server where role `app` must authenticate with SCRAM (superuser stays trusted)."""
    with Cluster(listen_tcp=True, settings={"password_encryption": "scram-sha-256"}) as cluster:
        with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
            fh.write("local all all trust\n"
                     "host all app 127.0.0.1/32 scram-sha-256\n"
                     "host all all 127.0.0.1/32 trust\n")
        admin = LiveConnection(**cluster.conn_kwargs())
        admin.run(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
        admin.run("SELECT pg_reload_conf()")
        admin.close()
        yield cluster


def tcp(cluster, user="postgres", password=None, database="postgres", **extra) -> ConnParams:
    return ConnParams(host="127.0.0.1", port=cluster.port, user=user, password=password, database=database,
                      sslmode="disable", application_name="pgmi", **extra)


def test_connect_over_unix_socket_or_dsn(pg):
    params = parse_connection_string(pg.dsn())
    params.application_name = "pgmi"
    conn = open_connection(params)
    try:
        assert conn.run("select current_database(), current_setting('application_name')") == [["postgres", "pgmi"]]
        assert conn.transaction_status == "I"
    finally:
        conn.close()


def test_connect_over_tcp_with_password_and_options(tcp_cluster):
    params = tcp(tcp_cluster, user="app", password=APP_PASSWORD, options={"search_path": "pg_catalog,public",
                                                                           "target_session_attrs": "any"})
    conn = open_connection(params)
    try:
        assert conn.run("select current_user, current_setting('search_path')") == [["app", "pg_catalog,public"]]
        assert conn.run("select ssl from pg_stat_ssl where pid = pg_backend_pid()") == [[False]]
    finally:
        conn.close()


def test_password_from_pgpass(tcp_cluster, tmp_path):
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{tcp_cluster.port}:postgres:app:{APP_PASSWORD}\n")
    os.chmod(passfile, 0o600)
    conn = open_connection(tcp(tcp_cluster, user="app"), environ={"PGPASSFILE": str(passfile)})
    assert conn.run("select current_user") == [["app"]]
    conn.close()
    with pytest.raises(ConnectionFailed) as info:
        open_connection(tcp(tcp_cluster, user="app"), environ={"PGPASSFILE": str(tmp_path / "none")})
    assert "none was found" in str(info.value)


def test_wrong_password_is_not_retried(tcp_cluster):
    params = tcp(tcp_cluster, user="app", password="Wrong-Password-123")
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params)
    err = info.value
    assert err.pg is not None and err.pg.sqlstate == "28P01"
    assert err.details["attempts"] == 1 and time.monotonic() - started < 0.5
    assert str(err) == 'password authentication failed for user "app" on database "postgres"'
    assert exit_code(err) == Exit.CONNECTION
    text = format_error(err)
    assert "Wrong-Password-123" not in text and "PGPASSWORD" in text
    log = io.StringIO()
    with pytest.raises(ConnectionFailed):
        open_connection(params, out=Output(verbose=True, stderr=log, stdout=io.StringIO()))
    assert "app" in log.getvalue() and "Wrong-Password-123" not in log.getvalue()


def test_missing_database_is_3d000(tcp_cluster):
    with pytest.raises(ConnectionFailed) as info:
        open_connection(tcp(tcp_cluster), "no_such_db_here")
    assert info.value.pg.sqlstate == "3D000" and info.value.details["attempts"] == 1
    assert str(info.value) == 'database "no_such_db_here" does not exist'
    assert "--overwrite" in format_error(info.value)


def test_closed_port_is_retried_then_fails():
    port = _free_port()
    params = ConnParams(host="127.0.0.1", port=port, user="u", database="d", sslmode="disable")
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params)
    elapsed = time.monotonic() - started
    assert info.value.details["attempts"] == 4
    assert 0.6 <= elapsed < 3.0  # 100 + 200 + 400 ms back-off, +-10 %
    assert str(info.value) == f"connection refused to 127.0.0.1:{port}"
    assert "pg_isready" in format_error(info.value) and exit_code(info.value) == Exit.CONNECTION


def test_retry_false_makes_one_attempt():
    params = ConnParams(host="127.0.0.1", port=_free_port(), user="u", database="d", sslmode="disable")
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params, retry=False)
    assert info.value.details["attempts"] == 1


def test_deadline_between_retries_is_exit_16():
    params = ConnParams(host="127.0.0.1", port=_free_port(), user="u", database="d", sslmode="disable")
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params, deadline=Deadline(0.15))
    assert time.monotonic() - started < 0.5
    assert Marker.DEADLINE in info.value.markers and exit_code(info.value) == Exit.TIMEOUT
    assert "deadline exceeded while connecting" in str(info.value)


def test_connect_timeout_against_a_silent_server():
    """A server that completes TCP but never answers: the per-attempt connect_timeout ends it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        params = ConnParams(host="127.0.0.1", port=silent.getsockname()[1], user="u", database="d",
                            sslmode="disable", connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            open_connection(params, retry=False)
        assert 0.25 <= time.monotonic() - started < 1.5
        assert str(info.value) == f"connection timed out to 127.0.0.1:{params.port}"
        params.connect_timeout = None  # now only the deadline bounds the attempt
        started = time.monotonic()
        with pytest.raises(ConnectionFailed):
            open_connection(params, retry=False, deadline=Deadline(0.3))
        assert time.monotonic() - started < 1.5


class HangUpServer:
    """Accepts TCP connections and closes them at once (a server dying during startup)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            client.recv(64)
            client.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("sslmode", ["disable", "prefer"])
def test_server_hanging_up_during_startup_is_retried(sslmode):
    server = HangUpServer()
    try:
        params = ConnParams(host="127.0.0.1", port=server.port, user="u", database="d", sslmode=sslmode)
        with pytest.raises(ConnectionFailed) as info:
            open_connection(params)
        assert info.value.details["attempts"] == 4
        per_attempt = 2 if sslmode == "prefer" else 1  # prefer: TLS try, then plaintext
        assert server.accepted == 4 * per_attempt
        assert "closed the connection" in str(info.value)
    finally:
        server.close()


def test_missing_unix_socket_message(tmp_path):
    params = ConnParams(host=str(tmp_path), port=5999, user="u", database="d")
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params, retry=False)
    assert str(info.value) == f"no PostgreSQL server socket at {tmp_path}/.s.PGSQL.5999"


def test_notices_stream_as_they_arrive(pg):
    seen: list[tuple[float, str]] = []
    conn = open_connection(parse_connection_string(pg.dsn()),
                           on_notice=lambda d: seen.append((time.monotonic(), d.message)))
    try:
        conn.run("DO $$ BEGIN RAISE NOTICE 'early'; PERFORM pg_sleep(0.6); RAISE WARNING 'late'; END $$")
        returned = time.monotonic()
        assert [m for _, m in seen] == ["early", "late"]
        assert returned - seen[0][0] >= 0.5  # the first notice came before the sleep, not at the end
        seen.clear()
        conn.run("DO $$ BEGIN FOR i IN 1..150 LOOP RAISE NOTICE 'n%', i; END LOOP; END $$")
        assert len(seen) == 150 and seen[0][1] == "n1"  # pg8000 alone keeps only the last 100
        conn.on_notice = None
        conn.run("DO $$ BEGIN RAISE NOTICE 'ignored'; END $$")
        assert len(seen) == 150
    finally:
        conn.close()


def test_notice_fields_detail_and_hint(pg):
    got = []
    conn = open_connection(parse_connection_string(pg.dsn()), on_notice=got.append)
    conn.run("DO $$ BEGIN RAISE NOTICE 'msg' USING DETAIL = 'det', HINT = 'hin'; END $$")
    conn.close()
    assert (got[0].message, got[0].detail, got[0].hint, got[0].severity) == ("msg", "det", "hin", "NOTICE")


def _assert_cancel_works(conn: LiveConnection) -> None:
    import pg8000.exceptions

    timer = threading.Timer(0.3, conn.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(pg8000.exceptions.DatabaseError) as info:
        conn.run("select pg_sleep(30)")
    assert time.monotonic() - started < 5
    assert info.value.args[0]["C"] == "57014"
    assert conn.run("select 1") == [[1]]  # the session survives a cancel


def test_cancel_over_unix_socket(pg):
    conn = open_connection(parse_connection_string(pg.dsn()))
    try:
        _assert_cancel_works(conn)
    finally:
        conn.close()


def test_cancel_over_tcp_and_timeout_is_cleared(tcp_cluster):
    conn = open_connection(tcp(tcp_cluster, connect_timeout=0.5))
    try:
        assert conn.run("select pg_sleep(0.7), 1") == [["", 1]]  # connect_timeout must not outlive the connect
        _assert_cancel_works(conn)
    finally:
        conn.close()


def test_transaction_status(pg):
    import pg8000.exceptions

    conn = open_connection(parse_connection_string(pg.dsn()))
    try:
        assert conn.transaction_status == "I"
        conn.run("BEGIN")
        assert conn.transaction_status == "T"
        with pytest.raises(pg8000.exceptions.DatabaseError):
            conn.run("select 1/0")
        assert conn.transaction_status == "E"
        conn.run("ROLLBACK")
        assert conn.transaction_status == "I"
    finally:
        conn.close()


def test_transient_classification():
    import pg8000.exceptions

    def db_error(code: str) -> Exception:
        return pg8000.exceptions.DatabaseError({"C": code, "M": "m", "S": "FATAL"})

    expected = {"08006": True, "08001": True, "53300": True, "53200": True, "57P03": True, "57P01": True,
                "57014": False, "57P04": False, "40001": True, "40P01": True, "55P03": True,
                "28P01": False, "28000": False, "3D000": False, "42501": False, "XX000": False}
    for code, transient in expected.items():
        assert is_transient(db_error(code)) is transient, code
    assert is_transient(ConnectionRefusedError(111, "Connection refused"))
    assert is_transient(TimeoutError("timed out"))
    assert is_transient(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert not is_transient(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert is_transient(RuntimeError("read: Broken Pipe"))
    assert not is_transient(RuntimeError("something else"))


def test_retry_delay_jitter_bounds():
    rng = random.Random(5)
    for _ in range(500):
        for index, nominal in ((0, 0.1), (1, 0.2), (2, 0.4), (12, 60.0)):
            delay = retry_delay(index, rng)
            assert nominal * 0.9 - 0.001 <= delay <= nominal * 1.1
            assert round(delay * 1000) == delay * 1000 or abs(delay * 1000 - round(delay * 1000)) < 1e-6


def test_deadline_object():
    assert Deadline(None).remaining() is None and not Deadline(None).expired()
    d = Deadline(0.05)
    assert 0 < d.remaining() <= 0.05 and d.cap(10) <= 0.05 and d.cap(None) <= 0.05
    time.sleep(0.06)
    assert d.expired() and d.remaining() == 0.0


def test_a_failing_notice_callback_does_not_break_the_session(pg):
    def boom(diag):
        raise BrokenPipeError("stderr is gone")

    conn = open_connection(parse_connection_string(pg.dsn()), on_notice=boom)
    try:
        rows = conn.run("DO $$ BEGIN RAISE NOTICE 'a'; RAISE NOTICE 'b'; END $$; SELECT 7")
        assert rows == [[7]] and conn.notice_errors == 2 and conn.transaction_status == "I"
    finally:
        conn.close()
