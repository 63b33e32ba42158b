"""Azure Entra ID: service principal, certificate, workload and managed identity against local fakes."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time

import pytest

from pgmilib.conn.auth.azure import RESOURCE, SCOPE, AzureAuth
from pgmilib.conn.auth.cloud import _warned
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.connect import open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConfigError, Exit, exit_code
from pgmilib.output import Output, format_error
from tests.cloudfakes import (
    closed_port_url,
    create_login,
    json_reply,
    start_tls_cluster,
    text_reply,
    whoami,
)
from tests.projects import run_cli, write_project

TENANT = "contoso.onmicrosoft.com"
FAKE_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "QUJD" * 400 + ".c2ln"  # ~1.7 KB, like Entra's
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"
IMDS_PATH = "/metadata/identity/oauth2/token"


@pytest.fixture
def login(https_fake):
    """A fake login.microsoftonline.com (HTTPS, test CA)."""
    return https_fake


def sp_env(login, pki, **extra) -> dict[str, str]:
    return {"AZURE_AUTHORITY_HOST": login.url, "SSL_CERT_FILE": str(pki / "ca.crt"),
            "AZURE_CLIENT_SECRET": "sp-secret-value", **extra}


def entra_ok(token: str = FAKE_TOKEN, expires_in: int = 3599):
    return lambda r: json_reply({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                                 "access_token": token})


def test_client_secret(login, pki):
    login.routes[("POST", TOKEN_PATH)] = entra_ok()
    assert AzureAuth(sp_env(login, pki)).token(TENANT, "app-id")[0] == FAKE_TOKEN
    req = login.requests[-1]
    assert req.form == {"grant_type": "client_credentials", "client_id": "app-id", "client_secret": "sp-secret-value",
                        "scope": SCOPE}
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"


def test_client_secret_401_json_is_one_redacted_line(login, pki):
    login.routes[("POST", TOKEN_PATH)] = lambda r: json_reply({
        "error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided "
        "(sp-secret-value).", "error_codes": [7000215], "trace_id": "t", "correlation_id": "c"}, 401)
    with pytest.raises(TokenError) as info:
        AzureAuth(sp_env(login, pki)).token(TENANT, "app-id")
    text = format_error(info.value)
    assert text.startswith("failed to acquire Azure Entra ID token: client secret token request "
                           f"(POST https://localhost:{login.server.server_address[1]}{TOKEN_PATH}): HTTP 401: "
                           "invalid_client: AADSTS7000215: Invalid client secret provided")
    assert "sp-secret-value" not in text and "\n" not in str(info.value)
    assert exit_code(info.value) == Exit.CONNECTION


def test_invalid_tenant():
    with pytest.raises(ConfigError, match="invalid Azure tenant id"):
        AzureAuth({}).token("bad/tenant", "c")


def _jwt_parts(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]


def test_client_certificate_assertion_verifies_with_openssl(login, pki, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-key", str(pki / "rsa.pem"), "-out", str(tmp_path / "sp.crt"),
                    "-days", "1", "-subj", "/CN=pgmi-sp"], check=True, capture_output=True)
    bundle = tmp_path / "sp.pem"
    bundle.write_text((tmp_path / "sp.crt").read_text() + (pki / "rsa.pem").read_text())
    login.routes[("POST", TOKEN_PATH)] = entra_ok()
    env = {"AZURE_AUTHORITY_HOST": login.url, "SSL_CERT_FILE": str(pki / "ca.crt"),
           "AZURE_CLIENT_CERTIFICATE_PATH": str(bundle)}
    assert AzureAuth(env).token(TENANT, "app-id")[0] == FAKE_TOKEN
    form = login.requests[-1].form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in form
    assertion = form["client_assertion"]
    header, claims, signature = _jwt_parts(assertion)
    header, claims = json.loads(header), json.loads(claims)
    fingerprint = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "sp.crt"), "-noout", "-fingerprint", "-sha1"],
                                 check=True, capture_output=True, text=True).stdout.split("=", 1)[1].strip()
    assert base64.urlsafe_b64decode(header["x5t"] + "==") == bytes.fromhex(fingerprint.replace(":", ""))
    assert header["alg"] == "RS256"
    assert claims["aud"] == f"{login.url}{TOKEN_PATH}" and claims["iss"] == claims["sub"] == "app-id"
    (tmp_path / "input").write_bytes(assertion.rsplit(".", 1)[0].encode())
    (tmp_path / "sig").write_bytes(signature)
    verify = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pki / "rsa.pub"), "-signature",
                             str(tmp_path / "sig"), str(tmp_path / "input")], check=False, capture_output=True,
                            text=True)
    assert verify.returncode == 0 and "Verified OK" in verify.stdout


def test_workload_identity_rereads_the_file(login, pki, tmp_path):
    login.routes[("POST", TOKEN_PATH)] = entra_ok()
    token_file = tmp_path / "federated"
    env = {"AZURE_AUTHORITY_HOST": login.url, "SSL_CERT_FILE": str(pki / "ca.crt"),
           "AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
    for value in ("first.jwt", "second.jwt"):
        token_file.write_text(value + "\n")
        AzureAuth(env).token(TENANT, "wi-client")
        assert login.requests[-1].form["client_assertion"] == value


def test_app_service_managed_identity_with_client_id(fake):
    fake.routes[("GET", "/msi/token")] = lambda r: (
        json_reply({"access_token": FAKE_TOKEN, "expires_on": str(int(time.time()) + 3600), "resource": RESOURCE,
                    "token_type": "Bearer"}) if r.headers.get("x-identity-header") == "id-header-secret"
        else json_reply({"error": "unauthorized"}, 401))
    env = {"IDENTITY_ENDPOINT": fake.url + "/msi/token", "IDENTITY_HEADER": "id-header-secret"}
    token, expires = AzureAuth(env).token("", "user-assigned-id")
    assert token == FAKE_TOKEN and 3500 < expires - time.time() <= 3600
    assert fake.requests[-1].query == {"api-version": "2019-08-01", "resource": RESOURCE,
                                       "client_id": "user-assigned-id"}


def test_imds_retries_429_then_succeeds(fake):
    answers = [json_reply({"error": "throttled"}, 429), json_reply({
        "access_token": FAKE_TOKEN, "expires_in": "86399", "expires_on": str(int(time.time()) + 86399)})]
    fake.routes[("GET", IMDS_PATH)] = lambda r: answers.pop(0) if r.headers.get("metadata") == "true" else None
    token, _ = AzureAuth({"AZURE_POD_IDENTITY_AUTHORITY_HOST": fake.url}).token("", "")
    assert token == FAKE_TOKEN and len(fake.requests) == 2
    assert fake.requests[0].query == {"api-version": "2018-02-01", "resource": RESOURCE}


def test_imds_identity_not_found_is_not_retried(fake):
    fake.routes[("GET", IMDS_PATH)] = lambda r: json_reply(
        {"error": "invalid_request", "error_description": "Identity not found"}, 400)
    with pytest.raises(TokenError, match=r"managed identity \(IMDS\) .*HTTP 400: invalid_request: Identity not found$"):
        AzureAuth({"AZURE_POD_IDENTITY_AUTHORITY_HOST": fake.url}).token("", "missing-id")
    assert len(fake.requests) == 1 and fake.requests[0].query["client_id"] == "missing-id"


def test_endpoint_down_names_the_missing_credential():
    with pytest.raises(TokenError) as info:
        AzureAuth({"AZURE_POD_IDENTITY_AUTHORITY_HOST": closed_port_url()}).token("", "")
    assert str(info.value).endswith("connection refused")
    assert str(info.value).startswith("failed to acquire Azure Entra ID token: managed identity (IMDS) (GET http://")
    assert "AZURE_CLIENT_SECRET" in format_error(info.value)


def test_endpoint_slow(login, pki):
    login.routes[("POST", TOKEN_PATH)] = entra_ok()
    login.delay = 1.5
    provider = AzureAuth(sp_env(login, pki))
    provider.token_timeout = 0.3
    with pytest.raises(TokenError, match=r"client secret token request \(POST .*\): timed out after 0\.[3-9]s$"):
        provider.token(TENANT, "app-id")


def test_malformed_json(login, pki):
    login.routes[("POST", TOKEN_PATH)] = lambda r: text_reply("<html>gateway</html>")
    with pytest.raises(TokenError, match="malformed JSON in response"):
        AzureAuth(sp_env(login, pki)).token(TENANT, "app-id")
    login.routes[("POST", TOKEN_PATH)] = lambda r: json_reply({"token_type": "Bearer"})
    with pytest.raises(TokenError, match="response has no 'access_token'"):
        AzureAuth(sp_env(login, pki)).token(TENANT, "app-id")


def test_plain_http_authority_is_refused_for_remote_hosts():
    with pytest.raises(TokenError, match="refusing to send credentials over plain HTTP"):
        AzureAuth({"AZURE_AUTHORITY_HOST": "http://login.example.com", "AZURE_CLIENT_SECRET": "s"}).token(TENANT, "c")


def test_short_lived_token_warns(login, pki):
    _warned.clear()
    login.routes[("POST", TOKEN_PATH)] = entra_ok(expires_in=120)
    buf = io.StringIO()
    provider = AzureAuth(sp_env(login, pki))
    provider.out = Output(stderr=buf)
    params = ConnParams(host="h", user="u", auth_method="azure", azure_tenant_id=TENANT, azure_client_id="app-id")
    assert provider.password(params, "d") == FAKE_TOKEN
    assert "WARNING: Azure Entra ID token expires in 1m" in buf.getvalue()
    assert FAKE_TOKEN not in buf.getvalue()


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pg(pki):
    cluster = start_tls_cluster(pki)
    create_login(cluster, "app@contoso", FAKE_TOKEN)
    yield cluster
    cluster.stop()


def test_service_principal_token_reaches_postgres(tls_pg, login, pki):
    login.routes[("POST", TOKEN_PATH)] = entra_ok()
    params = ConnParams(host="localhost", port=tls_pg.port, user="app@contoso", database="postgres",
                        auth_method="azure", azure_tenant_id=TENANT, azure_client_id="app-id",
                        sslrootcert=str(pki / "ca.crt"))
    conn = open_connection(params, environ=sp_env(login, pki))
    try:
        assert whoami(conn) == ("app@contoso", True)
    finally:
        conn.close()


def test_cli_deploy_with_user_assigned_managed_identity(tls_pg, pki, fake, monkeypatch, capsys, tmp_path):
    fake.routes[("GET", "/msi/token")] = lambda r: json_reply(
        {"access_token": FAKE_TOKEN, "expires_on": str(int(time.time()) + 3600)})
    for name in ("AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                 "AZURE_CLIENT_CERTIFICATE_PATH", "PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake.url + "/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "hdr")
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    code, out, err = run_cli(["deploy", str(project), "-d", "postgres", "--host", "localhost", "--port",
                              str(tls_pg.port), "-U", "app@contoso", "--azure", "--azure-client-id", "mi-client-1",
                              "--sslrootcert", str(pki / "ca.crt"), "--verbose"], capsys)
    assert code == 0, err
    assert "auth azure" in err and "sslmode verify-full" in err  # the verbose connection line
    assert FAKE_TOKEN not in out + err and "QUJDQUJD" not in out + err
    assert {r.query.get("client_id") for r in fake.requests} == {"mi-client-1"}  # the flag reaches the endpoint
    assert len(fake.requests) >= 1
