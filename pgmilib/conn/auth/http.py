"""The one HTTP client the cloud providers share: stdlib `http.client`, the run's deadline, no redirects.

Why not urllib: credential endpoints must never be followed to another host (a redirect
would carry a client secret or a bearer token along), proxies must not see metadata
calls, and every failure has to become one line naming the provider and the step
("failed to acquire AWS IAM token: EC2 instance metadata (PUT http://…/latest/api/token):
HTTP 401: …").

What an endpoint can do to pgmi, and what it gets:
- answer slowly, not at all, or one byte per second: each exchange (connect, TLS, request,
  headers, body) runs inside one `Deadline.wait`, whose limit is the step's own timeout
  capped by the run's `--timeout`; the socket is shut down when it passes or the run is
  cancelled (Ctrl-C), and the message says which, with the time it really took;
- send more than 1 MiB: refused from its Content-Length, or after reading 1 MiB + 1 byte;
- send a BOM before the JSON: accepted. Token-looking fields of a JSON answer are
  registered as secrets as soon as it is parsed, and a body that is not JSON is never
  quoted (it may hold a token in a shape pgmi does not know);
- put control characters (ESC, BEL, a bidi override) in its error text: escaped, so the
  terminal shows `\\x1b` instead of obeying it; error bodies are summarised (OAuth,
  Google, AWS JSON and STS XML shapes), redacted, then cut to one short line;
- answer something that is not HTTP: one line saying so.

HTTPS is verified against the standard trust store; `SSL_CERT_FILE` in the provider's
environment mapping (not only the process environment) selects the CA file, so tests and
corporate CAs work the same way.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import re
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pgmilib import __version__
from pgmilib.conn.deadline import CANCELLED, TIMED_OUT, Deadline, Wait
from pgmilib.errors import ConnectionFailed, Interrupted, Marker, printable
from pgmilib.redact import redact, register_secret

USER_AGENT = f"pgmi/{__version__}"
MAX_BODY = 1 << 20  # token responses are a few KiB; never buffer an endless stream
METADATA_TIMEOUT = 2.0  # link-local endpoints: answer fast or we are not on that cloud
TOKEN_TIMEOUT = 15.0  # login.microsoftonline.com, STS, oauth2.googleapis.com, sqladmin
#: Fields of a JSON answer registered as secrets the moment it is parsed (lower-cased keys):
#: OAuth/Entra/Google tokens, ECS/IMDS/credential_process AWS keys.
SECRET_FIELDS = frozenset({"access_token", "id_token", "refresh_token", "token", "secretaccesskey",
                           "sessiontoken", "client_secret"})
_UTF8_BOM = b"\xef\xbb\xbf"


class TokenError(ConnectionFailed):
    """A token could not be obtained (exit 11): `failed to acquire <provider> token: <step>: <why>`."""

    def __init__(self, provider: str, step: str, reason: str, action: str = "") -> None:
        self.provider, self.step, self.reason = provider, step, reason
        super().__init__(redact(f"{action or f'failed to acquire {provider} token'}: {step}: {reason}"))


class Response:
    """Status, headers and body of one HTTP exchange."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or exactly the name `localhost` (never `localhost.evil.example`)."""
    addr = _address(host)
    return addr.is_loopback if addr is not None else host.lower() == "localhost"


def is_local_host(host: str) -> bool:
    """Loopback or link-local (metadata services): the only places plain HTTP may carry credentials.

    Strictly by address: loopback (`is_loopback_host`), 169.254.0.0/16, fe80::/10 and the AWS
    IPv6 metadata addresses; no other name.
    """
    addr = _address(host)
    if addr is None:
        return is_loopback_host(host)
    return addr.is_loopback or addr.is_link_local or str(addr) in ("fd00:ec2::254", "fd00:ec2::23")


def form(fields: Mapping[str, str]) -> bytes:
    """application/x-www-form-urlencoded body."""
    return urllib.parse.urlencode(dict(fields)).encode("ascii")


