"""The Cloud SQL connector path end to end: a fake SQL Admin API issuing client certificates (openssl), a local
mutual-TLS proxy that requires them and forwards to the test PostgreSQL, and the key pgmi generates itself."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from pgmilib.conn.auth import rsagen
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.auth.rsa import load_private_key
from pgmilib.conn.connect import open_another, open_connection
from pgmilib.conn.deadline import Deadline
from pgmilib.conn.params import ConnParams
from pgmilib.errors import Exit, Marker, exit_code
from tests.cloudfakes import INSTANCE_CN, json_reply
from tests.projects import query, run_cli, write_project
from tests.test_cloud_google import CONNECT_SETTINGS, FAKE_TOKEN, INSTANCE, connect_settings, sa_file

EPHEMERAL = "/sql/v1beta4/projects/myproj/instances/mydb:generateEphemeralCert"


def issue_certificate(pki: Path, public_pem: str, common_name: str) -> str:
    """What generateEphemeralCert does: a client certificate for exactly the key sent, signed by the instance CA."""
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        (w / "pub.pem").write_text(public_pem)
        subprocess.run(["openssl", "req", "-new", "-key", str(pki / "rsa.pem"), "-subj", f"/CN={common_name}",
                        "-out", "any.csr"], check=True, capture_output=True, cwd=w)
        subprocess.run(["openssl", "x509", "-req", "-in", "any.csr", "-force_pubkey", "pub.pem", "-CA",
                        str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-set_serial",
                        str(secrets.randbits(60)), "-days", "1", "-out", "client.crt"], check=True, capture_output=True, cwd=w)
        return (w / "client.crt").read_text()


class AdminApi:
    """connectSettings + generateEphemeralCert on the HTTPS fake; remembers the public keys it was sent."""

    def __init__(self, fake, pki: Path) -> None:
        self.public_keys: list[str] = []
        fake.routes[("POST", "/token")] = lambda r: json_reply(
            {"access_token": FAKE_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
        fake.routes[("GET", CONNECT_SETTINGS)] = connect_settings(pki)
        fake.routes[("GET", "/sql/v1beta4/projects/myproj/instances/other/connectSettings")] = connect_settings(pki)

        def ephemeral(request):
            doc = json.loads(request.body)
            if request.headers.get("authorization") != f"Bearer {FAKE_TOKEN}" or doc.get("access_token") != FAKE_TOKEN:
                return json_reply({"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}}, 401)
            self.public_keys.append(doc["public_key"])
            cert = issue_certificate(pki, doc["public_key"], "deployer@myproj.iam")
            return json_reply({"ephemeralCert": {"kind": "sql#sslCert", "cert": cert,
                                                 "expirationTime": "2030-01-01T00:00:00Z"}})

        fake.routes[("POST", EPHEMERAL)] = ephemeral


class MtlsProxy:
    """The instance's server-side proxy: TLS 1.3, a client certificate of the CA required, bytes forwarded to `target`."""

    def __init__(self, pki: Path, target: dict, client_ca: Path | None = None) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.load_cert_chain(pki / "server.crt", pki / "server.key")  # CN myproj:mydb
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(str(client_ca or pki / "ca.crt"))
        self.target = target
        self.clients: list[str] = []  # the CN of every client certificate accepted
        self.refused = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _backend(self) -> socket.socket:
        if self.target.get("unix_sock"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.target["unix_sock"])
            return sock
        return socket.create_connection((self.target["host"], self.target["port"]))

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(raw,), daemon=True).start()

    def _session(self, raw: socket.socket) -> None:
        self.open.append(raw)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.refused += 1
            raw.close()
            return
        subject = dict(pair for rdn in tls.getpeercert()["subject"] for pair in rdn)
        self.clients.append(subject["commonName"])
        backend = self._backend()
        self.open.append(backend)
        threading.Thread(target=self._pump, args=(backend, tls), daemon=True).start()
        self._pump(tls, backend)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def admin(https_fake, pki):
    return AdminApi(https_fake, pki)


@pytest.fixture
def proxy(pki, pg):
    server = MtlsProxy(pki, pg.conn_kwargs("postgres"))
    yield server
    server.close()


