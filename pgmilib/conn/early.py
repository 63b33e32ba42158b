"""The server starts the session while the client still imports the driver.

A deploy's first connection goes to a server that needs ~2 ms from the start-up packet to
ReadyForQuery (a fork, authentication, the backend's own set-up), and the client needs several
milliseconds to import the driver before it can send that packet. So, for a local server (a unix socket, where no
TLS is negotiated first), `start()` opens the socket and sends the start-up packet before the
driver is imported (with the C module `_socket` alone); the driver then adopts the socket
(`adopted.StartedSocket`, made once `socket` is imported with the driver), writes its own start-up
packet, which is checked against the one sent and dropped, and reads the server's answer from
there: authentication and everything after it is the driver's, as on any other connection.

Only what the start-up packet holds is decided here; it is exactly what the driver would send
(pg8000's layout, pinned by tests/test_early_start.py). A connection that does not qualify (TCP,
a host list, a cloud login) or cannot be opened here is simply opened the usual way, which
reports any failure as it always has.

A query can go out at once too (`Started.send_at_login`): a thread beside the imports reads the
server's first answer and, when it is AuthenticationOk (a login without any exchange: trust or
peer, the usual local server), sends the query right behind it; the server runs it as soon as
the session is ready, while the client still imports and logs in. What the thread read is
handed back to the driver (`replay`), which then reads the login's answer as ever. When the
server asks for a password, nothing is sent: the driver logs in and the caller sends the query
the usual way (`Started.query_sent`, then the adopted socket's, says which). Whoever sends this way must keep what
the query does undoable until it knows which session ran it (deploy/session.py: a transaction
that only the announced backend commits).
"""

from __future__ import annotations

import _socket  # the C module alone: `socket` comes after the packet (conn/adopted.py)
import contextlib
import struct
import threading

from pgmilib.conn.libpqkeys import is_client_only
from pgmilib.conn.params import DEFAULT_APP_NAME, ConnParams

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Self

    from pgmilib.conn.adopted import StartedSocket

PROTOCOL_VERSION = 196608  # 3.0
#: AuthenticationOk: message type R, length 8, request code 0 (no exchange: trust, peer).
AUTHENTICATION_OK = b"R" + struct.pack("!ii", 8, 0)


def startup_params(params: ConnParams) -> dict[str, str]:
    """The connection options that travel in the start-up packet (the server's settings)."""
    return {k: str(v) for k, v in params.options.items() if not is_client_only(k)}


def application_name(params: ConnParams) -> str:
    return params.application_name or DEFAULT_APP_NAME


def _fields(user: str, database: str | None, application: str | None,
            options: dict[str, str]) -> list[tuple[str, str]]:
    """What the start-up packet carries, in the driver's order (an absent value is left out)."""
    pairs = [("user", user), ("database", database), ("application_name", application), *options.items()]
    return [(key, value) for key, value in pairs if value is not None]


def startup_packet(user: str, database: str | None, application: str | None,
                   options: dict[str, str]) -> bytes:
    """The protocol 3.0 start-up message: user, database, application_name, then the options."""
    body = bytearray(struct.pack("!i", PROTOCOL_VERSION))
    for key, value in _fields(user, database, application, options):
        body += key.encode("ascii") + b"\x00" + value.encode("utf-8") + b"\x00"
    body.append(0)
    return struct.pack("!i", len(body) + 4) + bytes(body)


def unsendable(user: str, database: str | None, application: str | None, options: dict[str, str]) -> str | None:
    """Why the start-up packet cannot carry these names (a lone surrogate: bytes of the command
    line or environment that are not UTF-8), naming the key, never the value; None when it can."""
    for key, value in _fields(user, database, application, options):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            name = "dbname" if key == "database" else key  # the connection string's word for it
            return f"connection parameter {name} is not valid UTF-8 (it holds bytes that are not text)"
    return None


