"""Google Cloud SQL IAM: ADC flows, RS256 verified by openssl, instance resolution, token as password."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest

from pgmilib.conn.auth.google import ADMIN_SCOPE, LOGIN_SCOPE, GoogleAuth, parse_instance
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.auth.rsa import BadKey, load_private_key, sign_rs256
from pgmilib.conn.connect import open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConfigError, ConnectionFailed, Exit, exit_code
from tests.cloudfakes import (
    INSTANCE_CN,
    closed_port_url,
    create_login,
    json_reply,
    start_tls_cluster,
    text_reply,
    whoami,
)
from tests.projects import run_cli, write_project

INSTANCE = "myproj:europe-west1:mydb"
SA_USER = "deployer@myproj.iam"
FAKE_TOKEN = "ya29.c." + "b0FBQUFB" * 30  # Google access tokens are opaque, ~200+ bytes
CONNECT_SETTINGS = "/sql/v1beta4/projects/myproj/instances/mydb/connectSettings"


@pytest.fixture
def google(https_fake):
    """One HTTPS fake for oauth2.googleapis.com and sqladmin.googleapis.com."""
    https_fake.routes[("POST", "/token")] = lambda r: json_reply(
        {"access_token": FAKE_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
    return https_fake


def sa_file(tmp_path, pki, google, key_path=None) -> str:
    info = {"type": "service_account", "project_id": "myproj", "private_key_id": "kid-123",
            "private_key": (key_path or pki / "rsa.pem").read_text(), "client_email": "deployer@myproj.iam.gserviceaccount.com",
            "token_uri": google.url + "/token"}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return str(path)


def sa_env(tmp_path, pki, google, **extra) -> dict[str, str]:
    return {"GOOGLE_APPLICATION_CREDENTIALS": sa_file(tmp_path, pki, google), "SSL_CERT_FILE": str(pki / "ca.crt"),
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SQLADMIN": google.url + "/", "HOME": str(tmp_path),
            "PGMI_CLOUDSQL_DIAL": "direct", **extra}  # the connector path: test_cloud_sqlconnector.py


def connect_settings(pki, region: str = "europe-west1", ips=(("PRIMARY", "127.0.0.1"),)):
    return lambda r: json_reply({
        "kind": "sql#connectSettings", "region": region, "databaseVersion": "POSTGRES_15", "backendType": "SECOND_GEN",
        "ipAddresses": [{"type": t, "ipAddress": ip} for t, ip in ips],
        "serverCaCert": {"cert": (pki / "ca.crt").read_text()}, "serverCaMode": "GOOGLE_MANAGED_INTERNAL_CA",
    }) if r.headers.get("authorization") == f"Bearer {FAKE_TOKEN}" else json_reply(
        {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                   "status": "UNAUTHENTICATED"}}, 401)


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# ---------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------


def test_parse_instance():
    assert str(parse_instance("myproj:europe-west1:mydb")) == "myproj:europe-west1:mydb"
    dom = parse_instance("example.com:myproj:us-central1:db-1")
    assert (dom.project, dom.region, dom.instance) == ("example.com:myproj", "us-central1", "db-1")
    for bad in ("myproj", "myproj:mydb", "a:b:c:d:e", "My Proj:r:i", "p::i", "p:r:", "p/x:r:i"):
        with pytest.raises(ConfigError, match="invalid --google-instance"):
            parse_instance(bad)


def test_malformed_instance_name_on_the_cli(capsys, tmp_path):
    write_project(tmp_path, {})
    code, _, err = run_cli(["deploy", str(tmp_path), "-d", "x", "--google", "--google-instance", "just-a-name",
                            "--host", "127.0.0.1", "--port", "1"], capsys)
    assert code == Exit.CONFIG and "invalid --google-instance 'just-a-name'" in err and "Traceback" not in err


def test_rs256_signature_verifies_with_openssl(pki, tmp_path):
    key = load_private_key((pki / "rsa.pem").read_text())
    for message in (b"", b"header.payload", bytes(range(256)) * 10):
        (tmp_path / "msg").write_bytes(message)
        (tmp_path / "sig").write_bytes(sign_rs256(key, message))
        done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pki / "rsa.pub"), "-signature",
                               str(tmp_path / "sig"), str(tmp_path / "msg")], check=False, capture_output=True,
                              text=True)
        assert done.stdout.strip() == "Verified OK", done.stderr


def test_keys_that_are_not_pkcs8_rsa(pki, tmp_path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(tmp_path / "ec.pem")], check=True, capture_output=True)
    with pytest.raises(BadKey, match="not an RSA key"):
        load_private_key((tmp_path / "ec.pem").read_text())
    with pytest.raises(BadKey, match="expected a PKCS#8"):
        load_private_key("not a key at all")
    with pytest.raises(BadKey, match="expected a PKCS#8 'BEGIN PRIVATE KEY' block, found CERTIFICATE"):
        load_private_key((pki / "ca.crt").read_text())
    with pytest.raises(BadKey):
        load_private_key("-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")


def test_service_account_key_not_rsa_is_a_config_error(pki, tmp_path, google):
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(tmp_path / "ec.pem")], check=True, capture_output=True)
    env = {"GOOGLE_APPLICATION_CREDENTIALS": sa_file(tmp_path, pki, google, tmp_path / "ec.pem")}
    with pytest.raises(ConfigError) as info:
        GoogleAuth(env).access_token(LOGIN_SCOPE)
    assert "private_key: the PKCS#8 key is not an RSA key" in str(info.value)
    assert exit_code(info.value) == Exit.CONFIG
    assert google.requests == []


def test_service_account_jwt_exchange(pki, tmp_path, google):
    env = sa_env(tmp_path, pki, google)
    token, expires = GoogleAuth(env).access_token(LOGIN_SCOPE)
    assert token == FAKE_TOKEN and 3500 < expires - time.time() < 3600
    form = google.requests[-1].form
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    head, body, sig = form["assertion"].split(".")
    header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "kid-123"}
    assert claims["iss"] == "deployer@myproj.iam.gserviceaccount.com" and claims["scope"] == LOGIN_SCOPE
    assert claims["aud"] == google.url + "/token" and claims["exp"] - claims["iat"] == 3600
    (tmp_path / "input").write_bytes(f"{head}.{body}".encode())
    (tmp_path / "sig").write_bytes(_unb64(sig))
    done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pki / "rsa.pub"), "-signature",
                           str(tmp_path / "sig"), str(tmp_path / "input")], check=False, capture_output=True, text=True)
    assert done.stdout.strip() == "Verified OK"


def test_authorized_user_refresh(pki, tmp_path, google):
    (tmp_path / "gcloud").mkdir()
    (tmp_path / "gcloud" / "application_default_credentials.json").write_text(json.dumps({
        "type": "authorized_user", "client_id": "cid.apps.googleusercontent.com", "client_secret": "csecret",
        "refresh_token": "1//refresh-me", "token_uri": google.url + "/token"}))
    env = {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "SSL_CERT_FILE": str(pki / "ca.crt")}
    assert GoogleAuth(env).access_token(LOGIN_SCOPE)[0] == FAKE_TOKEN
    assert google.requests[-1].form == {"grant_type": "refresh_token", "client_id": "cid.apps.googleusercontent.com",
                                        "client_secret": "csecret", "refresh_token": "1//refresh-me"}


def test_unsupported_credential_type(tmp_path):
    (tmp_path / "ext.json").write_text(json.dumps({"type": "external_account"}))
    with pytest.raises(ConfigError, match="credential type 'external_account' is not supported"):
        GoogleAuth({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "ext.json")}).access_token(LOGIN_SCOPE)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        GoogleAuth({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "bad.json")}).access_token(LOGIN_SCOPE)


def test_metadata_server(fake, tmp_path):
    fake.routes[("GET", "/computeMetadata/v1/instance/service-accounts/default/token")] = lambda r: json_reply(
        {"access_token": FAKE_TOKEN, "expires_in": 3000, "token_type": "Bearer"}, headers={"Metadata-Flavor": "Google"}
    ) if r.headers.get("metadata-flavor") == "Google" else text_reply("", 403)
    env = {"GCE_METADATA_HOST": fake.hostport, "HOME": str(tmp_path)}
    assert GoogleAuth(env).access_token(LOGIN_SCOPE)[0] == FAKE_TOKEN
    assert fake.requests[-1].query == {"scopes": LOGIN_SCOPE}


def test_metadata_impostor_is_rejected(fake, tmp_path):
    fake.routes[("GET", "/computeMetadata/v1/instance/service-accounts/default/token")] = lambda r: json_reply(
        {"access_token": "x" * 20})
    with pytest.raises(TokenError, match="not a metadata server"):
        GoogleAuth({"GCE_METADATA_HOST": fake.hostport, "HOME": str(tmp_path)}).access_token(LOGIN_SCOPE)


def test_endpoint_down(tmp_path):
    host = closed_port_url().removeprefix("http://")
    with pytest.raises(TokenError) as info:
        GoogleAuth({"GCE_METADATA_HOST": host, "HOME": str(tmp_path)}).access_token(LOGIN_SCOPE)
    assert str(info.value).startswith("failed to acquire Google Cloud SQL IAM token: metadata server (GET http://")
    assert str(info.value).endswith("connection refused")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in "\n".join(info.value.trailer)


def test_endpoint_slow(pki, tmp_path, google):
    google.delay = 1.5
    provider = GoogleAuth(sa_env(tmp_path, pki, google))
    provider.token_timeout = 0.3
    with pytest.raises(TokenError, match=r"service account token exchange \(POST .*/token\): timed out after 0\.[3-9]s$"):
        provider.access_token(LOGIN_SCOPE)


def test_token_endpoint_403_json(pki, tmp_path, google):
    google.routes[("POST", "/token")] = lambda r: json_reply(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
    with pytest.raises(TokenError, match=r"HTTP 400: invalid_grant: Invalid JWT Signature\.$"):
        GoogleAuth(sa_env(tmp_path, pki, google)).access_token(LOGIN_SCOPE)


# ---------------------------------------------------------------------------------------
# Instance resolution (connectSettings)
# ---------------------------------------------------------------------------------------


def test_resolve_uses_the_admin_api_override(pki, tmp_path, google):
    google.routes[("GET", CONNECT_SETTINGS)] = connect_settings(pki)
    address, ctx = GoogleAuth(sa_env(tmp_path, pki, google)).resolve(parse_instance(INSTANCE))
    assert address == "127.0.0.1" and ctx.expected_cn == INSTANCE_CN
    token_request, settings_request = google.requests
    assert json.loads(_unb64(token_request.form["assertion"].split(".")[1]))["scope"] == ADMIN_SCOPE
    assert settings_request.path == CONNECT_SETTINGS


@pytest.mark.parametrize(("reply", "message"), [
    (lambda pki: connect_settings(pki, region="us-east1"), "is in region 'us-east1', not 'europe-west1'"),
    (lambda pki: connect_settings(pki, ips=(("PRIVATE", "10.0.0.5"),)), "no public (PRIMARY) IP address (has: PRIVATE)"),
    (lambda pki: (lambda r: json_reply({"error": {"code": 403, "status": "PERMISSION_DENIED",
                                                  "message": "The client is not authorized."}}, 403)),
     "HTTP 403: PERMISSION_DENIED: The client is not authorized."),
    (lambda pki: (lambda r: text_reply("]]")), "malformed JSON in response"),
])
def test_resolve_errors(pki, tmp_path, google, reply, message):
    google.routes[("GET", CONNECT_SETTINGS)] = reply(pki)
    with pytest.raises(TokenError) as info:
        GoogleAuth(sa_env(tmp_path, pki, google)).resolve(parse_instance(INSTANCE))
    assert str(info.value).startswith(f"Google Cloud SQL IAM: cannot resolve instance {INSTANCE}: Cloud SQL Admin API "
                                      "connectSettings (GET https://localhost:")
    assert message in str(info.value)


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pg(pki):
    cluster = start_tls_cluster(pki)
    create_login(cluster, SA_USER, FAKE_TOKEN)
    yield cluster
    cluster.stop()


def test_resolved_instance_token_reaches_postgres(tls_pg, pki, tmp_path, google):
    google.routes[("GET", CONNECT_SETTINGS)] = connect_settings(pki)
    params = ConnParams(port=tls_pg.port, user=SA_USER, database="postgres", auth_method="google",
                        google_instance=INSTANCE)
    env = sa_env(tmp_path, pki, google)
    env.pop("SSL_CERT_FILE")  # PostgreSQL's CA comes from connectSettings, not the trust store ...
    with pytest.raises(ConnectionFailed, match="certificate verification failed"):
        open_connection(params, environ=env)  # ... but the HTTPS fake needs it: proves the split
    env["SSL_CERT_FILE"] = str(pki / "ca.crt")
    conn = open_connection(params, environ=env)
    try:
        assert whoami(conn) == (SA_USER, True)
    finally:
        conn.close()


def test_server_identity_is_checked(tls_pg, pki, tmp_path, google):
    google.routes[("GET", "/sql/v1beta4/projects/myproj/instances/other/connectSettings")] = connect_settings(pki)
    params = ConnParams(port=tls_pg.port, user=SA_USER, database="postgres", auth_method="google",
                        google_instance="myproj:europe-west1:other")
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params, environ=sa_env(tmp_path, pki, google))
    assert str(info.value).startswith("SSL/TLS connection error: the server certificate is not for instance "
                                      "'myproj:other'")
    assert info.value.details["attempts"] == 1


def test_cli_deploy_resolving_the_instance(tls_pg, pki, tmp_path, google, monkeypatch, capsys):
    google.routes[("GET", CONNECT_SETTINGS)] = connect_settings(pki)
    for key, value in sa_env(tmp_path, pki, google).items():
        monkeypatch.setenv(key, value)
    for name in ("PGHOST", "PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    code, out, err = run_cli(["deploy", str(project), "-d", "postgres", "--port", str(tls_pg.port), "-U", SA_USER,
                              "--google", "--google-instance", INSTANCE], capsys)
    assert code == 0, err
    assert FAKE_TOKEN not in out + err
    assert any(r.path == CONNECT_SETTINGS for r in google.requests)


def test_cli_deploy_with_explicit_host(tls_pg, pki, tmp_path, google, monkeypatch, capsys):
    for key, value in sa_env(tmp_path, pki, google).items():
        monkeypatch.setenv(key, value)
    for name in ("PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    code, _, err = run_cli(["deploy", str(project), "-d", "postgres", "--host", "localhost", "--port",
                            str(tls_pg.port), "-U", SA_USER, "--google", "--google-instance", INSTANCE,
                            "--sslrootcert", str(pki / "ca.crt")], capsys)
    assert code == 0, err
    assert [r.path for r in google.requests] == ["/token"] * len(google.requests)  # no Admin API call


def test_explicit_weak_sslmode_is_ignored_with_a_warning_when_resolving(tmp_path):
    import io

    from pgmilib.conn.auth.cloud import _warned
    from pgmilib.output import Output

    _warned.clear()
    buf = io.StringIO()
    params = ConnParams(user=SA_USER, auth_method="google", google_instance=INSTANCE, sslmode="disable",
                        given={"sslmode"})
    env = {"GCE_METADATA_HOST": closed_port_url().removeprefix("http://"), "HOME": str(tmp_path)}
    with pytest.raises(TokenError):
        GoogleAuth(env).prepare(params, Output(stderr=buf))
    assert "WARNING: --sslmode disable ignored: connections to a resolved Cloud SQL instance always use TLS" in (
        buf.getvalue())