def env_for(tmp_path, pki, fake, proxy, **extra) -> dict[str, str]:
    return {"GOOGLE_APPLICATION_CREDENTIALS": sa_file(tmp_path, pki, fake), "SSL_CERT_FILE": str(pki / "ca.crt"),
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SQLADMIN": fake.url + "/", "HOME": str(tmp_path),
            "PGMI_CACHE_DIR": str(tmp_path / "cache"), "PGMI_CLOUDSQL_PROXY_PORT": str(proxy.port), **extra}


def params_for(pg, instance: str = INSTANCE) -> ConnParams:
    return ConnParams(user=pg.conn_kwargs()["user"], database="postgres", auth_method="google",
                      google_instance=instance)


def test_generated_key_is_valid_for_openssl(tmp_path):
    key = rsagen.generate()
    assert key.n.bit_length() == 2048 and key.e == 65537
    (tmp_path / "k.pem").write_text(rsagen.private_key_pem(key))
    (tmp_path / "p.pem").write_text(rsagen.public_key_pem(key))
    check = subprocess.run(["openssl", "rsa", "-check", "-noout", "-in", str(tmp_path / "k.pem")],
                           check=False, capture_output=True, text=True)
    assert check.returncode == 0 and "RSA key ok" in check.stdout
    modulus = subprocess.run(["openssl", "rsa", "-pubin", "-noout", "-modulus", "-in", str(tmp_path / "p.pem")],
                             capture_output=True, text=True, check=True).stdout
    assert int(modulus.strip().split("=", 1)[1], 16) == key.n
    assert load_private_key(rsagen.private_key_pem(key)) == key


def test_connector_reaches_postgres_through_the_mtls_proxy(tmp_path, pki, https_fake, admin, proxy, pg):
    env = env_for(tmp_path, pki, https_fake, proxy)
    conn = open_connection(params_for(pg), environ=env)
    try:
        assert conn.run("SELECT current_user")[0][0] == pg.conn_kwargs()["user"]
        another = open_another(conn, application_name="second", timeout=10)  # a new tunnel, same certificate
        try:
            assert another.run("SELECT 1") == [[1]]
        finally:
            another.close()
    finally:
        conn.close()
    assert proxy.clients == ["deployer@myproj.iam"] * 2
    cache = tmp_path / "cache"
    key_file = cache / rsagen.CACHE_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    cached = load_private_key(key_file.read_text())
    assert admin.public_keys == [rsagen.public_key_pem(cached)]
    # The next run reuses the cached key: the same public key is sent, nothing is regenerated.
    conn = open_connection(params_for(pg), environ=env)
    conn.close()
    assert admin.public_keys[1] == admin.public_keys[0]
    assert not [r for r in https_fake.requests if FAKE_TOKEN.encode() in r.body and r.path != EPHEMERAL]


def test_a_cached_key_others_can_read_is_replaced(tmp_path, pki, https_fake, admin, proxy, pg):
    env = env_for(tmp_path, pki, https_fake, proxy)
    open_connection(params_for(pg), environ=env).close()
    key_file = tmp_path / "cache" / rsagen.CACHE_FILE
    key_file.chmod(0o644)
    open_connection(params_for(pg), environ=env).close()
    assert admin.public_keys[0] != admin.public_keys[1]  # the exposed key was never used again
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_without_a_cache_the_key_file_lives_only_for_the_handshake_setup(tmp_path, pki, https_fake, admin, proxy,
                                                                          pg, monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    env = env_for(tmp_path, pki, https_fake, proxy, PGMI_CACHE_DIR="off")
    conn = open_connection(params_for(pg), environ=env)
    try:
        assert conn.run("SELECT 1") == [[1]]
    finally:
        conn.close()
    assert list(private_tmp.iterdir()) == []  # the 0600 key file and its 0700 directory are gone
    assert not (tmp_path / "cache").exists() and proxy.clients == ["deployer@myproj.iam"]


def test_server_identity_is_the_instance(tmp_path, pki, https_fake, admin, proxy, pg):
    https_fake.routes[("POST", EPHEMERAL.replace("mydb", "other"))] = https_fake.routes[("POST", EPHEMERAL)]
    with pytest.raises(TokenError) as info:
        open_connection(params_for(pg, "myproj:europe-west1:other"), environ=env_for(tmp_path, pki, https_fake, proxy))
    assert str(info.value) == (f"Google Cloud SQL IAM: cannot connect to instance myproj:europe-west1:other: "
                               f"Cloud SQL connector (127.0.0.1:{proxy.port}): TLS certificate verification failed: "
                               f"the server certificate is not for instance 'myproj:other'")
    assert INSTANCE_CN == "myproj:mydb"


def test_proxy_refusing_the_client_certificate(tmp_path, pki, https_fake, admin, pg):
    other_ca = tmp_path / "other-ca"
    other_ca.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=another CA"],
                   cwd=other_ca, check=True, capture_output=True)
    strict = MtlsProxy(pki, pg.conn_kwargs("postgres"), client_ca=other_ca / "ca.crt")
    try:
        with pytest.raises(Exception) as info:  # TLS 1.3: the refusal arrives after the client's handshake
            open_connection(params_for(pg), environ=env_for(tmp_path, pki, https_fake, strict), retry=False)
        assert exit_code(info.value) == Exit.CONNECTION
        # The proxy's thread counts the refusal when its own handshake fails, which can be after
        # the client has already given up: wait for that count (bounded), never for a time.
        for _ in range(500):
            if strict.refused:
                break
            threading.Event().wait(0.01)
        assert strict.refused >= 1 and strict.clients == []
    finally:
        strict.close()