class Started:
    """A start-up packet on its way (or none: no socket); `take()` hands the socket to the
    connection attempt, and leaving the `with` block closes it if nothing took it. Whether the
    attempt would send the same packet is checked as the driver writes its own (`StartedSocket`)."""

    def __init__(self, sock: _socket.socket | None = None, path: str = "", *, sent: bytes = b"",
                 ahead: bool = False) -> None:
        self._held: _socket.socket | None = sock
        self.path = path
        self.sent = sent  # the start-up packet that went out
        self.replay = b""  # the server's first bytes, read by the login's reader: the driver reads them first
        self.query_sent = False  # a query went out behind the login (send_at_login): its answer is unread
        self._ahead = ahead  # may a query go out behind the login (`may_send_at_login`)
        self._reader: threading.Thread | None = None
        self._broken = False  # the query went out in part: the stream cannot be used
        self._timed_out = False  # no answer within the socket's timeout: the attempt's time is up
        self._bug: BaseException | None = None

    def send_at_login(self, query: str) -> None:
        """Send `query` as soon as the server accepts the login without an exchange (see the
        module's docstring); the answer is read and replayed by a thread beside the imports."""
        if self._held is None or self._reader is not None or not self._ahead:
            return
        try:
            message = _query_message(query)
        except UnicodeEncodeError:  # not ASCII: the server's client encoding is not known yet
            return
        reader = threading.Thread(target=self._answer, args=(self._held, message), daemon=True,
                                  name="pgmi-early-login")
        try:
            reader.start()
        except BaseException:  # Ctrl-C while it starts: shut the socket, which ends the thread if it runs
            self.close()
            raise
        self._reader = reader  # only a started thread can be joined

    def _answer(self, sock: _socket.socket, message: bytes) -> None:
        try:
            data = b""
            while len(data) < len(AUTHENTICATION_OK):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.replay = data
            if data.startswith(AUTHENTICATION_OK):
                try:
                    sock.sendall(message)
                except OSError:
                    self._broken = True  # how much went out is not known
                    raise
                self.query_sent = True
        except (_socket.timeout, TimeoutError):  # one class from 3.10 on, two before
            self._timed_out = True
        except OSError:  # a reset, a shut socket: the driver reads what is left and says so
            pass
        except BaseException as bug:  # noqa: BLE001 -- handed to the main thread by take()
            self._bug = bug

    def _settle(self) -> None:
        if self._reader is not None:
            self._reader.join()
            self._reader = None
        if self._bug is not None:
            bug, self._bug = self._bug, None
            raise bug

    def take(self, path: str) -> StartedSocket | None:
        """The socket, if it went to `path` and its stream is whole, as the driver's socket
        (`adopted.StartedSocket`); else None (and it is closed). Waits for the login's reader
        first, which ends with the server's first answer; raises TimeoutError when none came
        within the socket's timeout."""
        try:
            self._settle()
        except BaseException:
            self.close()
            raise
        sock, self._held = self._held, None
        if sock is not None and (path != self.path or self._broken):
            sock.close()
            return None
        if sock is not None and self._timed_out:  # as the driver's own read would have ended, not twice as late
            sock.close()
            raise TimeoutError("timed out waiting for the server's answer to the start-up packet")
        if sock is None:
            return None
        from pgmilib.conn.adopted import adopt

        return adopt(sock, self.sent, self.replay, self.query_sent)

    def close(self) -> None:
        sock, self._held = self._held, None
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes the reader, if it still waits
                sock.shutdown(_socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join()
            self._reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start(params: ConnParams, database: str | None, timeout: float | None) -> Started:
    """Send the start-up packet of a unix-socket connection now; an empty Started when that does
    not apply or fails."""
    if (not params.is_unix_socket or params.fallback_hosts or (params.auth_method or "password") != "password"
            or (timeout is not None and timeout <= 0) or not hasattr(_socket, "AF_UNIX")):
        return Started()
    fields = (params.user, database, application_name(params), startup_params(params))
    if unsendable(*fields):  # a name the protocol cannot carry: the usual attempt says so
        return Started()
    packet = startup_packet(*fields)
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:  # no descriptor left: the usual attempt says so
        return Started()
    try:
        sock.settimeout(timeout)
        sock.connect(params.socket_path)
        sock.sendall(packet)
    except OSError:  # the usual attempt opens it again and says what is wrong
        sock.close()
        return Started()
    return Started(sock, params.socket_path, sent=packet, ahead=may_send_at_login(params))


def may_send_at_login(params: ConnParams) -> bool:
    """May a query follow the start-up packet before the driver has logged in? Not when anything
    must happen between the login and the caller's first statement: `require_auth` (it may refuse
    the login the server accepted), `target_session_attrs` (its check is a query of its own)."""
    return not params.require_auth and params.target_session_attrs in ("", "any")


def _query_message(text: str) -> bytes:
    """A simple-query message (Q) carrying `text`, which must be ASCII: the same bytes in every
    client encoding the server may choose before it says which."""
    body = text.encode("ascii") + b"\x00"
    return b"Q" + struct.pack("!i", len(body) + 4) + body
