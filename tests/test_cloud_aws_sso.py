"""AWS SSO profiles: a token cache file plus a fake SSO portal (HTTPS, test CA), the RDS token reaching PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

import pgmilib.conn.auth.aws as aws_mod
from pgmilib.conn.auth.aws import AwsIamAuth
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.auth.sigv4 import Credentials, rds_auth_token
from pgmilib.conn.connect import open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConfigError, Exit, exit_code
from pgmilib.output import format_error
from tests.cloudfakes import create_login, json_reply, start_tls_cluster, whoami
from tests.projects import run_cli, write_project

SSO_TOKEN = "aoaAAAAAGc" + "SsoBearer" * 80  # the portal's bearer token (opaque, long)
ROLE_SECRET = "sso-role-secret-key-0123456789"
ROLE_SESSION = "IQoJb3JpZ2luX2VjEsso/+" * 40
FROZEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
PORTAL_PATH = "/federation/credentials"
CONFIG = """[profile dev]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = DbDeployer
region = eu-west-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-central-1
sso_registration_scopes = sso:account:access

[profile legacy]
sso_start_url = https://legacy.awsapps.com/start
sso_region = us-east-1
sso_account_id = 210987654321
sso_role_name = ReadOnly
"""


def write_cache(home: Path, key: str, *, expires_in: float = 3600, token: str = SSO_TOKEN) -> Path:
    cache = home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
    path = cache / (hashlib.sha1(key.encode()).hexdigest() + ".json")
    path.write_text(json.dumps({"startUrl": "https://corp.awsapps.com/start", "region": "eu-central-1",
                                "accessToken": token, "expiresAt": expires, "refreshToken": "sso-refresh-value",
                                "clientId": "cid", "clientSecret": "sso-client-secret-value"}))
    return path


def portal_ok(key: str = "ASIASSO"):
    def reply(request):
        if request.headers.get("x-amz-sso_bearer_token") != SSO_TOKEN:
            return json_reply({"message": "Session token not found or invalid"}, 401)
        return json_reply({"roleCredentials": {"accessKeyId": key, "secretAccessKey": ROLE_SECRET,
                                               "sessionToken": ROLE_SESSION,
                                               "expiration": int((time.time() + 3600) * 1000)}})
    return reply


@pytest.fixture
def home(tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(CONFIG)
    return tmp_path


def env_for(home: Path, portal, pki, profile: str = "dev") -> dict[str, str]:
    return {"HOME": str(home), "AWS_PROFILE": profile, "AWS_ENDPOINT_URL_SSO": portal.url,
            "SSL_CERT_FILE": str(pki / "ca.crt"), "AWS_EC2_METADATA_DISABLED": "true"}


def params(**kw) -> ConnParams:
    return ConnParams(**{"host": "db.example.internal", "port": 5432, "user": "iam_user", "database": "d",
                         "auth_method": "aws", "aws_region": "eu-west-1", **kw})


def token_key(token: str) -> str:
    query = dict(urllib.parse.parse_qsl(token.split("?", 1)[1]))
    return query["X-Amz-Credential"].split("/")[0]


def test_sso_session_profile(home, https_fake, pki):
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok()
    write_cache(home, "corp")  # the current form: the cache file is named after the session
    creds = AwsIamAuth(env_for(home, https_fake, pki)).credentials("eu-west-1")
    assert (creds.access_key, creds.secret_key, creds.session_token) == ("ASIASSO", ROLE_SECRET, ROLE_SESSION)
    assert creds.expiration is not None and creds.expiration.timestamp() > time.time() + 3000
    request = https_fake.requests[-1]
    assert request.query == {"account_id": "123456789012", "role_name": "DbDeployer"}
    assert request.headers["x-amz-sso_bearer_token"] == SSO_TOKEN


def test_legacy_start_url_profile_and_config_file_variable(home, https_fake, pki, tmp_path):
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok("ASIALEGACY")
    write_cache(home, "https://legacy.awsapps.com/start")  # the legacy form: named after the start URL
    moved = tmp_path / "elsewhere.ini"
    moved.write_text(CONFIG)
    (home / ".aws" / "config").write_text("")
    env = {**env_for(home, https_fake, pki, "legacy"), "AWS_CONFIG_FILE": str(moved)}
    token = AwsIamAuth(env).password(params(), "d")
    assert token_key(token) == "ASIALEGACY"
    assert https_fake.requests[-1].query == {"account_id": "210987654321", "role_name": "ReadOnly"}


def test_default_profile_can_be_sso(home, https_fake, pki):
    (home / ".aws" / "config").write_text(CONFIG.replace("[profile dev]", "[default]"))
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok()
    write_cache(home, "corp")
    env = env_for(home, https_fake, pki)
    del env["AWS_PROFILE"]
    assert AwsIamAuth(env).credentials("eu-west-1").access_key == "ASIASSO"


def test_expired_sign_in_is_one_line_asking_for_aws_sso_login(home, https_fake, pki):
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok()
    write_cache(home, "corp", expires_in=-60)
    with pytest.raises(TokenError) as info:
        AwsIamAuth(env_for(home, https_fake, pki)).password(params(), "d")
    text = format_error(info.value)
    assert text.startswith("failed to acquire AWS IAM token: SSO sign-in of profile 'dev': the SSO sign-in expired "
                           "at 20")
    assert text.endswith("; run `aws sso login --sso-session corp`") and "\n" not in text.strip()
    assert exit_code(info.value) == Exit.CONNECTION
    assert not https_fake.requests  # nothing was sent with a dead token
    assert "SsoBearer" not in text and "sso-refresh-value" not in text


def test_no_cached_sign_in(home, https_fake, pki):
    with pytest.raises(TokenError, match=r"not signed in \(no cached token .*\.json\); "
                                         r"run `aws sso login --profile legacy`$"):
        AwsIamAuth(env_for(home, https_fake, pki, "legacy")).credentials("eu-west-1")


def test_garbage_cache_file_is_never_quoted(home, https_fake, pki):
    path = write_cache(home, "corp")
    path.write_text("accessToken: " + SSO_TOKEN)
    with pytest.raises(TokenError) as info:
        AwsIamAuth(env_for(home, https_fake, pki)).credentials("eu-west-1")
    assert "is not the JSON the AWS CLI writes" in str(info.value) and "SsoBearer" not in format_error(info.value)


def test_cache_that_is_a_fifo_is_refused_without_blocking(home, https_fake, pki):
    path = write_cache(home, "corp")
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(TokenError, match=r"is not a regular file; run `aws sso login --sso-session corp`$"):
        AwsIamAuth(env_for(home, https_fake, pki)).credentials("eu-west-1")


def test_portal_rejects_the_token(home, https_fake, pki):
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok()
    write_cache(home, "corp", token="aoaRevoked" + "x" * 40)
    with pytest.raises(TokenError) as info:
        AwsIamAuth(env_for(home, https_fake, pki)).credentials("eu-west-1")
    assert "SSO GetRoleCredentials (GET https://localhost:" in str(info.value)
    assert str(info.value).endswith("HTTP 401: Session token not found or invalid")
    assert "aws sso login --sso-session corp" in format_error(info.value)
    assert "aoaRevoked" not in format_error(info.value)


def test_portal_answer_without_credentials(home, https_fake, pki):
    https_fake.routes[("GET", PORTAL_PATH)] = lambda r: json_reply({"roleCredentials": {"accessKeyId": "A"}})
    write_cache(home, "corp")
    with pytest.raises(TokenError, match="response has no accessKeyId/secretAccessKey$"):
        AwsIamAuth(env_for(home, https_fake, pki)).credentials("eu-west-1")


def test_incomplete_sso_profiles_are_config_errors(home, https_fake, pki):
    (home / ".aws" / "config").write_text("[profile a]\nsso_session = nowhere\n"
                                          "[profile b]\nsso_start_url = https://x\nsso_region = us-east-1\n"
                                          "sso_account_id = 12\nsso_role_name = R\n"
                                          "[profile c]\nsso_start_url = https://x\n")
    for profile, message in (("a", r"sso_session 'nowhere' has no \[sso-session nowhere\] section"),
                             ("b", "sso_account_id '12' is not a 12-digit AWS account id"),
                             ("c", "an SSO profile needs sso_region, sso_account_id, sso_role_name")):
        with pytest.raises(ConfigError, match=message):
            AwsIamAuth(env_for(home, https_fake, pki, profile)).credentials("eu-west-1")


def test_portal_must_be_https_off_loopback(home, pki):
    write_cache(home, "corp")
    env = {"HOME": str(home), "AWS_PROFILE": "dev", "AWS_ENDPOINT_URL_SSO": "http://portal.example.com"}
    with pytest.raises(TokenError, match="refusing to send credentials over plain HTTP"):
        AwsIamAuth(env).credentials("eu-west-1")


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pg(pki):
    cluster = start_tls_cluster(pki)
    yield cluster
    cluster.stop()


def test_sso_token_reaches_postgres(tls_pg, pki, https_fake, home, monkeypatch):
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok()
    write_cache(home, "corp")
    monkeypatch.setattr(aws_mod, "_now", lambda: FROZEN)
    expected = rds_auth_token("localhost", tls_pg.port, "eu-west-1", "sso_user",
                              Credentials("ASIASSO", ROLE_SECRET, ROLE_SESSION), FROZEN)
    create_login(tls_pg, "sso_user", expected)
    p = params(host="localhost", port=tls_pg.port, user="sso_user", database="postgres",
               sslrootcert=str(pki / "ca.crt"))
    conn = open_connection(p, environ=env_for(home, https_fake, pki))
    try:
        assert whoami(conn) == ("sso_user", True)
    finally:
        conn.close()


def test_cli_deploy_with_sso_profile(tls_pg, pki, https_fake, home, monkeypatch, capsys, tmp_path):
    https_fake.routes[("GET", PORTAL_PATH)] = portal_ok()
    write_cache(home, "corp")
    monkeypatch.setattr(aws_mod, "_now", lambda: FROZEN)
    create_login(tls_pg, "sso_cli", rds_auth_token("localhost", tls_pg.port, "eu-west-1", "sso_cli",
                                                   Credentials("ASIASSO", ROLE_SECRET, ROLE_SESSION), FROZEN))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env_for(home, https_fake, pki).items():
        monkeypatch.setenv(name, value)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    argv = ["deploy", str(project), "-d", "postgres", "--host", "localhost", "--port", str(tls_pg.port),
            "-U", "sso_cli", "--aws", "--aws-region", "eu-west-1", "--sslrootcert", str(pki / "ca.crt"), "--verbose"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    for secret in ("SsoBearer", ROLE_SECRET, "IQoJb3JpZ2luX2VjEsso", "X-Amz-Signature"):
        assert secret not in out + err
    write_cache(home, "corp", expires_in=-5)
    code, out, err = run_cli(argv, capsys)
    assert code == Exit.CONNECTION
    last = err.strip().splitlines()[-1]
    assert "the SSO sign-in expired at 20" in last and last.endswith("; run `aws sso login --sso-session corp`")
    assert "SsoBearer" not in out + err
