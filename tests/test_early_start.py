"""A local connection's start-up packet goes out before the driver is imported (pgmilib/conn/early.py).

The packet must be byte for byte the one the driver would send (the driver's own copy is checked
and dropped), the driver must adopt the socket and do everything after it (authentication
included), and whatever does not qualify, or cannot be started early, is opened the usual way with
the usual errors. Checked against the published driver and real servers.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pg8000.native
import pytest
from projects import app_login_cluster, query, write_project

from pgmilib import records
from pgmilib.conn import adopted, early
from pgmilib.conn.connect import open_connection
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConnectionFailed

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "Early-Bird-Secret-7"


def _sent_by_driver(**kwargs) -> bytes:
    """The bytes the published driver writes first on a socket (it is then told to stop)."""
    ours, server = socket.socketpair()
    try:
        # The "server" answers at once with an ErrorResponse, which ends the driver's start-up.
        server.sendall(b"E" + (4 + 17).to_bytes(4, "big") + b"SFATAL\x00Mstop\x00C0\x00\x00")
        with pytest.raises(pg8000.exceptions.DatabaseError):
            pg8000.native.Connection(sock=ours, ssl_context=False, timeout=5, **kwargs)
        server.settimeout(5)
        received = b""
        while len(received) < 4 or len(received) < int.from_bytes(received[:4], "big"):
            chunk = server.recv(65536)
            assert chunk, "the driver sent no complete start-up packet"
            received += chunk
        return received[:int.from_bytes(received[:4], "big")]  # then its goodbye (Terminate)
    finally:
        ours.close()
        server.close()


@pytest.mark.parametrize("database, application, options", [
    ("postgres", "pgmi", {}),
    ("büro_db", "pgmi fleet ✓", {"search_path": "app, public", "options": "-c work_mem=8MB"}),
    (None, "pgmi", {"DateStyle": "ISO"}),
])
def test_the_packet_is_the_one_the_driver_sends(database, application, options):
    expected = _sent_by_driver(user="deployer", database=database, application_name=application,
                               startup_params=options or None)
    assert early.startup_packet("deployer", database, application, options) == expected


def test_the_driver_copy_is_dropped_and_a_different_one_refused():
    ours, server = socket.socketpair()
    try:
        started = adopted.StartedSocket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=ours.detach())
        started.sent = b"\x00\x00\x00\x09abcde"
        stream = started.makefile("rwb")
        assert stream.write(b"\x00\x00\x00\x09") == 4  # in two writes, as the driver writes it
        assert stream.write(b"abcde") == 5
        stream.write(b"Q-after")
        stream.flush()
        server.settimeout(5)
        assert server.recv(100) == b"Q-after"  # only what follows the packet reaches the server

        other = adopted.StartedSocket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.sent = b"\x00\x00\x00\x09abcde"
        with pytest.raises(adopted.Mismatch):
            other.makefile("rwb").write(b"\x00\x00\x00\x09abXde")
        other.close()
        started.close()
    finally:
        server.close()


def _raw_pair() -> tuple:
    """A connected pair: the early start's kind of socket (`_socket`, the C module's) and its peer."""
    import _socket

    ours, peer = socket.socketpair()
    return _socket.socket(ours.family, ours.type, 0, ours.detach()), peer


def test_the_adopted_socket_keeps_the_descriptor_timeout_and_state():
    """take() makes the driver's socket from the early start's `_socket` one (conn/adopted.py)."""
    raw, peer = _raw_pair()
    sock = None
    try:
        raw.settimeout(7.5)
        fd = raw.fileno()
        sock = adopted.adopt(raw, b"packet", b"R-first", True)
        assert (sock.fileno(), sock.gettimeout(), sock.sent, sock.replay, sock.query_sent) == \
            (fd, 7.5, b"packet", b"R-first", True)
        sock.sendall(b"x")
        peer.settimeout(5)
        assert peer.recv(1) == b"x"
    finally:
        (sock or raw).close()
        peer.close()


def test_a_socket_that_cannot_be_adopted_closes_its_descriptor(monkeypatch):
    def refused(self, *args, **kwargs):
        raise OSError(24, "Too many open files")

    raw, peer = _raw_pair()
    try:
        fd = raw.fileno()
        monkeypatch.setattr(adopted.StartedSocket, "__init__", refused)
        with pytest.raises(OSError, match="Too many open files"):
            adopted.adopt(raw, b"packet", b"", False)
        with pytest.raises(OSError):
            os.fstat(fd)  # closed, not leaked
    finally:
        raw.close()  # detached already: closes nothing
        peer.close()


@pytest.mark.parametrize("change", [None, "tcp", "host list", "cloud login", "no socket there", "no time left",
                                    "a name the protocol cannot carry"])
def test_only_a_local_password_login_is_started_early(change):
    # A short directory: a unix socket's path is limited to ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="pgmi-es-") as where:
        path = os.path.join(where, ".s.PGSQL.5432")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if change != "no socket there":
                listener.bind(path)
                listener.listen(1)
            params = ConnParams(host=where, port=5432, user="u", database="d", sslmode="disable")
            timeout: float | None = 5.0
            if change == "tcp":
                params = records.replace(params, host="127.0.0.1")
            elif change == "host list":
                params = records.replace(params, fallback_hosts=[("127.0.0.1", 5432)])
            elif change == "cloud login":
                params = records.replace(params, auth_method="aws")
            elif change == "no time left":
                timeout = 0.0
            elif change == "a name the protocol cannot carry":  # argv's undecodable bytes (surrogateescape)
                params = records.replace(params, user="dep\udcffloyer")
            with early.start(params, "d", timeout) as started:
                packet = early.startup_packet("u", "d", "pgmi", {})
                taken = started.take(path)
                if change is None:  # the control: a local server, a password login
                    assert taken is not None
                    listener.settimeout(5)
                    peer, _ = listener.accept()
                    assert peer.recv(len(packet), socket.MSG_WAITALL) == packet
                    peer.close()
                    taken.close()
                else:
                    assert taken is None
                    if change != "no socket there":
                        listener.setblocking(False)
                        with pytest.raises(BlockingIOError):  # nothing was sent
                            listener.accept()
        finally:
            listener.close()


@pytest.fixture(scope="module")
def server():
    """Unix-socket logins: `postgres` trusted, `app` with SCRAM (the driver does the exchange)."""
    with app_login_cluster(PASSWORD) as cluster:
        yield cluster


def _params(cluster, **changes) -> ConnParams:
    params = parse_connection_string(cluster.dsn())
    params.application_name = "pgmi"
    return records.replace(params, **changes) if changes else params


def _early_backends(cluster, application: str) -> list:
    return query(cluster, "postgres", "SELECT pid FROM pg_stat_activity WHERE application_name = :a", a=application)


def _gone(cluster, application: str) -> bool:
    until = time.monotonic() + 10
    while _early_backends(cluster, application) and time.monotonic() < until:
        time.sleep(0.05)
    return _early_backends(cluster, application) == []


def test_the_driver_adopts_the_started_session(server):
    params = _params(server, options={"search_path": "pg_catalog, public"}, application_name="pgmi early")
    with early.start(params, "postgres", 5) as started:
        conn = open_connection(params, "postgres", started=started)
    try:
        assert isinstance(conn._usock, adopted.StartedSocket)  # the socket sent ahead
        assert started.take("") is None  # taken by the attempt
        assert conn.run("SELECT current_database(), current_setting('application_name'), "
                        "current_setting('search_path')") == [["postgres", "pgmi early", "pg_catalog, public"]]
    finally:
        conn.close()
    assert _gone(server, "pgmi early")


def test_a_password_login_is_the_drivers_after_an_early_start(server):
    params = _params(server, user="app", password=PASSWORD)
    with early.start(params, "postgres", 5) as started:
        conn = open_connection(params, "postgres", started=started, retry=False)
    try:
        assert isinstance(conn._usock, adopted.StartedSocket)
        assert conn.run("SELECT current_user") == [["app"]]
    finally:
        conn.close()


def test_a_wrong_password_is_refused_as_without_an_early_start(server):
    wrong = _params(server, user="app", password="not-it")
    with pytest.raises(ConnectionFailed) as usual:
        open_connection(wrong, "postgres", retry=False)
    with early.start(wrong, "postgres", 5) as started, pytest.raises(ConnectionFailed) as after_early:
        open_connection(wrong, "postgres", started=started, retry=False)
    assert after_early.value.message == usual.value.message
    assert "not-it" not in after_early.value.message


@pytest.mark.parametrize("differs", ["the attempt's parameters", "the driver's packet"])
def test_a_packet_the_attempt_would_not_send_gets_a_fresh_socket(differs, server):
    """Other parameters than the early start's (or, were it to change, the driver's layout): the
    driver's copy is refused before a byte of it is sent, the early session is shut down at once
    (without waiting for the garbage collector, as in pgmi's process) and a fresh one is opened."""
    params = _params(server, application_name="pgmi fresh")
    early_params = records.replace(params, application_name="pgmi early") if differs.startswith("the attempt") \
        else params
    gc.disable()
    try:
        with early.start(early_params, "postgres", 5) as started:
            if differs == "the driver's packet":
                started.sent = started.sent[:-2] + b"X\x00"
            conn = open_connection(params, "postgres", started=started)
        try:
            assert not isinstance(conn._usock, adopted.StartedSocket)
            assert conn.run("SELECT current_setting('application_name')") == [["pgmi fresh"]]
            assert _gone(server, "pgmi early")
            until = time.monotonic() + 10
            while len(_early_backends(server, "pgmi fresh")) > 1 and time.monotonic() < until:
                time.sleep(0.05)
            assert _early_backends(server, "pgmi fresh") == conn.run("SELECT pg_backend_pid()")
        finally:
            conn.close()
    finally:
        gc.enable()


def test_a_socket_to_another_server_is_closed_not_used():
    with tempfile.TemporaryDirectory(prefix="pgmi-es-") as where:
        path = os.path.join(where, ".s.PGSQL.5432")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1)
            params = ConnParams(host=where, port=5432, user="u", database="d", sslmode="disable")
            with early.start(params, "d", 5) as started:
                assert started.take(os.path.join(where, ".s.PGSQL.5433")) is None
                listener.settimeout(5)
                peer, _ = listener.accept()
                peer.settimeout(5)
                received = peer.recv(65536)
                assert received and peer.recv(65536) == b""  # the packet, then the end: closed
                peer.close()
        finally:
            listener.close()


