"""The session API sent behind the login (conn/early.py `send_at_login`, deploy/session.py).

A local deploy sends the session API as soon as the server accepts the login without an
exchange, before the client knows which server session runs it. These tests hold the rules that
make that safe, against a real server: it goes out only after AuthenticationOk (never into a
password exchange, never with require_auth or target_session_attrs), byte for byte one simple
query; what the reader read is handed to the driver; the API stays only in the backend the login
announced and only once its commit has run, and every other outcome leaves nothing of it; a
stalled server or a broken send never hangs or corrupts the connection. A session behind a
pooler: tests/test_pooler.py.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from projects import app_login_cluster, query, write_project

from pgmilib import records
from pgmilib.conn import adopted, early
from pgmilib.conn.connect import open_connection
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.deploy import session

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "Ahead-Of-Time-Secret-3"


@pytest.fixture(scope="module")
def server():
    """Unix-socket logins: `postgres` trusted, `app` with SCRAM (the driver does the exchange)."""
    with app_login_cluster(PASSWORD) as cluster:
        yield cluster


def _params(cluster, **changes):
    params = parse_connection_string(cluster.dsn())
    params.application_name = "pgmi"
    return records.replace(params, **changes) if changes else params


def _connect_ahead(cluster, text: str | None = None, **changes):
    """A connection whose start-up packet went out early, with `text` (default: the session API)
    handed to the early start to send behind the login."""
    params = _params(cluster, **changes)
    with early.start(params, "postgres", 5) as started:
        started.send_at_login(session.api_at_login() if text is None else text)
        return open_connection(params, "postgres", started=started, retry=False)


def _api_tables(cluster) -> int:
    """The session API's tables in any session of the database (the one under test included)."""
    return query(cluster, "postgres", "SELECT count(*) FROM pg_class WHERE relname = '_pgmi_source'")[0][0]


def test_the_api_stays_in_the_announced_backend(server):
    conn = _connect_ahead(server)
    try:
        assert conn.query_ahead
        assert not isinstance(conn._sock, adopted._SkipSent)  # the wrapper is gone once the login is read
        assert session.adopt_api_ahead(conn, conn.backend_pid)() is True
        assert conn.transaction_status == "I"
        assert conn.run("SELECT to_regclass('pg_temp._pgmi_source') IS NOT NULL, "
                        "current_setting('idle_in_transaction_session_timeout')") == [[True, "0"]]
        assert _api_tables(server) == 1
        assert conn.query_ahead is False  # read once
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["another backend's pid", "no pid announced", "dropped unused", "the API failed"])
def test_otherwise_nothing_of_it_stays(server, how, monkeypatch):
    if how == "the API failed":
        failing = "CREATE TEMP TABLE _pgmi_source (id int); SELECT 1/0;"
        monkeypatch.setattr(session, "_batch", lambda names: (failing, "failed"))
    conn = _connect_ahead(server)
    try:
        assert conn.query_ahead
        if how == "dropped unused":
            session.drop_api_ahead(conn)
        else:
            pid = {"another backend's pid": conn.backend_pid + 1, "no pid announced": None}.get(how, conn.backend_pid)
            assert session.adopt_api_ahead(conn, pid)() is False
        assert conn.transaction_status == "I"
        assert _api_tables(server) == 0  # the session is still open: nothing of it was committed
        assert conn.run("SELECT 1") == [[1]]  # and the connection is in step with the server
    finally:
        conn.close()


@pytest.mark.parametrize("change", [{"user": "app", "password": PASSWORD}, {"require_auth": "none"},
                                    {"target_session_attrs": "read-write"}],
                         ids=["a password exchange", "require_auth", "target_session_attrs"])
def test_nothing_goes_ahead_where_the_login_needs_more(server, change):
    conn = _connect_ahead(server, **change)
    try:
        assert isinstance(conn._usock, adopted.StartedSocket)  # the early start itself was used
        assert conn.query_ahead is False
        assert _api_tables(server) == 0
        assert conn.run("SELECT current_user") == [[change.get("user", "postgres")]]
    finally:
        conn.close()


