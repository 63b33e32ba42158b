"""The stdio loop of `pgmi serve`: one JSON-RPC message per line in, one per line out.

Reading never stops for a tool: `tools/call` runs on a worker thread so the loop keeps
reading, which is how a `notifications/cancelled` for a running deploy arrives and
cancels it. Every other method is answered inline. Answers are written whole, one line
each, under a lock, to stdout only; nothing else ever writes there while serving.

Lines have no length limit (readline on the binary stream); blank lines are skipped; a
last message without a newline is still handled. At end of input the server waits for
running calls to answer and returns 0. SIGINT/SIGTERM cancel running calls and stop.

Every request gets exactly one answer, whatever happens: the reader and writer cannot
raise (jsonrpc.py); a second `tools/call` with the id of one still running is refused
(-32600) rather than run, so the two answers and a cancel can never be confused; a worker
that fails in any way (even outside the tool) still answers -32603; a line that trips a bug
in this loop is answered -32603 with id null and the loop goes on.

`send(message)` is the one way anything reaches stdout (answers, and notifications a tool
may emit while it runs): thread-safe, one whole line per message.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, BinaryIO

from pgmilib.mcp import jsonrpc
from pgmilib.mcp.dispatch import Dispatcher
from pgmilib.mcp.tools import CallContext


class _Stop(BaseException):
    """Raised from a signal handler to leave the read loop (a BaseException: no `except Exception`
    guarding one line or one request may swallow it)."""


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
        """Write one message as one line of strict JSON; safe from any thread; never raises."""
        data = jsonrpc.encode(message)
        with self._write_lock:
            try:
                self.stdout.write(data)
                self.stdout.flush()
            except (OSError, ValueError):  # the client went away (or closed our stdout): nobody to tell
                pass

    # ---- one line ----------------------------------------------------------------------
    def handle_line(self, line: bytes) -> None:
        """Handle one input line; never raises (a bug is answered -32603 with id null)."""
        try:
            self._handle_line(line)
        except Exception as error:  # noqa: BLE001 -- one bad line must not end the session
            self.send(jsonrpc.error_response(None, _internal(error)))

    def _handle_line(self, line: bytes) -> None:
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
            return jsonrpc.error_response(request.id, _internal(error))

    def _start_call(self, request: jsonrpc.Request) -> None:
        context = CallContext(notify=self.send)
        key = jsonrpc.id_key(request.id)
        with self._running_lock:
            duplicate = key in self._running
            if not duplicate:
                self._running[key] = context
        if duplicate:
            self.send(jsonrpc.error_response(request.id, jsonrpc.ProtocolError(
                jsonrpc.INVALID_REQUEST, "invalid request: a call with this id is still running "
                                         "(ids must be unique among the requests in flight); not started")))
            return

        def work() -> None:
            try:
                answer = self._answer(request, context)
            except BaseException as error:  # noqa: BLE001 -- whatever ends the worker, the request is answered
                answer = jsonrpc.error_response(request.id, _internal(error))
            finally:
                with self._running_lock:
                    if self._running.get(key) is context:
                        del self._running[key]
            self.send(answer)

        worker = threading.Thread(target=work, name="pgmi-mcp-call", daemon=True)
        try:
            worker.start()
        except RuntimeError as error:  # "can't start new thread": answer instead of running it
            with self._running_lock:
                self._running.pop(key, None)
            self.send(jsonrpc.error_response(request.id, _internal(error)))
            return
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]

    def _cancel(self, params: Any) -> None:
        key = jsonrpc.id_key(params.get("requestId")) if isinstance(params, dict) else None
        if key is None:  # no id, or not one a request could have (null, [1], {}): nothing to cancel
            return
        with self._running_lock:
            context = self._running.get(key)
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


def _internal(error: BaseException) -> jsonrpc.ProtocolError:
    from pgmilib.redact import redact

    text = redact(jsonrpc.shown(str(error) or type(error).__name__))
    return jsonrpc.ProtocolError(jsonrpc.INTERNAL_ERROR, f"internal error: {text}")


def install_signal_handlers() -> dict[int, Any]:
    """SIGINT/SIGTERM leave the read loop (main thread only); returns the previous handlers."""

    def stop(signum: int, frame: Any) -> None:
        raise _Stop()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, stop)
    return previous
