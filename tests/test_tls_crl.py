"""sslcrl on a real TLS server: a CRL that revokes the server's certificate fails the handshake under
a verifying sslmode, an empty one does not, and a CRL is never consulted when nothing is verified.

The CRLs are made with the openssl CLI from the session's test CA (tests/cloudfakes.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pgmilib.conn.connect import open_connection
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.conn.resolve import ConnectionFlags, resolve
from pgmilib.errors import ConfigError, ConnectionFailed, Exit, exit_code
from pgmilib.server.cluster import Cluster
from pgmilib.server.discovery import ssl_pg_bin

SSL_PG_BIN = ssl_pg_bin()
pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
    pytest.mark.skipif(SSL_PG_BIN is None, reason="no PostgreSQL server programs built with SSL"),
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def crls(pki, tmp_path_factory):
    """(empty.crl, revoked.crl): both signed by the test CA; the second lists the server certificate."""
    d = tmp_path_factory.mktemp("crl")
    for name in ("ca.crt", "ca.key", "server.crt"):
        shutil.copy(pki / name, d / name)
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text("[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
                              "certificate = ca.crt\nprivate_key = ca.key\ndefault_md = sha256\n"
                              "default_crl_days = 2\n")
    _openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "empty.crl", cwd=d)
    _openssl("ca", "-config", "ca.cnf", "-revoke", "server.crt", cwd=d)
    _openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "revoked.crl", cwd=d)
    return d / "empty.crl", d / "revoked.crl"


@pytest.fixture(scope="module")
def tls_server(pki):
    settings = {"ssl": "on", "ssl_cert_file": str(pki / "server.crt"), "ssl_key_file": str(pki / "server.key")}
    with Cluster(listen_tcp=True, settings=settings, pg_bin=SSL_PG_BIN or "") as cluster:
        with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
            fh.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        conn = open_connection(ConnParams(host=cluster.dir, port=cluster.port, user=cluster.user,
                                          database="postgres", sslmode="disable"))
        try:
            conn.run("SELECT pg_reload_conf()")
        finally:
            conn.close()
        yield cluster


def _params(server, pki: Path, sslmode: str, crl: Path | str) -> ConnParams:
    return parse_connection_string(f"host=127.0.0.1 port={server.port} user={server.user} sslmode={sslmode} "
                                   f"sslrootcert={pki / 'ca.crt'} sslcrl={crl}")


def _tls_in_use(params: ConnParams) -> bool:
    conn = open_connection(params, retry=False)
    try:
        return conn.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0][0]
    finally:
        conn.close()


@pytest.mark.parametrize("sslmode", ["verify-ca", "verify-full"])
def test_a_crl_without_the_server_certificate_lets_it_through(tls_server, pki, crls, sslmode):
    assert _tls_in_use(_params(tls_server, pki, sslmode, crls[0])) is True


@pytest.mark.parametrize("sslmode", ["verify-ca", "verify-full", "require"])  # require + sslrootcert verifies
def test_a_revoked_server_certificate_is_refused(tls_server, pki, crls, sslmode):
    with pytest.raises(ConnectionFailed) as info:
        open_connection(_params(tls_server, pki, sslmode, crls[1]))
    assert exit_code(info.value) == Exit.CONNECTION and info.value.details["attempts"] == 1
    assert str(info.value) == "SSL/TLS connection error: certificate revoked"


def test_without_verification_the_crl_is_not_consulted(tls_server, pki, crls):
    params = _params(tls_server, pki, "require", crls[1])
    params.sslrootcert = ""  # require without a root certificate verifies nothing (libpq)
    assert _tls_in_use(params) is True
    params.sslcrl = "/nonexistent/revoked.crl"
    assert _tls_in_use(params) is True


def test_a_missing_crl_under_a_verifying_mode_is_a_config_error(tls_server, pki):
    with pytest.raises(ConfigError) as info:
        open_connection(_params(tls_server, pki, "verify-full", "/nonexistent/revoked.crl"))
    assert 'cannot read sslcrl file "/nonexistent/revoked.crl": No such file' in str(info.value)
    assert exit_code(info.value) == Exit.CONFIG


def test_a_file_that_is_no_crl_is_a_config_error_naming_it(tls_server, pki, tmp_path):
    garbage = tmp_path / "not-a.crl"
    garbage.write_text("-----BEGIN X509 CRL-----\nnot base64 at all\n-----END X509 CRL-----\n")
    with pytest.raises(ConfigError) as info:
        open_connection(_params(tls_server, pki, "verify-ca", str(garbage)))
    assert f'invalid sslcrl file "{garbage}": ' in str(info.value)
    assert exit_code(info.value) == Exit.CONFIG


def test_pgsslcrl_is_the_variable(tls_server, pki, crls):
    params = resolve(ConnectionFlags(host="127.0.0.1", port=tls_server.port, username=tls_server.user,
                                     database="postgres", sslmode="verify-ca", sslrootcert=str(pki / "ca.crt")),
                     {"PGSSLCRL": str(crls[1])}, None)
    assert params.sslcrl == str(crls[1])
    with pytest.raises(ConnectionFailed, match="certificate revoked"):
        open_connection(params)
