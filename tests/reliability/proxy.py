"""A small threaded TCP proxy on 127.0.0.1 that can cut or stall its connections on command.

Why a proxy and not iptables: it needs no privileges, works the same on every machine,
and acts at an exact moment chosen by the test. pgmi connects to `proxy.port`; each
accepted client gets its own upstream connection to the server and two pump threads.

- `cut()`: reset every open connection at once (SO_LINGER 0, so both sides see a
  connection reset, like a dropped NAT entry or a killed load balancer).
- `stall()`: stop forwarding on the open connections; bytes pile up unread, the peers
  see a silent network (a black-holed route). New connections still pass, so a client
  can still send a CancelRequest; `resume()` undoes the stall.
- `refuse_new = True`: accept and immediately reset new connections.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.Self is 3.11+; annotations are never evaluated (future import)
    from typing import Self


class TcpProxy:
    """Forward 127.0.0.1:<port> to (host, port); see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.refuse_new = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stalled = threading.Event()
        self._closed = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- commands -------------------------------------------------------------------
    def cut(self) -> int:
        """Reset every open connection; returns how many client connections were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    def stall(self) -> int:
        """Stop forwarding on the connections open now; returns how many."""
        with self._lock:
            self._stalled.set()
            return len(self._pairs)

    def resume(self) -> None:
        self._stalled.clear()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._stalled.clear()
        self.cut()

    # ---- internals ------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.refuse_new:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            stalled_at_birth = self._stalled.is_set()
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, stalled_at_birth), daemon=True,
                                 name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket, born_stalled: bool) -> None:
        """Copy src -> dst until either side closes; while stalled (and not born so), hold the bytes."""
        try:
            while not self._closed.is_set():
                if self._stalled.is_set() and not born_stalled:
                    self._closed.wait(0.05)
                    continue
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if self._stalled.is_set() and not born_stalled:
                    # Stalled between select and recv: keep the bytes until resumed or closed.
                    while self._stalled.is_set() and not self._closed.is_set():
                        self._closed.wait(0.05)
                dst.sendall(data)
        except (OSError, ValueError):  # ValueError: the other pump closed the socket (fd -1) meanwhile
            pass
        finally:
            self._forget(src, dst)

    def _forget(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            self._pairs = [p for p in self._pairs if a not in p and b not in p]
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
