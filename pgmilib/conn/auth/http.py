"""The one HTTP client the cloud providers share: stdlib `http.client`, bounded timeouts, no redirects.

Why not urllib: credential endpoints must never be followed to another host (a redirect
would carry a client secret or a bearer token along), proxies must not see metadata
calls, and every failure has to become one line naming the provider and the step
("failed to acquire AWS IAM token: EC2 instance metadata (PUT http://…/latest/api/token):
HTTP 401: …"). Bodies of error responses are summarised (OAuth / Google / AWS JSON and
STS XML shapes), truncated and redacted.

HTTPS is verified against the standard trust store; `SSL_CERT_FILE` in the provider's
environment mapping (not only the process environment) selects the CA file, so tests and
corporate CAs work the same way.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pgmilib import __version__
from pgmilib.errors import ConnectionFailed
from pgmilib.redact import redact, register_secret

USER_AGENT = f"pgmi/{__version__}"
MAX_BODY = 1 << 20  # token responses are a few KiB; never buffer an endless stream
METADATA_TIMEOUT = 2.0  # link-local endpoints: answer fast or we are not on that cloud
TOKEN_TIMEOUT = 15.0  # login.microsoftonline.com, STS, oauth2.googleapis.com, sqladmin


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


def is_local_host(host: str) -> bool:
    """Loopback or link-local (metadata services): the only places plain HTTP may carry credentials."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return addr.is_loopback or addr.is_link_local or str(addr) in ("fd00:ec2::254", "fd00:ec2::23")


def form(fields: Mapping[str, str]) -> bytes:
    """application/x-www-form-urlencoded body."""
    return urllib.parse.urlencode(dict(fields)).encode("ascii")


class CloudHttp:
    """HTTP for one provider; `label` and each call's `step` name the failure."""

    def __init__(self, label: str, environ: Mapping[str, str], action: str = "") -> None:
        self.label = label
        self.environ = environ
        self.action = action  # first words of every error; default "failed to acquire <label> token"
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
        HTTP unless the host is loopback/link-local.
        """
        step = f"{step} ({method} {display(url)})"
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise self.fail(step, f"invalid endpoint URL {display(url)!r}")
        if parts.scheme == "http" and secure and not is_local_host(host):
            raise self.fail(step, "refusing to send credentials over plain HTTP to a non-local host; use https")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=self._context())
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if body is not None and "Content-Type" not in sent:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            data = resp.read(MAX_BODY)
        except (TimeoutError, socket.timeout):  # one class from Python 3.10 on, two before
            raise self.fail(step, f"timed out after {timeout:g}s") from None
        except ssl.SSLCertVerificationError as error:
            raise self.fail(step, f"TLS certificate verification failed: {error.verify_message}") from None
        except ssl.SSLError as error:
            raise self.fail(step, f"TLS error: {error.reason or error}") from None
        except ConnectionRefusedError:
            raise self.fail(step, "connection refused") from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise self.fail(step, reason) from None
        finally:
            conn.close()
        response = Response(resp.status, resp.headers, data)
        if resp.status not in ok:
            detail = error_detail(data)
            raise self.fail(step, f"HTTP {resp.status}" + (f": {detail}" if detail else ""))
        return response

    def json(self, step: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """`request` whose 2xx body must be a JSON object."""
        response = self.request(step, method, url, **kwargs)
        return parse_json(self, f"{step} ({method} {display(url)})", response.body)

    def token_field(self, step: str, payload: Mapping[str, Any], key: str) -> str:
        """A required, non-empty string field of a token response, registered as a secret."""
        value = payload.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(step, f"response has no {key!r}")
        register_secret(value)
        return value


def parse_json(http_: CloudHttp, step: str, body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise http_.fail(step, f"malformed JSON in response: {_snippet(body)!r}") from None
    if not isinstance(value, dict):
        raise http_.fail(step, "malformed JSON in response: expected an object")
    return value


def error_detail(body: bytes) -> str:
    """One line out of an error body: OAuth, Google, AWS JSON or STS XML; else its start."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
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
        try:
            import xml.etree.ElementTree as ET

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
    text = " ".join(text.split())
    return redact(text if len(text) <= limit else text[:limit] + "…")


def _snippet(body: bytes) -> str:
    return _clip(body.decode("utf-8", "replace"), 80)


def display(url: str) -> str:
    """The URL without its query (query strings can carry client ids or resource names only,
    but keeping messages short matters more) and without userinfo."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
