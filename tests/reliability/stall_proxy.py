"""A TCP proxy that black-holes a PostgreSQL connection at one protocol phase, deterministically.

`proxy.py` stalls at a moment chosen by the clock; this one stalls when a byte pattern
passes, so each phase of a deploy is hit every time:

  startup   nothing is ever forwarded (a server that accepts and never speaks)
  auth      the server's SCRAM request is held back (AuthenticationSASL)
  session   the first query after login is held back (session set-up)
  query     a marked statement of deploy.sql reaches the server, its answer never returns
  copy      the COPY that loads the project's files starts, its data never arrives
  commit    a marked COMMIT reaches the server, its acknowledgement never returns

A stalled connection stays open and silent until `close()`; other connections (a
CancelRequest on a new socket) pass, except in `startup`, where every connection stalls.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    upstream: bool  # the pattern is looked for in client -> server bytes (else server -> client)
    pattern: bytes  # empty: stall at once
    forward_trigger: bool  # pass the chunk holding the pattern on before stalling


PHASES = {
    "startup": Phase("startup", True, b"", False),
    "auth": Phase("auth", False, b"SCRAM-SHA-256", False),
    "session": Phase("session", True, b"Q", False),  # armed by the first ReadyForQuery, see _pump
    "query": Phase("query", True, b"stall_marker_query", True),
    "copy": Phase("copy", True, b"FROM STDIN", True),
    "commit": Phase("commit", True, b"stall_marker_commit", True),
}
CANCEL_REQUEST = struct.pack("!ii", 16, 80877102)


class StallProxy:
    """Forward 127.0.0.1:<port> to `target` until `phase` is reached (see the module docstring)."""

    def __init__(self, target_port: int, phase: str) -> None:
        self.phase = PHASES[phase]
        self.target = ("127.0.0.1", target_port)
        self.stalled = threading.Event()  # set once a connection reached the phase
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True, name="stall-accept")
        self._accept.start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(5)
        self._accept.join(5)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self._sockets.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True, name="stall-conn")
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        if self.phase.name == "startup":
            self.stalled.set()
            self._closed.wait()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            return
        with self._lock:
            self._sockets.append(upstream)
        state = {"stalled": False, "ready": False, "cancel": None}
        pumps = [threading.Thread(target=self._pump, args=(client, upstream, True, state), daemon=True),
                 threading.Thread(target=self._pump, args=(upstream, client, False, state), daemon=True)]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()

    def _triggered(self, data: bytes, upstream: bool, state: dict, tail: bytes) -> bool:
        phase = self.phase
        if state["cancel"] is None and upstream:
            state["cancel"] = data.startswith(CANCEL_REQUEST)
        if state["cancel"]:
            return False  # a CancelRequest always passes: pgmi must be able to ask
        if phase.name == "session":
            if not upstream and b"Z\x00\x00\x00\x05" in tail + data:
                state["ready"] = True
                return False
            return upstream and state["ready"]
        return upstream == phase.upstream and phase.pattern in tail + data

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool, state: dict) -> None:
        tail = b""
        try:
            while not self._closed.is_set():
                if state["stalled"]:
                    self._closed.wait()
                    return
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if self._triggered(data, upstream, state, tail):
                    state["stalled"] = True
                    self.stalled.set()
                    if self.phase.forward_trigger:
                        dst.sendall(data)
                    continue
                dst.sendall(data)
                tail = (tail + data)[-64:]
        except (OSError, ValueError):
            pass
        finally:
            if not state["stalled"]:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
