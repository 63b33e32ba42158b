"""The server starts the session while the client still imports the driver.

A deploy's first connection goes to a server that needs ~2 ms from the start-up packet to
ReadyForQuery (a fork, authentication, the backend's own set-up), and the client needs several
milliseconds to import the driver before it can send that packet. So, for a local server (a unix socket, where no
TLS is negotiated first), `start()` opens the socket and sends the start-up packet before the
driver is imported; the driver then adopts the socket (`StartedSocket`), writes its own start-up
packet, which is checked against the one sent and dropped, and reads the server's answer from
there: authentication and everything after it is the driver's, as on any other connection.

Only what the start-up packet holds is decided here; it is exactly what the driver would send
(pg8000's layout, pinned by tests/test_early_start.py). A connection that does not qualify (TCP,
a host list, a cloud login) or cannot be opened here is simply opened the usual way, which
reports any failure as it always has.
"""

from __future__ import annotations

import socket
import struct

from pgmilib.conn.libpqkeys import is_client_only
from pgmilib.conn.params import DEFAULT_APP_NAME, ConnParams

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, Self

PROTOCOL_VERSION = 196608  # 3.0


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


class Mismatch(Exception):
    """The driver's start-up packet is not the one sent ahead: the attempt's parameters differ from
    the early start's, or the driver changed (tests/test_early_start.py pins its layout)."""


class StartedSocket(socket.socket):
    """A connected socket that has already sent `sent`, the start-up packet.

    The driver wraps its socket with `makefile()`; the wrapper drops the driver's own copy of
    the packet, byte for byte the same, and passes everything else through.
    """

    sent: bytes = b""

    def makefile(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return _SkipSent(super().makefile(*args, **kwargs), self.sent)


class _SkipSent:
    def __init__(self, stream: Any, sent: bytes) -> None:
        self._stream = stream
        self._pending = sent

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._pending:
            size = min(len(data), len(self._pending))
            if bytes(data[:size]) != self._pending[:size]:
                raise Mismatch("the driver's start-up packet differs from the one sent ahead")
            self._pending = self._pending[size:]
            data = data[size:]
            if not data:
                return size
        return self._stream.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Started:
    """A start-up packet on its way (or none: no socket); `take()` hands the socket to the
    connection attempt, and leaving the `with` block closes it if nothing took it. Whether the
    attempt would send the same packet is checked as the driver writes its own (`StartedSocket`)."""

    def __init__(self, sock: StartedSocket | None = None, path: str = "") -> None:
        self._held: StartedSocket | None = sock
        self.path = path

    def take(self, path: str) -> StartedSocket | None:
        """The socket, if it went to `path`; else None (and it is closed)."""
        sock, self._held = self._held, None
        if sock is not None and path != self.path:
            sock.close()
            return None
        return sock

    def close(self) -> None:
        sock, self._held = self._held, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start(params: ConnParams, database: str | None, timeout: float | None) -> Started:
    """Send the start-up packet of a unix-socket connection now; an empty Started when that does
    not apply or fails."""
    if (not params.is_unix_socket or params.fallback_hosts or (params.auth_method or "password") != "password"
            or (timeout is not None and timeout <= 0) or not hasattr(socket, "AF_UNIX")):
        return Started()
    fields = (params.user, database, application_name(params), startup_params(params))
    if unsendable(*fields):  # a name the protocol cannot carry: the usual attempt says so
        return Started()
    packet = startup_packet(*fields)
    try:
        sock = StartedSocket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:  # no descriptor left: the usual attempt says so
        return Started()
    sock.sent = packet
    try:
        sock.settimeout(timeout)
        sock.connect(params.socket_path)
        sock.sendall(packet)
    except OSError:  # the usual attempt opens it again and says what is wrong
        sock.close()
        return Started()
    return Started(sock, params.socket_path)
