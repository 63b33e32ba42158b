"""ConnParams -> a live pg8000 connection: TLS per sslmode, retries, notices, cancel, deadline.

Why not pg8000's defaults: its `ssl_context=None` tries TLS *without verifying anything*
and silently falls back to plaintext, and its `timeout` stays on the socket for the life of
the connection (a long deploy statement would die with socket.timeout). So every attempt
passes an explicit context (or False), sslmode's attempt order (allow: plain then TLS;
prefer: TLS then plain) is implemented here, and the socket timeout is cleared once the
startup handshake is done; the run-wide `--timeout` is enforced by a watchdog calling
`LiveConnection.cancel()` instead.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import socket
from collections.abc import Callable, Iterator

from pgmilib import records
from pgmilib.conn.adopted import Mismatch
from pgmilib.conn.auth import provider_for
from pgmilib.conn.backoff import Backoff, pause
from pgmilib.conn.deadline import CANCEL_GRACE_SECONDS, CANCELLED, Deadline
from pgmilib.conn.early import Started, application_name, startup_params, unsendable
from pgmilib.conn.libpqkeys import check_options, parse_require_auth, session_matches, unused_keys
from pgmilib.conn.params import ConnParams
from pgmilib.conn.tls import build_ssl_context
from pgmilib.conn.wire import DRIVER_ERRORS, AuthMethodRefused, LiveConnection, UnsendableSecret, secret_problem
from pgmilib.errors import ConfigError, ConnectionFailed, Interrupted, Marker, PgDiagnostics, go_quote
from pgmilib.redact import redact

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    import random  # at run time only for a retry's jitter (pgmilib/conn/backoff.py)
    import ssl  # at run time only where TLS is used or an error is classified: a unix socket never loads it
    from typing import Any

MAX_RETRIES = 3  # so at most 4 attempts
_TRANSIENT_TEXT = ("connection refused", "connection reset", "connection timeout", "connection failure",
                   "network is unreachable", "i/o timeout", "broken pipe", "too many connections",
                   "server closed the connection", "unexpected eof", "connection pool exhausted")


def _attempt_plan(params: ConnParams, ctx: ssl.SSLContext | bool) -> list[ssl.SSLContext | bool]:
    if ctx is False:
        return [False]
    mode = params.sslmode or "prefer"
    if mode == "allow":
        return [False, ctx]
    if mode == "prefer":
        return [ctx, False]
    return [ctx]


# ---------------------------------------------------------------------------------------
# Error classification
# ---------------------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend([item.__cause__, item.__context__])


def diagnostics(exc: BaseException) -> PgDiagnostics | None:
    """The server's error fields anywhere in the exception chain (pg8000 may hide them
    behind a "network error" raised while it closes the socket)."""
    for item in _chain(exc):
        diag = PgDiagnostics.from_exception(item)
        if diag is not None:
            return diag
    return None


def _is_network_drop(item: BaseException) -> bool:
    import pg8000.exceptions

    return isinstance(item, pg8000.exceptions.InterfaceError) and str(item) in ("network error",
                                                                                "communication error")


def is_transient(exc: BaseException) -> bool:
    """Is this failure worth another attempt? (SQLSTATE first, then errno, then text)."""
    diag = diagnostics(exc)
    if diag is not None and diag.sqlstate:
        code = diag.sqlstate
        if code[:2] in ("08", "53"):
            return True
        if code[:2] == "57":
            return code not in ("57014", "57P04")
        return code in ("40001", "40P01", "55P03")
    import ssl

    items = list(_chain(exc))
    if any(isinstance(item, ssl.SSLError) for item in items):
        return False  # a TLS failure (certificate, CA, protocol) does not heal in 700 ms
    for item in items:
        if isinstance(item, socket.gaierror):
            return item.errno == socket.EAI_AGAIN
        if isinstance(item, (TimeoutError, socket.timeout)):  # one class from 3.10 on, two before
            return True
        if isinstance(item, OSError) and item.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.ENETUNREACH,
                                                        errno.EHOSTUNREACH, errno.EPIPE):
            return True
        if _is_network_drop(item) and not isinstance(item.__cause__, FileNotFoundError):
            return True  # the server hung up mid-handshake: pgx calls this "unexpected EOF"
    text = " ".join(str(item) for item in _chain(exc)).lower()
    return any(needle in text for needle in _TRANSIENT_TEXT)


def _client_certificate_refused(exc: BaseException, params: ConnParams) -> bool:
    """A hang-up at start-up on a connection that presented a client certificate.

    Under TLS 1.3 the server checks the client's certificate after the handshake has completed on
    our side; a refused one arrives as the TLS alert or, when the server's close races our start-up
    packet, as a reset or end of file on the first read. The same certificate would be refused
    again, so it is not retried (like every other TLS failure).
    """
    if not params.sslcert or params.sslmode == "disable":
        return False
    import ssl

    if any(isinstance(item, ssl.SSLError) for item in _chain(exc)):
        return False  # the alert itself arrived: the usual TLS failure message says it better
    for item in _chain(exc):
        if isinstance(item, OSError) and item.errno in (errno.ECONNRESET, errno.EPIPE):
            return True
        if _is_network_drop(item):
            return True
    return False


def _describe(exc: BaseException) -> str:
    """The most informative text of the chain (the OS/TLS error beats pg8000's wrapper)."""
    import ssl

    items = list(_chain(exc))
    tls = [i for i in items if isinstance(i, ssl.SSLError)]
    # pg8000 often reports the TLS alert only as the context of a later "connection closed".
    tls.sort(key=lambda i: (not isinstance(i, ssl.SSLCertVerificationError),
                            isinstance(i, (ssl.SSLZeroReturnError, ssl.SSLEOFError))))
    if tls:
        first = tls[0]
        return getattr(first, "verify_message", "") or str(first.reason or first).replace("_", " ").lower()
    for item in items:
        if isinstance(item, OSError) and item.strerror:
            return item.strerror
    if _is_network_drop(exc):
        return "server closed the connection unexpectedly"
    return str(exc) or type(exc).__name__


def friendly_failure(exc: BaseException, params: ConnParams, database: str) -> ConnectionFailed:
    """ConnectionFailed with a first line saying what failed where, and a hint in the trailer."""
    host, port, user = params.host, params.port, params.user
    where = f"{host}:{port}"
    diag = diagnostics(exc)
    code = diag.sqlstate if diag else ""
    server_msg = diag.message if diag else ""
    if code == "28P01":
        msg, hint = (f"password authentication failed for user {go_quote(user)} on database {go_quote(database)}",
                     "check $PGPASSWORD, ~/.pgpass, or the connection string")
    elif code == "28000":
        msg = f"authentication rejected for user {go_quote(user)} on database {go_quote(database)}: {server_msg}"
        if server_msg.startswith("role ") and server_msg.endswith("does not exist"):
            role = '"' + user.replace('"', '""') + '"'
            hint = (f"no role {go_quote(user)} on this server: connect as an existing one (-U, $PGUSER), or have an "
                    f"administrator create it (CREATE ROLE {role} LOGIN PASSWORD '...')")
        else:
            hint = "no pg_hba.conf entry matches this host, user, and method"
    elif code == "3D000":
        msg, hint = (f"database {go_quote(database)} does not exist",
                     f"create it with `createdb {database}` or pass --overwrite")
    elif code == "42501":
        msg, hint = server_msg, f"GRANT CONNECT ON DATABASE {database} TO {user}"
    elif code == "53300":
        msg, hint = f"too many connections to database {go_quote(database)}", "server at max_connections"
    elif code == "57P03":
        msg, hint = f"server at {where} is not accepting connections: {server_msg}", "starting up or recovering"
    elif code:
        msg, hint = f"server at {where} refused the connection: {server_msg} (SQLSTATE {code})", ""
    else:
        msg, hint = _transport_message(exc, params, database)
    error = ConnectionFailed(redact(msg), pg=diag)
    if hint:
        error.trailer.append(redact(f"hint: {hint}"))
    error.__cause__ = exc
    return error


#: Hosts on this machine: when nothing listens there, a throwaway server may be what the user wants.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _transport_message(exc: BaseException, params: ConnParams, database: str) -> tuple[str, str]:
    import ssl

    host, port = params.host, params.port
    where = f"{host}:{port}"
    items = list(_chain(exc))
    text = " ".join(str(item) for item in items).lower()
    refused = next((i for i in items if isinstance(i, AuthMethodRefused)), None)
    if refused is not None:  # nothing was sent: the password (or token) never left this machine
        return (f"cannot log in as {go_quote(params.user)} at {where}: {refused}",
                "change require_auth, or the server's pg_hba.conf method for this user")
    isready = f"is PostgreSQL running? check: pg_isready -h {host} -p {port}"
    if params.is_unix_socket or host in _LOCAL_HOSTS:
        isready += "; or deploy into a throwaway local server instead: pgmi deploy <project> --ephemeral"
    if params.is_unix_socket and any(isinstance(i, (FileNotFoundError, ConnectionRefusedError)) for i in items):
        return f"no PostgreSQL server socket at {params.socket_path}", isready
    if any(isinstance(i, ConnectionRefusedError) for i in items) or "refused" in text and "ssl" not in text:
        return f"connection refused to {where}", isready
    if any(isinstance(i, socket.gaierror) for i in items) or "no such host" in text:
        return f"cannot resolve host {go_quote(host)}", "check spelling, DNS, $PGHOST"
    if any(isinstance(i, ssl.SSLError) for i in items) or "ssl" in text or "tls" in text:
        detail = _describe(exc)
        if "server refuses ssl" in text:
            detail = f"the server does not support SSL, but sslmode is {params.sslmode}"
        return (f"SSL/TLS connection error: {detail}",
                "check --sslmode, --sslcert, --sslkey, --sslrootcert")
    if any(isinstance(i, (TimeoutError, socket.timeout)) for i in items) or "timed out" in text or "timeout" in text:
        return f"connection timed out to {where}", "check reachability; raise --timeout"
    unsendable = next((i for i in items if isinstance(i, UnsendableSecret)), None)
    if unsendable is not None:
        what = "password" if params.auth_method in ("", "password") else "token"
        hint = ("check $PGPASSWORD, ~/.pgpass, or the connection string" if what == "password"
                else "the token endpoint returned a malformed token")
        return f"cannot log in as {go_quote(params.user)} at {where}: the {what} {unsendable}", hint
    if "no password was provided" in text:
        return ((f"the server at {where} asked for a password for user {go_quote(params.user)} (database "
                 f"{go_quote(database)}), and none was found"),
                "set $PGPASSWORD, add it to ~/.pgpass, or put it in the connection string")
    return f"failed to connect to database: {_describe(exc)}", ""


def _fallback_allowed(exc: BaseException, tls_attempt: bool) -> bool:
    """May allow/prefer move on to the other transport after this failure?"""
    diag = diagnostics(exc)
    if diag is not None:
        if diag.sqlstate in ("28P01", "3D000", "42501"):
            return False
        if diag.sqlstate == "28000" and tls_attempt:
            return False
    return True


# ---------------------------------------------------------------------------------------
# open_connection
# ---------------------------------------------------------------------------------------


#: Before connection retry i (0-based): 100 ms x 2^i, at most 60 s, +-10 %, as the original waits.
RETRY_BACKOFF = Backoff(first=0.1, factor=2.0, cap=60.0, jitter=0.1)


def retry_delay(index: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `index` (0-based): `RETRY_BACKOFF`, truncated to whole ms."""
    return int(round(RETRY_BACKOFF.delay(index, rng.random if rng else None) * 1000, 6)) / 1000.0


def _deadline_error(last: ConnectionFailed | None, attempts: int) -> ConnectionFailed:
    """Deadline hit between attempts: exit 16, so the CONNECTION marker is dropped."""
    reason = f": last error: {last.message}" if last is not None else ""
    error = ConnectionFailed(f"deadline exceeded while connecting (after {attempts} attempt(s)){reason}",
                             pg=last.pg if last is not None else None, details={"attempts": attempts})
    error.markers.discard(Marker.CONNECTION)
    error.markers.add(Marker.DEADLINE)
    if last is not None:
        error.trailer.extend(last.trailer)
        error.__cause__ = last
    return error


def open_connection(params: ConnParams, database: str | None = None, *, deadline: Deadline | None = None,
                    on_notice: Callable[[PgDiagnostics], None] | None = None, retry: bool = True,
                    out: Any = None, environ: Any = None, started: Started | None = None) -> LiveConnection:
    """Connect to `database` (default params.database) with TLS per sslmode and retries.

    At most 1 + 3 attempts for transient failures (`is_transient`), back-off capped by
    the deadline. Final failure: ConnectionFailed with a friendly first line, `.pg` set when
    the server answered, `.details['attempts']`; marked DEADLINE (exit 16) instead of
    CONNECTION when the deadline ran out between attempts.

    A host list (`params.fallback_hosts`) is tried in order, as libpq does: the next host when
    one cannot be reached or does not match target_session_attrs; never after a server refused
    the login (a wrong password is wrong everywhere). prefer-standby makes two passes.

    `started`: the start-up packet already sent on the first attempt's socket (conn/early.py);
    the first attempt uses it when it goes to the same socket with the same packet.
    """
    if not params.fallback_hosts:
        try:
            return _open_host(params, database, deadline=deadline, on_notice=on_notice, retry=retry, out=out,
                              environ=environ, started=started)
        except ConnectionFailed as error:
            error.details.pop(NEXT_HOST, None)  # no next host: not part of the report
            raise
    wanted = params.target_session_attrs
    tried: list[str] = []
    for pass_wanted in ("standby", "any") if wanted == "prefer-standby" else (wanted,):
        for host, port in [(params.host, params.port), *params.fallback_hosts]:
            one = records.replace(params, host=host, port=port, fallback_hosts=[], given=set(params.given),
                                      target_session_attrs=pass_wanted)
            try:
                return _open_host(one, database, deadline=deadline, on_notice=on_notice, retry=retry, out=out,
                                  environ=environ)
            except ConnectionFailed as error:
                reason = error.details.pop(NEXT_HOST, None)
                if reason is None:
                    raise
                tried.append(f"{host}:{port} ({reason})")
                if out is not None:
                    out.verbose(f"trying the next host: {host}:{port} {reason}")
    what = f"no server matches target_session_attrs={wanted}" if wanted not in ("", "any") else \
        "could not connect to any host"
    raise ConnectionFailed(f"{what}: tried {', '.join(tried)}", details={"attempts": len(tried)})


#: details key of a ConnectionFailed after which a host list moves on (its value: what was found).
NEXT_HOST = "next_host"


def _next_host_allowed(exc: BaseException) -> bool:
    """libpq moves to the next host when this one cannot be reached, not when it refused the login."""
    if diagnostics(exc) is not None:
        return is_transient(exc)
    items = list(_chain(exc))
    if any(isinstance(i, (AuthMethodRefused, UnsendableSecret)) for i in items):
        return False
    return "no password was provided" not in " ".join(str(i) for i in items)


def _open_host(params: ConnParams, database: str | None = None, *, deadline: Deadline | None = None,
               on_notice: Callable[[PgDiagnostics], None] | None = None, retry: bool = True,
               out: Any = None, environ: Any = None, started: Started | None = None) -> LiveConnection:
    """open_connection for one host."""
    db = params.database if database is None else database
    deadline = deadline or Deadline(None)
    check_options(params.options, "the connection options")  # resolve() did; ConnParams built by hand too
    provider = provider_for(params, environ, deadline)
    # Cloud hook (conn/auth/cloud.py, google.py): verify-full unless sslmode was explicit, a warning for a
    # weak sslmode, Google's instance address and CA; the provider may supply its own TLS context.
    params = provider.prepare(params, out)
    ctx = provider.ssl_context(params)  # False: the provider's own tunnel encrypts (Cloud SQL connector)
    if ctx is None:
        ctx = build_ssl_context(params, params.host)
    plan = _attempt_plan(params, ctx)
    if out is not None:
        out.verbose(f"connecting to {params.host}:{params.port} database {db!r} as {params.user!r} "
                    f"(sslmode {params.sslmode or 'prefer'}, auth {params.auth_method}"
                    + "".join(f", {n} {getattr(params, n)}" for n in ("sslcert", "sslkey", "sslrootcert")
                              if getattr(params, n)) + ")")
        unused = unused_keys(params.options)
        if unused:
            out.verbose(f"not used by pgmi (tuning keys of the original's driver): {', '.join(unused)}")
    attempts_allowed = 1 + (MAX_RETRIES if retry and provider.retries else 0)
    last: ConnectionFailed | None = None
    for attempt in range(attempts_allowed):
        if attempt > 0:
            if deadline.expired():
                raise _deadline_error(last, attempt)
            delay = retry_delay(attempt - 1)
            if out is not None and last is not None:
                out.verbose(f"connection attempt {attempt} failed ({last.message}); retrying in {int(delay * 1000)} ms")
            if not pause(delay, deadline):
                if deadline.cancelled:
                    raise Interrupted("interrupted")
                raise _deadline_error(last, attempt)
        elif deadline.expired():
            raise _deadline_error(None, 0)
        try:
            conn = _connect_once(params, db, provider, plan, deadline, on_notice, out if attempt == 0 else None,
                                 started if attempt == 0 else None)
        except DRIVER_ERRORS as exc:
            last = friendly_failure(exc, params, db)
            last.details["attempts"] = attempt + 1
            if _client_certificate_refused(exc, params):
                last.message += ("; SSL/TLS: the server hung up right after the handshake, which is how "
                                 f"it refuses a client certificate under TLS 1.3 (sslcert {params.sslcert})")
                last.args = (last.message,)
                raise last from exc
            if _next_host_allowed(exc):
                last.details[NEXT_HOST] = last.message
            if not is_transient(exc):
                raise last from exc
            continue
        if params.target_session_attrs not in ("", "any"):
            _check_session_attrs(conn, params, db, deadline, attempt + 1)
        # Every connection of a run, not only the one whose statements the watchdog cancels (the
        # maintenance connection creating or dropping the database, too), ends by the deadline
        # plus the cancel grace, even on a network that has gone silent.
        left = deadline.remaining()
        conn.shut_after(None if left is None else left + CANCEL_GRACE_SECONDS)
        return conn
    assert last is not None
    raise last


def _check_session_attrs(conn: LiveConnection, params: ConnParams, db: str, deadline: Deadline,
                         attempts: int) -> None:
    """target_session_attrs on the one host pgmi connects to: keep the connection when the server's
    state matches, else close it and fail (exit 11) saying what was found.

    prefer-standby takes any server when no standby was found, so with one host it always matches.
    The question is bounded like the start-up (connect_timeout within the deadline).
    """
    from pgmilib.resources import read_sql

    wanted = params.target_session_attrs
    limit = deadline.cap(params.connect_timeout)
    conn.set_socket_timeout(None if limit is None else max(limit, 0.001))  # 0 would mean non-blocking
    try:
        read_only, in_recovery = conn.run(read_sql("session_attrs.sql"))[0]
    except DRIVER_ERRORS as exc:
        conn.close()
        raise friendly_failure(exc, params, db) from exc
    conn.clear_socket_timeout()
    if session_matches(wanted, read_only, in_recovery, standby_pass=False):
        return
    conn.close()
    state = ("read-only" if read_only else "read-write") + (", standby" if in_recovery else ", primary")
    raise ConnectionFailed(f"no server matches target_session_attrs={wanted}: tried {params.host}:{params.port} "
                           f"({state})", details={"attempts": attempts, NEXT_HOST: state})


def _connect_once(params: ConnParams, db: str, provider: Any, plan: list, deadline: Deadline,
                  on_notice: Callable[[PgDiagnostics], None] | None, out: Any,
                  started: Started | None = None) -> LiveConnection:
    """One attempt: each transport of the sslmode plan in order; returns or raises the last error."""
    from pgmilib.conn.auth import password_for

    password = password_for(params, db, provider.environ, out, deadline)
    problem = secret_problem(password)
    if problem:
        raise UnsendableSecret(problem)
    unix = params.is_unix_socket
    startup = startup_params(params)
    problem = unsendable(params.user, db, application_name(params), startup)
    if problem:
        raise ConfigError(f"cannot connect: {problem}")
    for index, ssl_context in enumerate(plan):
        timeout = deadline.cap(params.connect_timeout)
        if timeout is not None and timeout <= 0:
            raise TimeoutError("timed out (deadline reached before connecting)")
        kwargs: dict[str, Any] = {
            "user": params.user, "database": db, "password": password, "ssl_context": ssl_context,
            "timeout": timeout, "application_name": application_name(params), "tcp_keepalive": True,
        }
        if startup:
            kwargs["startup_params"] = startup
        if params.require_auth:  # checked in the driver before anything is sent
            require = parse_require_auth(params.require_auth, "require_auth")
            kwargs["auth_check"] = require.refusal if require is not None else None
        if unix:
            kwargs["unix_sock"] = params.socket_path
            if started is not None and index == 0 and ssl_context is False:
                sock = started.take(kwargs["unix_sock"])
                if sock is not None:
                    sock.settimeout(timeout)
                    kwargs["sock"] = sock
        else:
            kwargs.update(host=params.host, port=params.port)
            tunnel = provider.open_socket(params, timeout)  # the Cloud SQL connector's mutual-TLS socket
            if tunnel is not None:
                kwargs["sock"] = tunnel
        # One limit for the whole start-up (a server answering one byte at a time never trips the
        # socket timeout of each read), and a cancel (Ctrl-C) ends it at once.
        opening: list[LiveConnection] = []
        with deadline.wait(functools.partial(_shut_all, opening), timeout) as wait:
            try:
                conn = _live(kwargs, on_notice, opening)
            except DRIVER_ERRORS as exc:
                if wait.reason == CANCELLED:
                    raise Interrupted("interrupted") from None
                if wait.reason is not None:
                    raise TimeoutError(f"timed out after {wait.elapsed():.1f}s") from exc
                if index == len(plan) - 1 or not _fallback_allowed(exc, ssl_context is not False):
                    raise
                continue
        conn.clear_socket_timeout()
        conn.opened_with = {k: v for k, v in kwargs.items() if k not in ("timeout", "sock")}  # for open_another()
        conn.reopen_socket = functools.partial(provider.open_socket, params) if "sock" in kwargs else None
        return conn
    raise AssertionError("empty attempt plan")


def _live(kwargs: dict[str, Any], on_notice: Callable[[PgDiagnostics], None] | None,
          registry: list[LiveConnection]) -> LiveConnection:
    try:
        return LiveConnection(on_notice=on_notice, registry=registry, **kwargs)
    except Mismatch:  # the attempt's packet is not the one sent ahead (other parameters, or another driver)
        sock = kwargs.pop("sock")
        with contextlib.suppress(OSError):  # shut down, not only closed: the driver's file still refers to it
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        return LiveConnection(on_notice=on_notice, registry=registry, **kwargs)


def open_another(conn: LiveConnection, *, application_name: str, timeout: float) -> LiveConnection:
    """A second connection like `conn`: the same server, database, user, TLS transport and secret.

    Nothing is resolved again: no cloud token is fetched, no instance looked up, no .pgpass
    read; the one transport that worked is tried once, within `timeout` seconds (connect and
    start-up). Raises the driver's error (DRIVER_ERRORS) when the server refuses it.
    """
    kwargs = dict(conn.opened_with, application_name=application_name, timeout=timeout)
    reopen = getattr(conn, "reopen_socket", None)
    if reopen is not None:  # a tunnel is one connection's: dial another with the same certificate
        kwargs["sock"] = reopen(timeout)
    another = LiveConnection(**kwargs)
    another.clear_socket_timeout()
    return another


def _shut_all(conns: list[LiveConnection]) -> None:
    for conn in conns:
        conn.shutdown_socket()