def test_a_send_that_breaks_off_costs_a_fresh_socket(server):
    """How much of the query went out is not known: the socket is not used, the attempt opens another."""
    class BreaksOnSend:  # the started socket, but a send breaks
        def __init__(self, raw):
            self.raw = raw

        def sendall(self, data, *args):
            raise BrokenPipeError(32, "Broken pipe")

        def __getattr__(self, name):
            return getattr(self.raw, name)

    params = _params(server)
    with early.start(params, "postgres", 5) as started:
        # The start-up packet went out; only the query's send breaks.
        started._held = BreaksOnSend(started._held)
        started.send_at_login(session.api_at_login())
        conn = open_connection(params, "postgres", started=started, retry=False)
    try:
        assert not isinstance(conn._usock, adopted.StartedSocket)
        assert conn.query_ahead is False
        assert conn.run("SELECT 1") == [[1]]
    finally:
        conn.close()


def _listener(where: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(where, ".s.PGSQL.5432"))
    listener.listen(1)
    listener.settimeout(5)
    return listener


AUTHENTICATION_OK = b"R" + struct.pack("!ii", 8, 0)
SASL_REQUEST = b"R" + struct.pack("!ii", 23, 10) + b"SCRAM-SHA-256\x00\x00"


@pytest.mark.parametrize("answer, follows", [(AUTHENTICATION_OK + b"Z\x00\x00\x00\x05I", True),
                                             (SASL_REQUEST, False)], ids=["AuthenticationOk", "a SCRAM request"])
def test_the_query_follows_authentication_ok_only_as_one_simple_query(answer, follows):
    with tempfile.TemporaryDirectory(prefix="pgmi-ah-") as where:
        listener = _listener(where)
        try:
            params = _params_for(where)
            with early.start(params, "d", 5) as started:
                started.send_at_login("SELECT 'ahead';")
                peer, _ = listener.accept()
                peer.settimeout(5)
                packet = early.startup_packet("u", "d", "pgmi", {})
                assert peer.recv(len(packet), socket.MSG_WAITALL) == packet
                peer.sendall(answer)
                sock = started.take(params.socket_path)  # the reader is done with the server's answer
                assert sock is not None and sock.query_sent is follows and sock.replay == answer
                if follows:
                    body = b"SELECT 'ahead';\x00"
                    query = b"Q" + struct.pack("!i", 4 + len(body)) + body
                    assert peer.recv(len(query), socket.MSG_WAITALL) == query
                peer.settimeout(0.2)
                with pytest.raises(socket.timeout):
                    peer.recv(1)  # nothing else followed
                sock.close()
                peer.close()
        finally:
            listener.close()


def test_a_server_that_never_answers_does_not_hold_the_client():
    """The reader waits for the server's first answer; leaving the early start (an error, Ctrl-C)
    shuts the socket and the reader ends with it."""
    with tempfile.TemporaryDirectory(prefix="pgmi-ah-") as where:
        listener = _listener(where)
        try:
            with early.start(_params_for(where), "d", 60) as started:
                started.send_at_login("SELECT 1;")
                reader = started._reader
                assert reader is not None and reader.is_alive()
            reader.join(10)
            assert not reader.is_alive()
        finally:
            listener.close()


def test_a_server_that_does_not_answer_in_time_is_a_timeout_once():
    """The reader's wait is the attempt's: when it ends without an answer, the attempt fails as a
    timeout at once, without waiting again or opening another socket."""
    from pgmilib.errors import ConnectionFailed

    with tempfile.TemporaryDirectory(prefix="pgmi-ah-") as where:
        listener = _listener(where)
        try:
            # The early start waits 0.3 s; the attempt itself would wait a minute.
            params = records.replace(_params_for(where), connect_timeout=60)
            with early.start(params, "d", 0.3) as started:
                started.send_at_login("SELECT 1;")
                peer, _ = listener.accept()
                failed: list[BaseException] = []

                def attempt() -> None:
                    try:
                        open_connection(params, "d", started=started, retry=False)
                    except BaseException as error:  # noqa: BLE001 -- checked below
                        failed.append(error)

                runner = threading.Thread(target=attempt, daemon=True)
                runner.start()
                runner.join(20)  # far below the attempt's own minute
                ended = not runner.is_alive()
                peer.close()  # (lets a hanging attempt end, so that the test does not)
                runner.join(70)
                assert ended
                assert len(failed) == 1 and isinstance(failed[0], ConnectionFailed)
                assert "timed out" in failed[0].message
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()  # no second connection was opened
        finally:
            listener.close()