def test_silent_proxy_is_bounded_by_the_run_deadline(tmp_path, pki, https_fake, admin, pg):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP (backlog), never answers the handshake
    try:
        env = env_for(tmp_path, pki, https_fake, type("P", (), {"port": silent.getsockname()[1]}))
        with pytest.raises(TokenError) as info:
            open_connection(params_for(pg), environ=env, deadline=Deadline(3.0))
        assert "Cloud SQL connector (127.0.0.1:" in str(info.value) and "timed out after" in str(info.value)
        assert Marker.DEADLINE in info.value.markers and exit_code(info.value) == Exit.TIMEOUT
    finally:
        silent.close()


def test_ephemeral_cert_refused_by_the_admin_api(tmp_path, pki, https_fake, admin, proxy, pg):
    https_fake.routes[("POST", EPHEMERAL)] = lambda r: json_reply(
        {"error": {"code": 403, "message": "The client is not authorized to make this request.",
                   "status": "PERMISSION_DENIED"}}, 403)
    with pytest.raises(TokenError) as info:
        open_connection(params_for(pg), environ=env_for(tmp_path, pki, https_fake, proxy))
    assert str(info.value).startswith("Google Cloud SQL IAM: cannot get a client certificate for instance "
                                      f"{INSTANCE}: Cloud SQL Admin API generateEphemeralCert (POST https://")
    assert str(info.value).endswith("HTTP 403: PERMISSION_DENIED: The client is not authorized to make this request.")
    assert proxy.clients == []


def test_cli_deploy_through_the_connector(tmp_path, pki, https_fake, admin, proxy, pg, monkeypatch, capsys):
    db = "pgmi_cloudsql_connector"
    for key, value in env_for(tmp_path, pki, https_fake, proxy).items():
        monkeypatch.setenv(key, value)
    for name in ("PGHOST", "PGPORT", "PGSSLMODE", "PGPASSWORD", "PGMI_CLOUDSQL_DIAL"):
        monkeypatch.delenv(name, raising=False)
    project = write_project(tmp_path / "p", {}, deploy_sql="CREATE TABLE connector_was_here (id int);\n")
    code, out, err = run_cli(["deploy", str(project), "-d", db, "--overwrite", "--force", "-U",
                              pg.conn_kwargs()["user"], "--google", "--google-instance", INSTANCE, "--verbose"], capsys)
    try:
        assert code == 0, err
        assert FAKE_TOKEN not in out + err and "PRIVATE KEY" not in out + err
        assert query(pg, db, "SELECT count(*) FROM pg_tables WHERE tablename = 'connector_was_here'") == [[1]]
        assert set(proxy.clients) == {"deployer@myproj.iam"} and len(proxy.clients) >= 2
    finally:
        with contextlib.suppress(Exception):
            query(pg, "postgres", f"DROP DATABASE IF EXISTS {db}")
    assert os.path.exists(tmp_path / "cache" / rsagen.CACHE_FILE)