class CloudHttp:
    """HTTP for one provider; `label` and each call's `step` name the failure.

    `deadline` is the run's (`--timeout`, cancellation); without one, only each step's own
    timeout bounds it.
    """

    def __init__(self, label: str, environ: Mapping[str, str], action: str = "",
                 deadline: Deadline | None = None) -> None:
        self.label = label
        self.environ = environ
        self.action = action  # first words of every error; default "failed to acquire <label> token"
        self.deadline = deadline
        self._tls: ssl.SSLContext | None = None

    def fail(self, step: str, reason: str) -> TokenError:
        return TokenError(self.label, step, reason, self.action)

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            cafile = self.environ.get("SSL_CERT_FILE") or None
            capath = self.environ.get("SSL_CERT_DIR") or None
            try:
                self._tls = ssl.create_default_context(cafile=cafile, capath=capath)
            except (OSError, ssl.SSLError) as error:
                raise self.fail("TLS setup", f"cannot load $SSL_CERT_FILE {cafile!r}: {error}") from None
        return self._tls

    def request(self, step: str, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                body: bytes | None = None, timeout: float = TOKEN_TIMEOUT, secure: bool = True,
                ok: tuple[int, ...] = (200,)) -> Response:
        """One request; statuses outside `ok` raise TokenError with the summarised error body.

        `secure=True` (anything carrying a secret to a non-metadata host) refuses plain
        HTTP unless the host is loopback/link-local. The whole exchange takes at most
        `timeout` seconds, and never longer than the run's deadline allows.
        """
        step = f"{step} ({method} {display(url)})"
        parts = urllib.parse.urlsplit(url)
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            host, port = "", None
        if parts.scheme not in ("http", "https") or not host:
            raise self.fail(step, f"invalid endpoint URL {display(url)!r}")
        if parts.scheme == "http" and secure and not is_local_host(host):
            raise self.fail(step, "refusing to send credentials over plain HTTP to a non-local host; use https")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if body is not None and "Content-Type" not in sent:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        for name, value in sent.items():
            # A value taken from an earlier answer (IMDS's session token) may hold anything; the
            # value itself stays out of the message (it is usually a secret).
            if not value.isascii() or not value.isprintable():
                raise self.fail(step, f"the {name} header would carry characters HTTP cannot send "
                                      "(control or non-ASCII characters; from an earlier answer?)")
        context = self._context() if parts.scheme == "https" else None
        deadline = self.deadline or Deadline(None)
        holder: list[http.client.HTTPConnection] = []
        with deadline.wait(lambda: _shutdown(holder), timeout) as wait:
            if wait.limit is not None and wait.limit <= 0 and wait.reason is None:
                wait.fire(TIMED_OUT)
            try:
                if wait.reason is not None:
                    raise TimeoutError
                socket_timeout = wait.limit if wait.limit is not None else None
                if context is not None:
                    conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                        host, port, timeout=socket_timeout, context=context)
                else:
                    conn = http.client.HTTPConnection(host, port, timeout=socket_timeout)
                holder.append(conn)
                conn.connect()
                wait.again()  # cut short while connecting: the socket exists only now
                conn.request(method, path, body=body, headers=sent)
                resp = conn.getresponse()
                data = _read_body(resp, self, step)
                if wait.reason is not None:  # a shut-down socket can look like a short, complete answer
                    raise TimeoutError
            except TokenError:
                raise
            except BaseException as error:  # noqa: BLE001 -- classified below; anything else re-raised
                raise self._exchange_failure(step, error, wait) from None
            finally:
                for conn in holder:
                    conn.close()
        response = Response(resp.status, resp.headers, data)
        if resp.status not in ok:
            detail = error_detail(data)
            note = " (redirects are not followed)" if 300 <= resp.status < 400 else ""
            raise self.fail(step, f"HTTP {resp.status}{note}" + (f": {detail}" if detail else ""))
        return response

    def _exchange_failure(self, step: str, error: BaseException, wait: Wait) -> BaseException:
        """The one-line error for an exchange that did not complete (or `error` itself: not ours)."""
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: not a network failure
            return error
        if wait.reason == CANCELLED:
            return Interrupted("interrupted")
        if wait.reason is not None or isinstance(error, (TimeoutError, socket.timeout)):  # 3.9: not the same
            failure = self.fail(step, f"timed out after {wait.elapsed():.1f}s")
            if wait.by_deadline:  # the run's --timeout ran out, not this step's own limit: exit 16
                failure.markers.discard(Marker.CONNECTION)
                failure.markers.add(Marker.DEADLINE)
            return failure
        if isinstance(error, ssl.SSLCertVerificationError):
            return self.fail(step, f"TLS certificate verification failed: {printable(error.verify_message or '')}")
        if isinstance(error, ssl.SSLError):
            return self.fail(step, f"TLS error: {printable(str(error.reason or error))}")
        if isinstance(error, ConnectionRefusedError):
            return self.fail(step, "connection refused")
        if isinstance(error, http.client.RemoteDisconnected):
            return self.fail(step, "the endpoint closed the connection without an answer")
        if isinstance(error, http.client.IncompleteRead):
            return self.fail(step, "the endpoint closed the connection in the middle of its answer")
        if isinstance(error, http.client.HTTPException):  # BadStatusLine, LineTooLong, too many headers
            return self.fail(step, f"the endpoint's answer is not valid HTTP ({type(error).__name__})")
        if isinstance(error, socket.gaierror):
            return self.fail(step, f"cannot resolve host: {error.strerror or error}")
        if isinstance(error, OSError):
            return self.fail(step, printable(error.strerror or str(error) or type(error).__name__))
        return error

    def json(self, step: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """`request` whose 2xx body must be a JSON object."""
        response = self.request(step, method, url, **kwargs)
        return parse_json(self, f"{step} ({method} {display(url)})", response.body, response.headers)

    def token_field(self, step: str, payload: Mapping[str, Any], key: str) -> str:
        """A required, non-empty string field of a token response, registered as a secret."""
        value = payload.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(step, f"response has no {key!r}")
        register_secret(value)
        return value


def _shutdown(holder: list[http.client.HTTPConnection]) -> None:
    """Make a blocked connect/read/write of the exchange return at once (called from the timer thread)."""
    for conn in holder:
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _read_body(resp: http.client.HTTPResponse, http_: CloudHttp, step: str) -> bytes:
    """The body, refused when it is over MAX_BODY (from Content-Length, else after MAX_BODY + 1 bytes)."""
    length = resp.getheader("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY:
        raise http_.fail(step, f"the answer is {int(length):,} bytes; more than {MAX_BODY:,} is refused unread")
    data = resp.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise http_.fail(step, f"the answer is longer than {MAX_BODY:,} bytes; refused")
    return data


def parse_json(http_: CloudHttp, step: str, body: bytes, headers: Any = None) -> dict[str, Any]:
    """The JSON object of a 2xx answer, its token fields registered as secrets before anything else.

    A body that is not a JSON object is never quoted: it may carry a token in a shape
    pgmi does not know. The message gives its size, content type and the parser's position.
    """
    try:
        value = json.loads(body.removeprefix(_UTF8_BOM).decode("utf-8"))
    except UnicodeDecodeError:
        raise http_.fail(step, f"malformed JSON in response: not UTF-8 ({_shape(body, headers)})") from None
    except ValueError as error:
        where = f"; {error.msg} at line {error.lineno} column {error.colno}" if isinstance(
            error, json.JSONDecodeError) else ""
        raise http_.fail(step, f"malformed JSON in response ({_shape(body, headers)}{where})") from None
    if not isinstance(value, dict):
        raise http_.fail(step, "malformed JSON in response: expected an object")
    register_token_fields(value)
    return value


def register_token_fields(doc: Mapping[str, Any]) -> None:
    """Register the values of secret-looking fields (SECRET_FIELDS, case-insensitive), nested too."""
    for key, value in doc.items():
        if isinstance(value, str) and str(key).lower() in SECRET_FIELDS:
            register_secret(value)
        elif isinstance(value, Mapping):
            register_token_fields(value)


def _shape(body: bytes, headers: Any) -> str:
    kind = headers.get("Content-Type") if headers is not None else None
    return f"{len(body):,} bytes" + (f" of {printable(kind)}" if kind else "")


def error_detail(body: bytes) -> str:
    """One line out of an error body: OAuth, Google, AWS JSON or STS XML; else its start."""
    text = body.removeprefix(_UTF8_BOM).decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        register_token_fields(doc)
        err = doc.get("error")
        if isinstance(err, dict):  # Google: {"error": {"code": 403, "message": ..., "status": ...}}
            parts = [str(err.get("status") or ""), str(err.get("message") or "")]
        else:  # OAuth / Entra / ECS: {"error": "invalid_grant", "error_description": ...}
            parts = [str(err or doc.get("code") or doc.get("Code") or ""),
                     str(doc.get("error_description") or doc.get("message") or doc.get("Message") or "")]
        joined = ": ".join(p for p in parts if p)
        if joined:
            return _clip(joined)
    if text.startswith("<"):
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(text)
            code = next((e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Code"), "")
            msg = next((e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Message"), "")
            joined = ": ".join(p for p in (code, msg) if p)
            if joined:
                return _clip(joined)
        except ET.ParseError:
            pass
    return _clip(text)




def _clip(text: str, limit: int = 300) -> str:
    """Redacted first (a cut must never keep half a secret), then one line, escaped, cut to `limit`."""
    text = printable(" ".join(redact(text).split()))
    return text if len(text) <= limit else text[:limit] + "…"


def display(url: str) -> str:
    """The URL without its query (query strings can carry client ids or resource names only,
    but keeping messages short matters more), without userinfo, control characters escaped."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return printable(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", "", "")))


_FRACTION = re.compile(r"(\.\d{1,6})\d*")  # fromisoformat before 3.11 reads at most 6 fraction digits


def parse_timestamp(value: object, *, naive_is_utc: bool = True) -> dt.datetime | None:
    """A time from a token answer or a CLI's JSON, aware; None when it is not one.

    ISO 8601 / RFC 3339 with `Z`, an offset or none, and up to 9 fraction digits (Python before
    3.11 reads neither `Z` nor more than 6 digits). Without an offset the time is UTC (AWS, azd)
    or, with `naive_is_utc=False`, the machine's local time (az's `expiresOn`).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    # 3.9/3.10 read exactly 3 or 6 fraction digits: cut to 6 and pad to 6
    text = _FRACTION.sub(lambda m: m.group(1).ljust(7, "0"), value.strip())
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc) if naive_is_utc else when.astimezone()
    return when