# Records, when the start-up packet is sent, whether the driver (or `socket`) is imported yet; and that the
# connection the deploy runs on is the one started early, with the session API sent behind its
# login (the server logs in without an exchange).
PROBE = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from pgmilib.cli import app
from pgmilib.conn import early
seen = {}
start = early.start
def recording_start(*args):
    started = start(*args)
    seen["driver imported"] = "pg8000" in sys.modules
    seen["socket imported"] = "socket" in sys.modules  # _socket alone: socket's enum tables come later
    seen["started"] = started.take.__self__._held is not None
    return started
early.start = recording_start
from pgmilib.deploy import session
adopt = session.adopt_api_ahead
def recording_adopt(conn, pid):
    seen["adopted"] = type(conn._usock).__name__
    return adopt(conn, pid)
session.adopt_api_ahead = recording_adopt
code = app.main(sys.argv[3:])
with open(sys.argv[2], "w") as fh:
    json.dump(seen, fh)
sys.exit(code)
"""


def test_a_deploy_starts_its_session_before_it_imports_the_driver(server, tmp_path):
    project = write_project(tmp_path / "p", {"schema/t.sql": "CREATE TABLE t (id int);\n"},
                            deploy_sql="CREATE TABLE from_deploy (id int);\n")
    dump = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_PG_")}
    env.update(server.env(), PGMI_NON_INTERACTIVE="1")
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO), str(dump), "deploy", str(project),
                           "-d", "postgres", "--timeout", "0"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(dump.read_text()) == {"driver imported": False, "socket imported": False, "started": True,
                                             "adopted": "StartedSocket"}
    assert query(server, "postgres", "SELECT to_regclass('public.from_deploy') IS NOT NULL") == [[True]]


@pytest.mark.parametrize("key, how", [("user", "-U"), ("application_name", "PGAPPNAME"), ("search_path", "--connection")])
def test_a_name_that_is_not_text_is_a_one_line_configuration_error(key, how, pg, fresh_db, tmp_path):
    """Bytes of the command line or environment that are not UTF-8 cannot go in the start-up
    packet: exit 10 naming the key, without the value or a traceback, and nothing deployed."""
    project = write_project(tmp_path / "p", {}, deploy_sql="CREATE TABLE from_deploy (id int);\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_PG_")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    argv = [sys.executable, str(REPO / "pgmi.py"), "deploy", str(project), "-d", fresh_db]
    if how == "-U":
        argv += ["-U", b"dep\xffloyer"]
    elif how == "PGAPPNAME":
        env["PGAPPNAME"] = b"app\xff"
    else:  # a server setting, which travels in the start-up packet too
        argv += ["--connection", b"host=" + pg.env()["PGHOST"].encode() + b" search_path=sch\xffema"]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 10, stderr
    assert f"connection parameter {key} is not valid UTF-8" in stderr
    assert "Traceback" not in stderr and "\\udcff" not in stderr and "\ufffd" not in stderr
    assert query(pg, fresh_db, "SELECT to_regclass('public.from_deploy') IS NULL") == [[True]]
