"""The socket the driver adopts from the early start (conn/early.py): a connected socket that
has sent the start-up packet already, and may have read the server's first answer.

Kept apart from the early start because it is a `socket.socket`: the `socket` module (its enum
tables, ~3 ms) is imported after the start-up packet is out, together with the driver, which
needs it anyway; the early start itself opens and writes its socket with `_socket` alone.
"""

from __future__ import annotations

import os
import socket

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any


class Mismatch(Exception):
    """The driver's start-up packet is not the one sent ahead: the attempt's parameters differ from
    the early start's, or the driver changed (tests/test_early_start.py pins its layout)."""


class StartedSocket(socket.socket):
    """A connected socket that has already sent `sent`, the start-up packet.

    The driver wraps its socket with `makefile()`; the wrapper drops the driver's own copy of
    the packet, byte for byte the same, and passes everything else through.
    """

    sent: bytes = b""
    replay: bytes = b""  # the server's first bytes, read here: the driver reads them first
    query_sent = False  # a query went out behind the login (send_at_login): its answer is unread

    def makefile(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return _SkipSent(super().makefile(*args, **kwargs), self.sent, self.replay)


class _SkipSent:
    def __init__(self, stream: Any, sent: bytes, replay: bytes = b"") -> None:
        self._stream = stream
        self._pending = sent
        self._replay = replay

    def read(self, size: int = -1) -> bytes:
        if not self._replay:
            return self._stream.read(size)
        if size < 0:
            data, self._replay = self._replay + self._stream.read(), b""
            return data
        data, self._replay = self._replay[:size], self._replay[size:]
        return data

    def unwrap(self) -> Any:
        """The driver's own stream, once the packet is dropped and the replay read (every later
        read then costs no detour through this wrapper); this wrapper while either is left."""
        return self if self._pending or self._replay else self._stream

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


def adopt(raw: Any, sent: bytes, replay: bytes, query_sent: bool) -> StartedSocket:
    """`raw` (a connected `_socket.socket`) as a StartedSocket, its descriptor and timeout kept."""
    timeout = raw.gettimeout()
    family, kind, proto = raw.family, raw.type, raw.proto
    fd = raw.detach()
    try:
        sock = StartedSocket(family, kind, proto, fileno=fd)
    except BaseException:
        os.close(fd)
        raise
    sock.settimeout(timeout)  # a socket made from a descriptor starts with the default timeout
    sock.sent, sock.replay, sock.query_sent = sent, replay, query_sent
    return sock
