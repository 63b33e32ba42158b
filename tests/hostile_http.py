"""A token endpoint that misbehaves on purpose: a raw TCP server on 127.0.0.1 (optionally TLS).

`FakeCloud` (cloudfakes.py) answers like a well-behaved HTTP server; this one does what a
broken or hostile endpoint does at the byte level: never answer, answer one byte at a time,
reset the connection, answer something that is not HTTP, send more than anyone should read.
Each behaviour is a function `(connection, request bytes) -> None` run in its own thread;
`close()` ends every connection and the listener, so nothing outlives a test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from pathlib import Path

Behaviour = Callable[["Exchange"], None]


class Exchange:
    """One accepted connection: the request read so far, and ways to answer it."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.request = b""
        self.sent = 0

    def read_request(self) -> bytes:
        """Read the request head and a Content-Length body (enough for the clients under test)."""
        self.sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        self.request = head + b"\r\n\r\n" + body
        return self.request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def hold(self) -> None:
        """Keep the connection open and silent until the server closes."""
        self.stop.wait()

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.sock.close()


def http_response(status: int, body: bytes, content_type: str = "application/json",
                  headers: dict[str, str] | None = None, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Connection: close"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def token_json(token: str, **extra: object) -> bytes:
    return json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600, **extra}).encode()


class HostileEndpoint:
    """`behaviour` answers every connection; `url` is http(s)://127.0.0.1:<port>."""

    def __init__(self, behaviour: Behaviour, tls_dir: Path | None = None) -> None:
        self.behaviour = behaviour
        self.exchanges: list[Exchange] = []
        self.errors: list[BaseException] = []  # what a behaviour hit (the client hung up): for assertions
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        # A closed listener does not wake accept(): the loop polls the stop flag. Set here, not in
        # the thread, so a server closed at once cannot make the thread touch a closed socket.
        self._listener.settimeout(0.05)
        self._tls: ssl.SSLContext | None = None
        if tls_dir is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True, name="hostile-accept")
        self._accept.start()

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{'localhost' if self._tls else '127.0.0.1'}:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True, name="hostile-conn")
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self._tls is not None:
                sock.settimeout(10)
                sock = self._tls.wrap_socket(sock, server_side=True)
            exchange = Exchange(sock, self._stop)
            with self._lock:
                self.exchanges.append(exchange)
            self.behaviour(exchange)
        except (OSError, ValueError) as error:  # the client gave up: expected for most behaviours
            self.errors.append(error)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            exchanges, threads = list(self.exchanges), list(self._threads)
        for exchange in exchanges:
            with contextlib.suppress(OSError):
                exchange.sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(10)
        self._accept.join(10)


# ---- the catalogue of misbehaviours ------------------------------------------------------------


def silent(ex: Exchange) -> None:
    ex.read_request()
    ex.hold()


def drip(reply: bytes, interval: float) -> Behaviour:
    """The whole answer, one byte every `interval` seconds (every single read is fast)."""

    def run(ex: Exchange) -> None:
        ex.read_request()
        for i in range(len(reply)):
            if ex.stop.wait(interval):
                return
            ex.send(reply[i:i + 1])

    return run


def slow(reply: bytes, delay: float) -> Behaviour:
    def run(ex: Exchange) -> None:
        ex.read_request()
        if not ex.stop.wait(delay):
            ex.send(reply)

    return run


def answer(reply: bytes) -> Behaviour:
    def run(ex: Exchange) -> None:
        ex.read_request()
        ex.send(reply)

    return run


def reset(ex: Exchange) -> None:
    ex.read_request()
    ex.reset()


def reset_mid_body(reply: bytes) -> Behaviour:
    def run(ex: Exchange) -> None:
        ex.read_request()
        ex.send(reply[: len(reply) // 2])
        ex.reset()

    return run


def endless(chunk: bytes, headers: bytes) -> Behaviour:
    """Headers, then `chunk` forever (until the client stops reading)."""

    def run(ex: Exchange) -> None:
        ex.read_request()
        ex.send(headers)
        while not ex.stop.is_set():
            ex.send(chunk)

    return run
