"""SCRAM-SHA-256 with channel binding over TLS (SCRAM-SHA-256-PLUS), with the pinned driver.

requirements.txt pins pg8000 1.31.5 and scramp 1.4.6 because they install on every supported
interpreter (docs/PORTABILITY.md); `make test-pythons` runs this file on each. The server offers
the -PLUS mechanism only over TLS and checks the client's channel-binding data (a hash of the
server certificate, `tls-server-end-point`) against its own certificate: a -PLUS login that
succeeds proves the binding was computed right. tests/test_build.py checks the same inside the
single-file build, whose copy of scramp imports asn1crypto lazily.
"""

from __future__ import annotations

import pytest
from cloudfakes import create_login, start_scram_tls_cluster

from pgmilib.conn.connect import open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConnectionFailed

PASSWORD = "Scram-Secret-41"


@pytest.fixture(scope="module")
def scram_server(pki):
    cluster = start_scram_tls_cluster(pki)
    try:
        create_login(cluster, "scramuser", PASSWORD)
        yield cluster
    finally:
        cluster.stop()


def _params(server, password: str, sslmode: str = "require") -> ConnParams:
    return ConnParams(host="127.0.0.1", port=server.port, user="scramuser", database="postgres",
                      sslmode=sslmode, password=password)


def test_scram_login_over_tls_binds_the_channel(scram_server):
    conn = open_connection(_params(scram_server, PASSWORD), retry=False)
    try:
        assert conn.auth.mechanism_name == "SCRAM-SHA-256-PLUS"
        assert conn.run("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [
            ["scramuser", True]]
    finally:
        conn.close()


def test_a_wrong_password_is_refused_over_the_bound_channel(scram_server):
    with pytest.raises(ConnectionFailed) as info:
        open_connection(_params(scram_server, "not-the-password"), retry=False)
    assert info.value.pg is not None and info.value.pg.sqlstate == "28P01"
    assert "not-the-password" not in str(info.value)
