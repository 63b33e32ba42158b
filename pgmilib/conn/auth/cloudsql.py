"""The Cloud SQL connector path: an ephemeral client certificate and mutual TLS to the instance's port 3307.

What the official connectors do, with the standard library:
1. `connectSettings` (done by GoogleAuth.resolve): the instance's PRIMARY address, its
   server CA, and how its server identity is checked (CN `project:instance`, or its DNS name);
2. an RSA-2048 key pair, generated in pure Python once and cached 0600 (rsagen.py);
3. `generateEphemeralCert` with the public key and an IAM login token: a client certificate
   for that key, bound to the IAM identity, valid for about an hour;
4. TCP to `<address>:3307` (the instance's server-side proxy), TLS 1.3 with that certificate
   as the client identity, trusting only the instance's CA; the PostgreSQL protocol then
   runs inside the tunnel with no SSLRequest and no password (the proxy logs the IAM user in).

`ssl` loads a client key only from a file: the cached key file (0600, ours) is used as is;
without a cache the key is written 0600 into a fresh 0700 directory (mkdtemp) and removed
right after loading. The certificate itself is not secret but goes the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import tempfile
from typing import TYPE_CHECKING, Any

from pgmilib.conn.auth.http import CloudHttp, display
from pgmilib.conn.auth.rsa import RsaKey
from pgmilib.conn.auth.rsagen import cache_dir, cached_key, private_key_pem
from pgmilib.conn.deadline import CANCELLED, TIMED_OUT, Deadline
from pgmilib.errors import ConfigError, Interrupted, Marker
from pgmilib.redact import register_secret

if TYPE_CHECKING:
    from collections.abc import Mapping

SERVER_PROXY_PORT = 3307


def proxy_port(environ: Mapping[str, str]) -> int:
    """3307, or $PGMI_CLOUDSQL_PROXY_PORT (tests, port forwarding)."""
    text = environ.get("PGMI_CLOUDSQL_PROXY_PORT", "")
    if not text:
        return SERVER_PROXY_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"$PGMI_CLOUDSQL_PROXY_PORT {text!r} is not a TCP port number")
    return int(text)


def ephemeral_cert(admin: CloudHttp, url: str, public_pem: str, login_token: str, admin_token: str,
                   timeout: float) -> str:
    """The PEM client certificate the Admin API (`url`: the instance's generateEphemeralCert) issues for
    `public_pem` and the IAM identity of `login_token`."""
    body = json.dumps({"public_key": public_pem, "access_token": login_token}).encode("utf-8")
    step = "Cloud SQL Admin API generateEphemeralCert"
    doc = admin.json(step, "POST", url, body=body, timeout=timeout,
                     headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"})
    cert = doc.get("ephemeralCert")
    pem = cert.get("cert") if isinstance(cert, dict) else None
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise admin.fail(f"{step} (POST {display(url)})", "response has no ephemeralCert")
    return pem


def client_key(environ: Mapping[str, str]) -> tuple[RsaKey, str | None]:
    """The connector's key pair and its cached 0600 file (None: no usable cache)."""
    return cached_key(cache_dir(environ))


def add_client_identity(ctx: ssl.SSLContext, cert_pem: str, key: RsaKey, key_path: str | None) -> None:
    """Load the ephemeral certificate and the private key into `ctx` (a private temporary file without a cache)."""
    private = tempfile.mkdtemp(prefix="pgmi-cloudsql-")  # 0700: only we can list or open what is inside
    try:
        cert_path = os.path.join(private, "client.crt")
        _write_private(cert_path, cert_pem)
        if key_path is None:
            key_path = os.path.join(private, "client.key")
            pem = private_key_pem(key)
            register_secret(pem)
            _write_private(key_path, pem)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as error:
            raise ConfigError(f"the ephemeral Cloud SQL certificate does not match pgmi's client key: "
                              f"{error.reason or error}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)


def dial(address: str, port: int, ctx: ssl.SSLContext, timeout: float | None, deadline: Deadline | None,
         fail: Any) -> ssl.SSLSocket:
    """TCP + the mutual-TLS handshake to the server-side proxy, under one wait of the run's deadline."""
    deadline = deadline or Deadline(None)
    holder: list[socket.socket] = []
    step = f"Cloud SQL connector ({address}:{port})"

    def abort() -> None:
        for sock in holder:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    with deadline.wait(abort, timeout) as wait:
        if wait.limit is not None and wait.limit <= 0:
            wait.fire(TIMED_OUT)
        try:
            if wait.reason is not None:
                raise TimeoutError
            raw = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
            holder.append(raw)
            raw.settimeout(wait.limit)
            raw.connect((address, port))
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            tls = ctx.wrap_socket(raw)
            holder.append(tls)
            if wait.reason is not None:
                raise TimeoutError
        except BaseException as error:
            for sock in holder:
                sock.close()
            if not isinstance(error, Exception):
                raise
            if wait.reason == CANCELLED:
                raise Interrupted("interrupted") from None
            if wait.reason is not None or isinstance(error, (TimeoutError, socket.timeout)):
                failure = fail(step, f"timed out after {wait.elapsed():.1f}s")
                if wait.by_deadline:
                    failure.markers.discard(Marker.CONNECTION)
                    failure.markers.add(Marker.DEADLINE)
                raise failure from None
            if isinstance(error, ssl.SSLCertVerificationError):
                raise fail(step, f"TLS certificate verification failed: {error.verify_message or error}") from None
            if isinstance(error, ssl.SSLError):
                raise fail(step, f"TLS error: {error.reason or error} (was the client certificate refused?)") from None
            if isinstance(error, ConnectionRefusedError):
                raise fail(step, "connection refused") from None
            if isinstance(error, OSError):
                raise fail(step, error.strerror or str(error)) from None
            raise
    tls.settimeout(None)
    return tls
