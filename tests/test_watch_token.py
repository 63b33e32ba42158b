"""The watcher's second connection reuses the deploy's cloud token: nothing is fetched again.

A real TLS server whose role's password is the RDS IAM token pgmi signs with credentials from a
fake instance metadata service (tests/cloudfakes.py, as tests/test_cloud_aws.py does).
"""

from __future__ import annotations

import contextlib

import pgmilib.conn.auth.aws as aws_mod
from pgmilib.conn.auth.sigv4 import Credentials, rds_auth_token
from pgmilib.conn.connect import open_another, open_connection
from pgmilib.conn.params import ConnParams
from tests.cloudfakes import create_login, start_tls_cluster, whoami
from tests.test_cloud_aws import FROZEN, LONG_SESSION, imds_routes


def test_the_second_connection_reuses_the_token(pki, fake, monkeypatch):
    cluster = start_tls_cluster(pki)
    opened: list = []
    try:
        imds_routes(fake)
        monkeypatch.setattr(aws_mod, "_now", lambda: FROZEN)
        creds = Credentials("ASIAIMDS", "imds-secret-1", LONG_SESSION)
        create_login(cluster, "rds_iam_user", rds_auth_token("localhost", cluster.port, "eu-west-1", "rds_iam_user",
                                                             creds, FROZEN))
        params = ConnParams(host="localhost", port=cluster.port, user="rds_iam_user", database="postgres",
                            auth_method="aws", aws_region="eu-west-1", sslrootcert=str(pki / "ca.crt"))
        opened.append(open_connection(params, environ={"HOME": "/nonexistent",
                                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}))
        asked = len(fake.requests)
        assert asked > 0  # the deploy's connection fetched credentials
        opened.append(open_another(opened[0], application_name="pgmi watch", timeout=5))
        assert len(fake.requests) == asked  # the second one did not
        assert whoami(opened[1]) == ("rds_iam_user", True)  # same role, TLS verified with the same CA
        assert opened[1].run("SELECT current_setting('application_name')") == [["pgmi watch"]]
    finally:
        for conn in opened:
            with contextlib.suppress(Exception):  # closing is not what is tested
                conn.close()
        cluster.stop()
