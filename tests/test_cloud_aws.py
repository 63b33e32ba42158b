"""AWS RDS IAM: SigV4 vectors, the credential chain against local fakes, the token reaching PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

import pgmilib.conn.auth.aws as aws_mod
from pgmilib.conn.auth.aws import AwsIamAuth
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.auth.sigv4 import Credentials, rds_auth_token, sign_post
from pgmilib.conn.connect import open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConfigError, ConnectionFailed, Exit, exit_code
from pgmilib.output import Output, format_error
from pgmilib.redact import redact
from tests.cloudfakes import (
    FakeCloud,
    closed_port_url,
    create_login,
    json_reply,
    start_tls_cluster,
    text_reply,
    whoami,
)
from tests.projects import run_cli, write_project

VECTOR_TIME = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
VECTOR_CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
FROZEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
LONG_SESSION = "IQoJb3JpZ2luX2VjE/+" * 60  # real session tokens are ~1 KB: the password gets long
NO_IMDS = {"AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent"}

# ---------------------------------------------------------------------------------------
# SigV4 known answers (fixed inputs and clock, exact signatures)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "port", "region", "user", "session", "signature"), [
    ("mydb.abc123.us-east-1.rds.amazonaws.com", 5432, "us-east-1", "iam_user", "FQoGZXIvYXdzE//token=",
     "2daef3ce6f3a6b0454b6cc623feb711b19be5ff83e46d40235f3b6eb9b6b144e"),
    ("db.example.internal", 6543, "eu-west-1", "iam_user", "",
     "9530021bea28f4f9ec52ac64439b3b71af33fe1e38e2d8e969a7380421c10474"),
    ("db.example.internal", 6543, "eu-west-1", "app user@x", "",
     "c7c4dac8a678ed73e3607dd9f4bcb5a6a29ce2bd14e730b55eccbf788b8dcd0b"),
])
def test_rds_token_vectors(host, port, region, user, session, signature):
    token = rds_auth_token(host, port, region, user, VECTOR_CREDS._replace(session_token=session), VECTOR_TIME)
    assert token.endswith("&X-Amz-Signature=" + signature)
    assert token.startswith(f"{host}:{port}/?Action=connect&DBUser=")
    if session:
        assert "&X-Amz-Expires=900&X-Amz-Security-Token=FQoGZXIvYXdzE%2F%2Ftoken%3D&X-Amz-SignedHeaders=host" in token
    if user == "app user@x":
        assert "DBUser=app%20user%40x&" in token


def test_rds_token_full_vector():
    assert rds_auth_token("db.example.internal", 6543, "eu-west-1", "iam_user", VECTOR_CREDS, VECTOR_TIME) == (
        "db.example.internal:6543/?Action=connect&DBUser=iam_user&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDEXAMPLE%2F20240102%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20240102T030405Z"
        "&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=9530021bea28f4f9ec52ac64439b3b71af33fe1e38e2d8e969a7380421c10474")


def test_sigv4_header_signing_vector():
    # AWS SigV4 test suite, case "post-x-www-form-urlencoded" (the shape of an STS AssumeRole call).
    aws_suite = sign_post("https://example.amazonaws.com/", b"Param1=value1", "us-east-1", "service", VECTOR_CREDS,
                          dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc))
    assert aws_suite["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
    body = b"Action=AssumeRole&Version=2011-06-15"
    h1 = sign_post("https://sts.eu-west-1.amazonaws.com/", body, "eu-west-1", "sts", VECTOR_CREDS, VECTOR_TIME)
    assert h1["X-Amz-Date"] == "20240102T030405Z"
    h2 = sign_post("https://sts.eu-west-1.amazonaws.com/", body + b"x", "eu-west-1", "sts", VECTOR_CREDS, VECTOR_TIME)
    assert h1["Authorization"] != h2["Authorization"]
    h3 = sign_post("https://sts.eu-west-1.amazonaws.com/", body, "eu-west-1", "sts",
                   VECTOR_CREDS._replace(session_token="tok"), VECTOR_TIME)
    assert h3["X-Amz-Security-Token"] == "tok" and "x-amz-security-token" in h3["Authorization"]


# ---------------------------------------------------------------------------------------
# Fakes
# ---------------------------------------------------------------------------------------




def imds_routes(fake: FakeCloud, key: str = "ASIAIMDS", secret: str = "imds-secret-1", token: str = LONG_SESSION):
    fake.routes[("PUT", "/latest/api/token")] = lambda r: (
        text_reply("imds-v2-token") if r.headers.get("x-aws-ec2-metadata-token-ttl-seconds") == "21600"
        else text_reply("missing ttl", 400))

    def guarded(reply):
        return lambda r: reply if r.headers.get("x-aws-ec2-metadata-token") == "imds-v2-token" else text_reply("", 401)

    fake.routes[("GET", "/latest/meta-data/iam/security-credentials/")] = guarded(text_reply("my-role\n"))
    fake.routes[("GET", "/latest/meta-data/iam/security-credentials/my-role")] = guarded(json_reply({
        "Code": "Success", "AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
        "Expiration": "2099-01-01T00:00:00Z", "Type": "AWS-HMAC"}))


STS_OK = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult><Credentials>
    <AccessKeyId>ASIASTS</AccessKeyId><SecretAccessKey>sts-secret</SecretAccessKey>
    <SessionToken>sts-session-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>
  </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"""

