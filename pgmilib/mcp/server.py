"""The stdio loop of `pgmi serve`: one JSON-RPC message per line in, one per line out.

Reading never stops for a tool: `tools/call` runs on a worker thread so the loop keeps
reading, which is how a `notifications/cancelled` for a running deploy arrives and
cancels it. Every other method is answered inline. Answers are written whole, one line
each, under a lock, to stdout only; nothing else ever writes there while serving.

Lines have no length limit (readline on the binary stream); blank lines are skipped; a
last message without a newline is still handled. At end of input the server waits for
running calls to answer and returns 0. SIGINT/SIGTERM cancel running calls and stop.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, BinaryIO

from pgmilib.mcp import jsonrpc
from pgmilib.mcp.dispatch import Dispatcher
from pgmilib.mcp.tools import CallContext


class _Stop(Exception):
    """Raised from a signal handler to leave the read loop."""


class Server:
    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, dispatcher: Dispatcher | None = None) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.dispatcher = dispatcher or Dispatcher()
        self._write_lock = threading.Lock()
        self._running: dict[Any, CallContext] = {}
        self._running_lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    # ---- output ------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        data = jsonrpc.encode(message)
        with self._write_lock:
            try:
                self.stdout.write(data)
                self.stdout.flush()
            except (BrokenPipeError, ValueError):  # the client went away (or closed our stdout): nobody to tell
                pass

    # ---- one line ----------------------------------------------------------------------
    def handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        parsed = jsonrpc.parse(line)
        if parsed is None:
            return
        if isinstance(parsed, dict):
            self.send(parsed)
            return
        if parsed.notification:
            if parsed.method == "notifications/cancelled":
                self._cancel(parsed.params)
            return
        if parsed.method == "tools/call":
            self._start_call(parsed)
            return
        self.send(self._answer(parsed, None))

    def _answer(self, request: jsonrpc.Request, context: CallContext | None) -> dict[str, Any]:
        try:
            return jsonrpc.response(request.id, self.dispatcher.handle(request, context))
        except jsonrpc.ProtocolError as error:
            return jsonrpc.error_response(request.id, error)
        except Exception as error:  # noqa: BLE001 -- never let one request end the session
            return jsonrpc.error_response(request.id, jsonrpc.ProtocolError(jsonrpc.INTERNAL_ERROR,
                                                                             f"internal error: {error}"))

    def _start_call(self, request: jsonrpc.Request) -> None:
        context = CallContext(notify=self.send)
        key = _key(request.id)
        with self._running_lock:
            self._running[key] = context

        def work() -> None:
            try:
                self.send(self._answer(request, context))
            finally:
                with self._running_lock:
                    if self._running.get(key) is context:
                        del self._running[key]

        worker = threading.Thread(target=work, name=f"pgmi-mcp-call-{request.id}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()

    def _cancel(self, params: Any) -> None:
        if not isinstance(params, dict) or "requestId" not in params:
            return
        with self._running_lock:
            context = self._running.get(_key(params["requestId"]))
        if context is not None:
            context.cancel()

    def cancel_all(self) -> None:
        with self._running_lock:
            contexts = list(self._running.values())
        for context in contexts:
            context.cancel()

    def wait(self, timeout: float | None = None) -> None:
        for worker in list(self._workers):
            worker.join(timeout)

    # ---- the loop ----------------------------------------------------------------------
    def serve(self) -> int:
        try:
            while True:
                line = self.stdin.readline()
                if not line:
                    break
                self.handle_line(line)
        except (_Stop, KeyboardInterrupt):
            self.cancel_all()
            self.wait(10)
            return 0
        self.wait()
        return 0


def _key(request_id: Any) -> tuple[str, Any]:
    """Ids 1 and "1" are different requests; 1 and 1.0 are the same number."""
    return ("s", request_id) if isinstance(request_id, str) else ("n", float(request_id))


def install_signal_handlers() -> dict[int, Any]:
    """SIGINT/SIGTERM leave the read loop (main thread only); returns the previous handlers."""

    def stop(signum: int, frame: Any) -> None:
        raise _Stop()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, stop)
    return previous
