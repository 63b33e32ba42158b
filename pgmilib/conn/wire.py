"""The pg8000 connection as pgmi uses it: the ONE module that touches pg8000's private parts.

pg8000's native `Connection` is extended with streamed notices, transaction status, a real
CancelRequest, and socket control (clearing the connect timeout, shutting the socket down
when a cancel is not answered). These rely on private details of the pinned pg8000 version
(handler methods looked up per message in `message_types`, `_backend_key_data`, `_usock`,
`_client_encoding`); keeping them here means an upgrade is checked in one file.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
from collections.abc import Callable

from pgmilib.lean import import_uuid

import_uuid()  # before the driver, which imports it: without `platform`

import pg8000.exceptions
import pg8000.native

from pgmilib.conn.params import DEFAULT_HOST, DEFAULT_PORT
from pgmilib.errors import PgDiagnostics

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, Protocol
else:  # the Protocol classes below are structural types for type checkers, plain classes at run time
    Protocol = object

CANCEL_REQUEST_CODE = 80877102
CLOSE_WAIT_SECONDS = 1.0  # close(): the longest wait for the server to end the session, without a socket timeout

# The driver's exceptions, named once: the rest of pgmi catches these names and never imports
# pg8000 (tests/test_architecture.py keeps it so). They cover a LiveConnection and a plain
# pg8000 connection an API caller or a test passes in alike.
#: What the driver and the network raise for a failed round trip. Anything else escaping a
#: `run()` is a bug in pgmi and must reach the panic path (exit 3), not be reported as a
#: connection or SQL failure.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (pg8000.exceptions.Error, OSError)
#: The server answered with an ErrorResponse: `PgDiagnostics.from_exception` reads its fields
#: (SQLSTATE, message, position...).
SERVER_ERRORS: tuple[type[BaseException], ...] = (pg8000.exceptions.DatabaseError,)
#: The round trip failed below the server's answer: the driver's network failures (pg8000
#: wraps the socket's as "network error") and a socket timeout that escaped unwrapped.
LOST_ERRORS: tuple[type[BaseException], ...] = (pg8000.exceptions.InterfaceError, ConnectionError,
                                               TimeoutError, socket.timeout)


class Session(Protocol):
    """What the deploy core asks of a connection: a LiveConnection, or a plain pg8000 native
    connection a test or an API caller passes in (without notices, COPY refusal or status)."""

    def run(self, sql: str, **params: Any) -> Any:
        ...

    def close(self) -> None:
        ...


def session_end(error: BaseException) -> str | None:
    """For a server error that ended the session (FATAL, PANIC: pg_terminate_backend, a
    shutdown), its text `FATAL: message (SQLSTATE x)`; None for any other error."""
    fields = error.args[0] if isinstance(error, SERVER_ERRORS) and error.args and isinstance(error.args[0], dict) \
        else {}
    if fields.get("S") not in ("FATAL", "PANIC"):
        return None
    return f"{fields.get('S')}: {fields.get('M', '')} (SQLSTATE {fields.get('C', '?')})"


def roll_back_open(conn: Session) -> None:
    """ROLLBACK when a transaction is open or failed, else nothing: a bare ROLLBACK on an idle
    session makes the server warn "there is no transaction in progress", which the user would
    see. A connection without a transaction status (a plain pg8000 one) counts as idle."""
    if getattr(conn, "transaction_status", "I") != "I":
        conn.run("ROLLBACK")


COPY_BOTH_RESPONSE = b"W"
COPY_FAIL = b"f"
COPY_DONE = b"c"
COPY_IN_REFUSAL = "COPY FROM STDIN is not supported in deploy.sql (pgmi has no data stream to send)"


class UnsendableSecret(pg8000.exceptions.InterfaceError):
    """The password (or token) cannot be sent as it is; the text says why, never what it is."""


class AuthMethodRefused(pg8000.exceptions.InterfaceError):
    """The server asked for an authentication method require_auth does not allow; nothing was sent."""


#: What each authentication request asks for, in require_auth's words (0 first: no exchange at all).
AUTH_METHOD_NAMES = {0: "none", 2: "kerberos", 3: "password", 5: "md5", 7: "gss", 9: "sspi", 10: "scram-sha-256"}


def secret_problem(secret: str | None) -> str | None:
    """Why `secret` cannot travel in a PasswordMessage at all (None: it can)."""
    if secret is None:
        return None
    if "\x00" in secret:
        return "contains a NUL character, which the protocol cannot carry"
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate)"
    return None


def _dial(kwargs: dict[str, Any]) -> socket.socket | None:
    """Open the transport the driver would open, here, and hand it over as `sock`.

    The driver keeps the socket it opens to itself until the start-up is over (TLS
    negotiation, authentication), so nothing could shut it while a stalled server keeps the
    start-up waiting: Ctrl-C waited for the connection's time limit. Errors are the driver's,
    worded as it words them. A socket the caller brings (a tunnel) is used as it is.
    """
    if kwargs.get("sock") is not None:
        kwargs.pop("unix_sock", None)  # the socket was opened to it (conn/early.py); the driver takes one of the two
        return kwargs["sock"]
    timeout = kwargs.get("timeout")
    unix_path = kwargs.pop("unix_sock", None)
    if unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(unix_path)
        except OSError as error:
            sock.close()
            raise pg8000.exceptions.InterfaceError("communication error") from error
    else:
        host, port = kwargs.get("host", DEFAULT_HOST), kwargs.get("port", DEFAULT_PORT)
        try:
            sock = socket.create_connection((host, port), timeout)
        except OSError as error:
            raise pg8000.exceptions.InterfaceError(
                f"Can't create a connection to host {host} and port {port} "
                f"(timeout is {timeout} and source_address is None).") from error
    if kwargs.get("tcp_keepalive", True):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    kwargs["sock"] = sock
    return sock


class LiveConnection(pg8000.native.Connection):
    """pg8000's native connection plus streamed notices, CancelRequest and transaction status.

    Relies on two private pg8000 details (pinned version, covered by tests): handler
    methods are looked up per message in `message_types`, and `_backend_key_data` holds
    the BackendKeyData payload.
    """

    def __init__(self, *args: Any, on_notice: Callable[[PgDiagnostics], None] | None = None,
                 registry: list[LiveConnection] | None = None,
                 auth_check: Callable[[str], str | None] | None = None, **kwargs: Any) -> None:
        if registry is not None:  # reachable (shutdown_socket) while the start-up below still runs
            registry.append(self)
        self.on_notice = on_notice
        # require_auth: called with the method the server asks for, before anything is sent;
        # a text is the refusal. `_auth_asked` tells AuthenticationOk after an exchange from "none".
        self._auth_check = auth_check
        self._auth_asked = False
        self._shut_timer: threading.Timer | None = None
        self.notice_errors = 0  # notices whose callback raised (the message loop must go on)
        # COPY without a client stream (COPY inside deploy.sql): rows go to `on_copy_out`;
        # COPY IN is refused on the wire and counted, so the caller can say why it failed.
        self.on_copy_out: Callable[[str], None] | None = None
        self.copy_in_refused = 0
        self._simple_query = False
        self._tx_status = "I"
        self._cancel_target: str | tuple[str, int] = kwargs.get("unix_sock") or (
            kwargs.get("host", DEFAULT_HOST), int(kwargs.get("port", DEFAULT_PORT)))
        self._dialled: socket.socket | None = None
        self._dialled = _dial(kwargs)
        super().__init__(*args, **kwargs)
        # A socket started early (conn/early.py): its wrapper is done once the login is read.
        unwrap = getattr(self._sock, "unwrap", None)
        if unwrap is not None:
            self._sock = unwrap()
        #: A query went out behind the login (early.Started.send_at_login); `answer_ahead()` reads it.
        self.query_ahead = getattr(self._dialled, "query_sent", False)
        # pg8000 has no handler for CopyBothResponse (a KeyError would desync the loop).
        self.message_types[COPY_BOTH_RESPONSE] = self.handle_COPY_BOTH_RESPONSE

    def execute_simple(self, statement: str) -> Any:
        # Remembered so a refused COPY IN knows no Sync follows (simple query protocol).
        self._simple_query = True
        try:
            return super().execute_simple(statement)
        finally:
            self._simple_query = False

    def send_simple(self, statement: str) -> Callable[[], Any]:
        """Send one simple query and return at once: the server works while the client goes on.

        Call the result to read the server's answer (the last statement's rows; a failure is raised
        there, as `run` would raise it). Nothing else may use the connection before that call,
        except close(), which reads the answer to the end before the server closes the socket.
        The answer must stay small enough to wait in the socket's buffers (command tags, a few
        notices): pgmi sends its own set-up scripts this way, never the user's SQL.
        """
        self.send_QUERY(statement)
        self._flush()
        return self._answer(statement)

    def answer_ahead(self) -> Callable[[], Any]:
        """The query sent behind the login (`query_ahead`), as `send_simple` returns it: call the
        result to read its answer. Once: a second call has nothing left to read."""
        if not self.query_ahead:
            raise RuntimeError("no query was sent behind the login")
        self.query_ahead = False
        return self._answer("")

    def _answer(self, statement: str) -> Callable[[], Any]:
        from pg8000.core import Context

        context = Context(statement)

        def finish() -> Any:
            self._simple_query = True
            try:
                self.handle_messages(context)
            finally:
                self._simple_query = False
            self._context = context
            return context.rows

        return finish

    # ---- COPY without a client stream: never abandon the stream while the server goes on --
    def handle_COPY_OUT_RESPONSE(self, data: bytes, context: Any) -> None:
        if context.stream is not None:
            super().handle_COPY_OUT_RESPONSE(data, context)
            return
        if data[:1] == b"\x01":  # binary format: count it, do not print bytes to a terminal
            context.copy_binary_bytes = 0
            context.stream_write = lambda chunk: setattr(
                context, "copy_binary_bytes", context.copy_binary_bytes + len(chunk))
        else:
            context.stream_write = self._copy_out_sink

    def handle_COPY_DONE(self, data: bytes, context: Any) -> None:
        size = getattr(context, "copy_binary_bytes", None)
        if size is not None:
            context.copy_binary_bytes = None
            self._copy_out_show(f"(binary COPY output: {size} bytes, not shown)")

    def handle_COPY_BOTH_RESPONSE(self, data: bytes, context: Any) -> None:
        """Only a replication connection gets here; end our half at once and show what arrives."""
        context.stream_write = self._copy_out_sink
        self._send_message(COPY_DONE, b"")
        self._flush()

    def _flush(self) -> None:
        try:
            self._sock.flush()
        except OSError as exc:
            import pg8000.exceptions

            raise pg8000.exceptions.InterfaceError("network error") from exc

    def _copy_out_sink(self, data: bytes) -> None:
        encoding = getattr(self, "_client_encoding", "utf8")
        self._copy_out_show(bytes(data).decode(encoding, "replace").rstrip("\n"))

    def _copy_out_show(self, text: str) -> None:
        if self.on_copy_out is None:
            return
        try:
            self.on_copy_out(text)
        except Exception:  # noqa: BLE001 -- a failing display must not desync the protocol loop
            self.notice_errors += 1

    def handle_COPY_IN_RESPONSE(self, data: bytes, context: Any) -> None:
        if context.stream is not None:
            super().handle_COPY_IN_RESPONSE(data, context)
            return
        # CopyFail: the server raises an error, so the statement (and its implicit or explicit
        # transaction) does not commit. The extended protocol also needs a Sync to resume.
        self.copy_in_refused += 1
        self._send_message(COPY_FAIL, COPY_IN_REFUSAL.encode("utf-8") + b"\x00")
        if not self._simple_query:
            self._send_message(b"S", b"")
        self._flush()

    def handle_NOTICE_RESPONSE(self, data: bytes, context: Any) -> None:
        super().handle_NOTICE_RESPONSE(data, context)
        if self.on_notice is not None:
            encoding = getattr(self, "_client_encoding", "utf8")
            fields = {part[:1].decode("ascii", "replace"): part[1:].decode(encoding, "replace")
                      for part in data.split(b"\x00") if part}
            try:
                self.on_notice(PgDiagnostics.from_fields(fields))
            except Exception:  # noqa: BLE001 -- a failing display must not desync the protocol loop
                self.notice_errors += 1

    def handle_ERROR_RESPONSE(self, data: bytes, context: Any) -> None:
        """Raise a FATAL/PANIC error at once: the server closes the socket right after it, and
        pg8000 would read on, hit the closed socket and report only "network error", losing the
        server's reason (57P01 `terminating connection due to administrator command`)."""
        super().handle_ERROR_RESPONSE(data, context)
        fields = context.error.args[0] if context.error is not None and context.error.args else {}
        if isinstance(fields, dict) and (fields.get("V") or fields.get("S")) in ("FATAL", "PANIC"):
            raise context.error

    def handle_AUTHENTICATION_REQUEST(self, data: bytes, context: Any) -> None:
        code = struct.unpack("!i", data[:4])[0]
        method = AUTH_METHOD_NAMES.get(code) if code != 0 or not self._auth_asked else None
        self._auth_asked = True
        refusal = self._auth_check(method) if method is not None and self._auth_check is not None else None
        if refusal:
            raise AuthMethodRefused(refusal)
        # pg8000 crashes with AttributeError on SCRAM (code 10) without a password; say it plainly.
        if self.password is None and struct.unpack("!i", data[:4])[0] in (3, 5, 10):
            import pg8000.exceptions

            raise pg8000.exceptions.InterfaceError("server requesting password authentication, "
                                                   "but no password was provided")
        try:
            super().handle_AUTHENTICATION_REQUEST(data, context)
        except Exception as exc:
            # scramp is imported by the driver only for a SCRAM login (build.py defers it), and
            # only then can its exception be what went wrong.
            scramp = sys.modules.get("scramp")
            if scramp is None or not isinstance(exc, scramp.ScramException):
                raise
            import unicodedata

            # SASLprep (RFC 4013) refuses control characters; scramp says so without the value.
            if any(unicodedata.category(ch) == "Cc" for ch in (self.password or b"").decode("utf-8", "replace")):
                raise UnsendableSecret("contains a control character, which SCRAM authentication "
                                       "(SASLprep) does not allow") from None
            raise UnsendableSecret(f"was refused by the SCRAM exchange: {exc.args[0] if exc.args else exc}") from None

    def handle_READY_FOR_QUERY(self, data: bytes, context: Any) -> None:
        super().handle_READY_FOR_QUERY(data, context)
        self._tx_status = data[:1].decode("ascii", "replace") or "I"

    @property
    def transaction_status(self) -> str:
        """'I' idle, 'T' inside a transaction block, 'E' inside a failed transaction."""
        return self._tx_status

    @property
    def backend_pid(self) -> int | None:
        key = self._backend_key_data
        return struct.unpack("!i", key[:4])[0] if key else None

    def cancel(self) -> None:
        """Ask the server to cancel the running statement (CancelRequest on a new socket).

        Safe to call from another thread; errors are swallowed because cancelling is best
        effort (the caller closes the session socket afterwards anyway).
        """
        key = self._backend_key_data
        if not key:
            return
        packet = struct.pack("!ii", 16, CANCEL_REQUEST_CODE) + bytes(key[:8])
        target = self._cancel_target
        try:
            if isinstance(target, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(5)
                sock.connect(target)
            else:
                sock = socket.create_connection(target, timeout=5)
            with sock:
                sock.sendall(packet)
                try:  # the server closes the socket once it has read the request
                    sock.recv(1)
                except OSError:
                    pass
        except OSError:
            pass

    def clear_socket_timeout(self) -> None:
        """Drop the connect timeout pg8000 leaves on the socket (it would apply to every query)."""
        self._usock.settimeout(None)

    def shut_after(self, seconds: float | None) -> None:
        """Shut the socket down `seconds` from now unless the connection is closed first.

        The last resort behind the run's deadline: whatever this connection is blocked in
        then (a query on a black-holed network, a read nobody will answer) returns at once.
        """
        if seconds is None:
            return
        self._shut_timer = threading.Timer(max(0.0, seconds), self.shutdown_socket)
        self._shut_timer.daemon = True
        self._shut_timer.start()

    def close(self) -> None:
        """Say goodbye, then wait until the server has ended the session (at most the socket's
        timeout, else CLOSE_WAIT_SECONDS).

        The server drops the session's temporary objects and frees its locks as it exits, and
        closes the socket only after that: once close() returns, a DROP ROLE or a catalog query of
        the next client no longer meets them (a process that ends right after close() would leave
        that race to the next client).
        """
        if self._shut_timer is not None:
            self._shut_timer.cancel()
        buffered = self._sock
        try:  # a second descriptor keeps the connection readable after pg8000 closes its socket (for
            # TLS too: the raw bytes are only read to the end, never decrypted)
            usock = self._usock
            waiter = socket.fromfd(usock.fileno(), usock.family, usock.type)
            waiter.settimeout(usock.gettimeout() or CLOSE_WAIT_SECONDS)
        except (OSError, AttributeError, ValueError):
            waiter = None
        try:
            super().close()
            with contextlib.suppress(OSError):  # a timeout or a reset: nothing more to wait for
                while waiter is not None and waiter.recv(4096):
                    pass
        finally:
            if waiter is not None:
                waiter.close()
            # When the goodbye cannot be sent (a lost connection), pg8000 closes the socket and drops
            # its buffered file with the unsent bytes still in it; the garbage collector would flush
            # them again into the closed socket and print "Exception ignored ... Bad file descriptor"
            # on stderr at exit. Closing it here, once, discards them.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                buffered.close()

    def set_socket_timeout(self, seconds: float | None) -> None:
        """Bound every blocking read/write from now on (clean-up budgets)."""
        self._usock.settimeout(seconds)

    def shutdown_socket(self) -> None:
        """Shut the socket down from another thread: a blocked read returns at once.

        During the start-up the driver has not stored its socket yet (it waits for the
        SSLRequest's answer and the authentication on it first): the one `_dial` opened is shut.
        """
        sock = getattr(self, "_usock", None) or self._dialled
        try:
            sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