def test_ctrl_c_while_the_reader_starts_ends_the_early_start_cleanly(monkeypatch):
    """A signal can arrive inside `Thread.start()`, before the thread counts as started (CI met it):
    leaving the early start then shuts its socket without joining a thread that cannot be joined
    (which raised 'cannot join thread before it is started', a crash), and nothing is sent."""
    def interrupted_start(self):
        raise KeyboardInterrupt

    with tempfile.TemporaryDirectory(prefix="pgmi-ah-") as where:
        listener = _listener(where)
        try:
            with pytest.raises(KeyboardInterrupt), early.start(_params_for(where), "d", 60) as started:
                monkeypatch.setattr(threading.Thread, "start", interrupted_start)
                started.send_at_login("SELECT 1;")
            monkeypatch.undo()
            peer, _ = listener.accept()
            peer.settimeout(5)
            received = b""
            while True:
                chunk = peer.recv(65536)
                if not chunk:
                    break
                received += chunk
            assert received == early.startup_packet("u", "d", "pgmi", {})  # then the end: nothing more sent
            peer.close()
        finally:
            listener.close()


def _params_for(where: str):
    from pgmilib.conn.params import ConnParams

    return ConnParams(host=where, port=5432, user="u", database="d", sslmode="disable")


def test_the_api_is_ascii():
    """The query goes out before the server says its client encoding: ASCII reads the same in all of
    them. A non-ASCII API would quietly never go ahead (send_at_login skips it)."""
    assert session.api_at_login().isascii()
    assert early._query_message("SELECT 1;") == b"Q\x00\x00\x00\x0eSELECT 1;\x00"
    with pytest.raises(UnicodeEncodeError):
        early._query_message("SELECT 'é';")


def test_an_idle_in_transaction_limit_does_not_end_the_session(server, tmp_path):
    """The API's transaction waits for the client's login (milliseconds): a server limit on idle
    transactions shorter than that must not end the deploy's session."""
    for sql in ("DROP DATABASE IF EXISTS idle_limit", "CREATE DATABASE idle_limit",
                "ALTER DATABASE idle_limit SET idle_in_transaction_session_timeout = '1ms'"):
        query(server, "postgres", sql)
    # No transaction of deploy.sql's own: only the API's waits while idle.
    project = write_project(tmp_path / "p", {"a.sql": "CREATE TABLE a (id int);\n"},
                            deploy_sql="SELECT count(*) FROM pg_temp.pgmi_plan_view;\n"
                                       "CREATE TABLE from_deploy (id int);\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_PG_")}
    env.update(server.env(), PGMI_NON_INTERACTIVE="1")
    done = subprocess.run([sys.executable, str(REPO / "pgmi.py"), "deploy", str(project), "-d", "idle_limit", "-v"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "did not stay" not in done.stderr  # the API sent ahead was the one used
    assert query(server, "idle_limit", "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


RUN_FILES = ("DO $$ DECLARE r record; BEGIN FOR r IN SELECT content FROM pg_temp.pgmi_plan_view "
             "ORDER BY execution_order LOOP EXECUTE r.content; END LOOP; END $$;\n")


@pytest.mark.parametrize("reported", [True, False], ids=["version reported", "version asked"])
def test_a_deploy_adopts_the_api_or_drops_it_to_ask_the_version(tmp_path, pg, pg_env, fresh_db, monkeypatch, capsys,
                                                                reported):
    """A server that reports 11+ at start-up keeps the API sent ahead; otherwise the version is asked
    first, which needs the connection: the API sent ahead is dropped and sent again after the checks."""
    from projects import run_cli

    asked: list[bool] = []
    check = session.check_server_version
    monkeypatch.setattr(session, "server_version_reported", lambda conn: reported)
    monkeypatch.setattr(session, "check_server_version", lambda conn: asked.append(True) or check(conn))
    adopt = session.adopt_api_ahead
    guarded: list[bool] = []  # per adoption: committed under the login's pid, or dropped (no pid)
    monkeypatch.setattr(session, "adopt_api_ahead",
                        lambda conn, pid: guarded.append(pid is not None) or adopt(conn, pid))
    project = write_project(tmp_path / "p", {"a.sql": "CREATE TABLE a (id int);\n"}, deploy_sql=RUN_FILES)
    code, _, err = run_cli(["deploy", str(project), "-d", fresh_db, "-v"], capsys)
    assert code == 0, err
    assert (guarded, asked) == (([True], []) if reported else ([False], [True]))
    assert "Loaded 1 files" in err and "did not stay" not in err
    assert query(pg, fresh_db, "SELECT to_regclass('public.a') IS NOT NULL") == [[True]]