STS_EXPIRED = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>
  <Code>ExpiredTokenException</Code><Message>Token expired: current date/time 1700000000 must be before the
  expiration date/time 1600000000</Message></Error><RequestId>x</RequestId></ErrorResponse>"""


def provider(env: dict[str, str]) -> AwsIamAuth:
    return AwsIamAuth(env)


def params(**kw) -> ConnParams:
    base = {"host": "db.example.internal", "port": 5432, "user": "iam_user", "database": "d",
            "auth_method": "aws", "aws_region": "eu-west-1"}
    return ConnParams(**{**base, **kw})


def token_key(token: str) -> str:
    return token.split("X-Amz-Credential=")[1].split("%2F")[0]


# ---------------------------------------------------------------------------------------
# The credential chain
# ---------------------------------------------------------------------------------------


def test_env_keys_and_session_token():
    env = {**NO_IMDS, "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
           "AWS_SESSION_TOKEN": "env/session"}
    token = provider(env).password(params(), "d")
    assert token_key(token) == "AKIAENV"
    assert "X-Amz-Security-Token=env%2Fsession" in token
    assert "env-secret" not in token
    assert redact(f"oops {token}") == "oops [redacted]"


def test_explicit_profile_beats_env_keys(tmp_path):
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n"
                                          "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = o\n")
    env = {**NO_IMDS, "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "e",
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    assert token_key(provider(env).password(params(), "d")) == "AKIAENV"  # no profile chosen: env first
    assert token_key(provider({**env, "AWS_PROFILE": "ops"}).password(params(), "d")) == "AKIAOPS"
    del env["AWS_ACCESS_KEY_ID"]
    assert token_key(provider(env).password(params(), "d")) == "AKIADEFAULT"  # shared file, default profile
    with pytest.raises(ConfigError, match="'nope'"):
        provider({**env, "AWS_PROFILE": "nope"}).password(params(), "d")


def test_config_file_profile_with_credential_process(tmp_path):
    script = tmp_path / "creds.py"
    script.write_text("import json; print(json.dumps({'Version': 1, 'AccessKeyId': 'AKIAPROC', "
                      "'SecretAccessKey': 's', 'SessionToken': 'proc-token'}))\n")
    import sys

    (tmp_path / "config").write_text(f"[profile build]\ncredential_process = {sys.executable} {script}\n")
    env = {**NO_IMDS, "AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_PROFILE": "build",
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    token = provider(env).password(params(), "d")
    assert token_key(token) == "AKIAPROC" and "X-Amz-Security-Token=proc-token" in token


def test_web_identity_through_sts_over_https(https_fake, pki, tmp_path):
    https_fake.routes[("POST", "/")] = lambda r: (200, {"Content-Type": "text/xml"}, STS_OK.encode())
    (tmp_path / "jwt").write_text("eyJ.web.identity\n")
    env = {**NO_IMDS, "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "jwt"), "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
           "AWS_ROLE_SESSION_NAME": "deploy", "AWS_ENDPOINT_URL_STS": https_fake.url,
           "SSL_CERT_FILE": str(pki / "ca.crt")}
    token = provider(env).password(params(), "d")
    assert token_key(token) == "ASIASTS" and "X-Amz-Security-Token=sts-session-token" in token
    form = https_fake.requests[-1].form
    assert form == {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": "arn:aws:iam::1:role/r",
                    "RoleSessionName": "deploy", "WebIdentityToken": "eyJ.web.identity"}
    assert "authorization" not in https_fake.requests[-1].headers  # the web identity call is unsigned


def test_sts_certificate_must_verify(https_fake, tmp_path):
    (tmp_path / "jwt").write_text("x")
    env = {**NO_IMDS, "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "jwt"), "AWS_ROLE_ARN": "arn",
           "AWS_ENDPOINT_URL_STS": https_fake.url}  # no SSL_CERT_FILE: the test CA is not trusted
    with pytest.raises(TokenError, match="certificate verification failed"):
        provider(env).password(params(), "d")
    assert https_fake.requests == []


def test_expired_web_identity_token(https_fake, pki, tmp_path):
    https_fake.routes[("POST", "/")] = lambda r: (400, {"Content-Type": "text/xml"}, STS_EXPIRED.encode())
    (tmp_path / "jwt").write_text("old.jwt.token")
    env = {**NO_IMDS, "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "jwt"), "AWS_ROLE_ARN": "arn",
           "AWS_ENDPOINT_URL": https_fake.url, "SSL_CERT_FILE": str(pki / "ca.crt")}
    with pytest.raises(TokenError) as info:
        provider(env).password(params(), "d")
    text = str(info.value)
    assert text.startswith("failed to acquire AWS IAM token: STS AssumeRoleWithWebIdentity (POST https://localhost:")
    assert "HTTP 400: ExpiredTokenException: Token expired" in text
    assert "old.jwt.token" not in text
    assert exit_code(info.value) == Exit.CONNECTION


def test_container_credentials_with_auth_token_file(fake, tmp_path):
    fake.routes[("GET", "/creds")] = lambda r: (
        json_reply({"AccessKeyId": "ASIAECS", "SecretAccessKey": "s", "Token": "ecs-token",
                    "Expiration": "2099-01-01T00:00:00Z"}) if r.headers.get("authorization") == "pod-auth"
        else json_reply({"code": "AccessDenied", "message": "bad auth token"}, 403))
    (tmp_path / "auth").write_text("pod-auth\n")
    env = {**NO_IMDS, "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/creds",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "auth")}
    assert token_key(provider(env).password(params(), "d")) == "ASIAECS"
    (tmp_path / "auth").write_text("rotated-wrong\n")  # re-read every time
    with pytest.raises(TokenError) as info:
        provider(env).password(params(), "d")
    assert str(info.value).endswith("HTTP 403: AccessDenied: bad auth token")
    assert "ECS container credentials (GET http://127.0.0.1:" in str(info.value)


def test_container_full_uri_must_be_local_or_https():
    env = {**NO_IMDS, "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"}
    with pytest.raises(ConfigError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        provider(env).password(params(), "d")


def test_imds_v2(fake):
    imds_routes(fake)
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    token = provider(env).password(params(), "d")
    assert token_key(token) == "ASIAIMDS" and "X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2F%2B" in token
    assert [(r.method, r.path) for r in fake.requests] == [
        ("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/my-role")]


def test_no_credentials_names_the_sources():
    with pytest.raises(TokenError) as info:
        provider(dict(NO_IMDS)).password(params(), "d")
    assert "no AWS credentials found" in str(info.value)
    assert "environment variables" in str(info.value) and "EC2 instance metadata (disabled)" in str(info.value)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


def test_endpoint_down():
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": closed_port_url()}
    with pytest.raises(TokenError) as info:
        provider(env).password(params(), "d")
    assert str(info.value).startswith("failed to acquire AWS IAM token: EC2 instance metadata (PUT http://127.0.0.1:")
    assert str(info.value).endswith("/latest/api/token): connection refused")
    assert "set AWS_PROFILE or AWS_ACCESS_KEY_ID" in "\n".join(info.value.trailer)


def test_endpoint_slow(fake):
    imds_routes(fake)
    fake.delay = 1.5
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    p = provider(env)
    p.metadata_timeout = 0.3
    with pytest.raises(TokenError, match=r"EC2 instance metadata \(PUT .*\): timed out after 0\.[3-9]s$"):
        p.password(params(), "d")


def test_endpoint_401_json(fake):
    fake.routes[("PUT", "/latest/api/token")] = lambda r: json_reply({"Code": "Unauthorized",
                                                                     "Message": "token TTL missing"}, 401)
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    with pytest.raises(TokenError, match="HTTP 401: Unauthorized: token TTL missing$"):
        provider(env).password(params(), "d")


def test_malformed_json(fake):
    imds_routes(fake)
    fake.routes[("GET", "/latest/meta-data/iam/security-credentials/my-role")] = lambda r: text_reply("{nope")
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    with pytest.raises(TokenError, match="malformed JSON in response"):
        provider(env).password(params(), "d")


def test_missing_region(capsys, tmp_path):
    with pytest.raises(ConfigError, match="requires a region"):
        provider(dict(NO_IMDS)).password(params(aws_region=""), "d")
    write_project(tmp_path, {})
    code, _, err = run_cli(["deploy", str(tmp_path), "-d", "x", "--aws", "--host", "h"], capsys)
    assert code == Exit.CONFIG and "--aws-region" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------
# End to end: the token is the PostgreSQL password
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pg(pki):
    cluster = start_tls_cluster(pki)
    yield cluster
    cluster.stop()


def test_token_reaches_postgres_as_password(tls_pg, pki, fake, monkeypatch):
    imds_routes(fake)
    monkeypatch.setattr(aws_mod, "_now", lambda: FROZEN)
    creds = Credentials("ASIAIMDS", "imds-secret-1", LONG_SESSION)
    expected = rds_auth_token("localhost", tls_pg.port, "eu-west-1", "rds_iam_user", creds, FROZEN)
    assert len(expected) > 1500
    create_login(tls_pg, "rds_iam_user", expected)
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    p = ConnParams(host="localhost", port=tls_pg.port, user="rds_iam_user", database="postgres", auth_method="aws",
                   aws_region="eu-west-1", sslrootcert=str(pki / "ca.crt"))
    conn = open_connection(p, environ=env)
    try:
        assert whoami(conn) == ("rds_iam_user", True)  # verify-full by default: TLS, CA checked
    finally:
        conn.close()


def test_each_attempt_fetches_fresh_credentials(fake):
    imds_routes(fake)
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    port = int(closed_port_url().rsplit(":", 1)[1])
    p = ConnParams(host="127.0.0.1", port=port, user="u", database="d", auth_method="aws", aws_region="eu-west-1")
    with pytest.raises(ConnectionFailed) as info:
        open_connection(p, environ=env)
    assert info.value.details["attempts"] == 4
    assert sum(r.method == "PUT" for r in fake.requests) == 4


def test_cli_deploy_with_aws(tls_pg, pki, fake, monkeypatch, capsys, tmp_path):
    imds_routes(fake)
    monkeypatch.setattr(aws_mod, "_now", lambda: FROZEN)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake.url)
    creds = Credentials("ASIAIMDS", "imds-secret-1", LONG_SESSION)
    create_login(tls_pg, "cli_iam", rds_auth_token("localhost", tls_pg.port, "us-east-2", "cli_iam", creds, FROZEN))
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    argv = ["deploy", str(project), "-d", "postgres", "--host", "localhost", "--port", str(tls_pg.port),
            "-U", "cli_iam", "--aws", "--aws-region", "us-east-2", "--sslrootcert", str(pki / "ca.crt")]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "WARNING" not in err and "X-Amz" not in out + err
    code, _, err = run_cli([*argv[:-2], "--sslmode", "require"], capsys)  # encrypted, server not verified
    assert code == 0, err
    assert "WARNING: sslmode require with AWS IAM" in err


def test_weak_sslmode_warns_once():
    from pgmilib.conn.auth.cloud import _warned

    _warned.clear()
    buf = io.StringIO()
    out = Output(stderr=buf)
    p = ConnParams(host="h.example", user="u", auth_method="aws", aws_region="r", sslmode="disable", given={"sslmode"})
    for _ in range(3):
        AwsIamAuth({}).prepare(p, out)
    assert buf.getvalue().count("WARNING: sslmode disable with AWS IAM") == 1
    defaulted = AwsIamAuth({}).prepare(ConnParams(host="h", auth_method="aws", sslmode="prefer"), out)
    assert defaulted.sslmode == "verify-full"


def test_error_output_is_one_redacted_line(fake):
    fake.routes[("PUT", "/latest/api/token")] = lambda r: json_reply(
        {"Code": "Denied", "Message": "secret ASIA-SECRET-VALUE leaked"}, 403)
    from pgmilib.redact import register_secret

    register_secret("ASIA-SECRET-VALUE")
    env = {"HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
    with pytest.raises(TokenError) as info:
        provider(env).password(params(), "d")
    shown = format_error(info.value)
    assert "ASIA-SECRET-VALUE" not in shown and "[redacted]" in shown
    assert json.dumps(shown)  # plain text


def test_source_profile_assume_role_is_signed(https_fake, pki, tmp_path):
    https_fake.routes[("POST", "/")] = lambda r: (200, {"Content-Type": "text/xml"}, STS_OK.replace(
        "AssumeRoleWithWebIdentity", "AssumeRole").replace("ASIASTS", "ASIAROLE").encode())
    (tmp_path / "config").write_text("[profile app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\n"
                                     "role_session_name = pgmi-test\n")
    (tmp_path / "credentials").write_text("[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = b\n")
    env = {**NO_IMDS, "AWS_PROFILE": "app", "AWS_CONFIG_FILE": str(tmp_path / "config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "AWS_ENDPOINT_URL_STS": https_fake.url,
           "SSL_CERT_FILE": str(pki / "ca.crt")}
    assert token_key(provider(env).password(params(), "d")) == "ASIAROLE"
    req = https_fake.requests[-1]
    assert req.form["Action"] == "AssumeRole" and req.form["RoleArn"] == "arn:aws:iam::1:role/app"
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIABASE/")
    assert "/eu-west-1/sts/aws4_request" in req.headers["authorization"]
