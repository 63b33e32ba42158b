"""Every token endpoint of every provider: a timeout or an error body becomes one line naming both.

One matrix instead of a hand-written test per endpoint: each case sets up the environment that
routes one provider's flow to a local fake, then the fake answers 403 with a JSON body, or too
late. The error must be a ConnectionFailed (exit 11) whose single line names the provider and
the step, carries the body's message, and leaks no secret that was sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgmilib.conn.auth.aws import AwsIamAuth
from pgmilib.conn.auth.azure import AzureAuth
from pgmilib.conn.auth.google import LOGIN_SCOPE, GoogleAuth, parse_instance
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.params import ConnParams
from pgmilib.errors import Exit, exit_code
from tests.cloudfakes import FakeCloud, json_reply, text_reply

SECRET = "matrix-secret-value-42"  # each case sends its own variant: redaction must not depend on test order


@dataclass
class Case:
    provider: str
    step: str  # expected in the message
    https: bool
    failing: tuple[str, str]  # (method, path) of the endpoint under test
    env: Callable[[str, Path, str], dict[str, str]]  # (fake URL, tmp dir, the case's secret)
    call: Callable[[object], object]
    ok: tuple[tuple[tuple[str, str], object], ...] = ()  # routes that must succeed before it
    sends_secret: bool = True  # False: nothing secret is sent (metadata calls, a JWT we sign)


def _imds_ok():
    return ((("PUT", "/latest/api/token"), text_reply("t")),
            (("GET", "/latest/meta-data/iam/security-credentials/"), text_reply("role")))


def _aws(p):
    return p.password(ConnParams(host="h", user="u", auth_method="aws", aws_region="eu-west-1"), "d")


def _azure(p):
    return p.token("contoso.com", "cid")


def _google(p):
    return p.access_token(LOGIN_SCOPE)


def _sa(url: str, tmp: Path, secret: str = "") -> dict[str, str]:
    key = (tmp / "pki" / "rsa.pem").read_text()
    (tmp / "sa.json").write_text(json.dumps({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
                                             "private_key": key, "token_uri": url + "/token"}))
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp / "sa.json")}


def _user(url: str, tmp: Path, secret: str) -> dict[str, str]:
    (tmp / "user.json").write_text(json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": secret,
                                               "refresh_token": "r", "token_uri": url + "/token"}))
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp / "user.json")}


def _web_identity(url: str, tmp: Path, secret: str) -> dict[str, str]:
    (tmp / "jwt").write_text(secret)
    return {"AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp / "jwt"), "AWS_ROLE_ARN": "arn", "AWS_ENDPOINT_URL_STS": url}


NO_AWS = {"AWS_EC2_METADATA_DISABLED": "true"}

CASES = {
    "aws-imds-token": Case("AWS IAM", "EC2 instance metadata (PUT", False, ("PUT", "/latest/api/token"),
                           lambda u, t, s: {"AWS_EC2_METADATA_SERVICE_ENDPOINT": u}, _aws, sends_secret=False),
    "aws-imds-creds": Case("AWS IAM", "EC2 instance metadata (GET", False,
                           ("GET", "/latest/meta-data/iam/security-credentials/role"),
                           lambda u, t, s: {"AWS_EC2_METADATA_SERVICE_ENDPOINT": u}, _aws, _imds_ok(), False),
    "aws-ecs": Case("AWS IAM", "ECS container credentials (GET", False, ("GET", "/creds"),
                    lambda u, t, s: {**NO_AWS, "AWS_CONTAINER_CREDENTIALS_FULL_URI": u + "/creds",
                                     "AWS_CONTAINER_AUTHORIZATION_TOKEN": s}, _aws),
    "aws-sts": Case("AWS IAM", "STS AssumeRoleWithWebIdentity (POST", True, ("POST", "/"),
                    lambda u, t, s: {**NO_AWS, **_web_identity(u, t, s)}, _aws),
    "azure-secret": Case("Azure Entra ID", "client secret token request (POST", True,
                         ("POST", "/contoso.com/oauth2/v2.0/token"),
                         lambda u, t, s: {"AZURE_AUTHORITY_HOST": u, "AZURE_CLIENT_SECRET": s}, _azure),
    "azure-app-service": Case("Azure Entra ID", "managed identity (App Service) (GET", False, ("GET", "/msi"),
                              lambda u, t, s: {"IDENTITY_ENDPOINT": u + "/msi", "IDENTITY_HEADER": s}, _azure),
    "azure-imds": Case("Azure Entra ID", "managed identity (IMDS) (GET", False,
                       ("GET", "/metadata/identity/oauth2/token"),
                       lambda u, t, s: {"AZURE_POD_IDENTITY_AUTHORITY_HOST": u}, _azure, sends_secret=False),
    "google-service-account": Case("Google Cloud SQL IAM", "service account token exchange (POST", True,
                                   ("POST", "/token"), _sa, _google, sends_secret=False),
    "google-refresh": Case("Google Cloud SQL IAM", "refresh token exchange (POST", True, ("POST", "/token"),
                           _user, _google),
    "google-metadata": Case("Google Cloud SQL IAM", "metadata server (GET", False,
                            ("GET", "/computeMetadata/v1/instance/service-accounts/default/token"),
                            lambda u, t, s: {"GCE_METADATA_HOST": u.removeprefix("http://")}, _google,
                            sends_secret=False),
    "google-admin-api": Case("Google Cloud SQL IAM", "Cloud SQL Admin API connectSettings (GET", True,
                             ("GET", "/sql/v1beta4/projects/p/instances/i/connectSettings"),
                             lambda u, t, s: {**_sa(u, t), "CLOUDSDK_API_ENDPOINT_OVERRIDES_SQLADMIN": u},
                             lambda p: p.resolve(parse_instance("p:r:i")),
                             ((("POST", "/token"), lambda s: json_reply({"access_token": s})),)),  # the bearer token
}
PROVIDER = {"AWS IAM": AwsIamAuth, "Azure Entra ID": AzureAuth, "Google Cloud SQL IAM": GoogleAuth}


def _run(case: Case, secret: str, pki: Path, tmp_path: Path, reply, delay: float) -> TokenError:
    (tmp_path / "pki").symlink_to(pki)
    fake = FakeCloud(tls_dir=pki if case.https else None)
    try:
        for route, answer in case.ok:
            reply_ok = answer(secret) if callable(answer) else answer
            fake.routes[route] = lambda r, a=reply_ok: a
        fake.routes[case.failing] = lambda r: reply
        env = {"HOME": str(tmp_path), "SSL_CERT_FILE": str(pki / "ca.crt"), **case.env(fake.url, tmp_path, secret)}
        provider = PROVIDER[case.provider](env)
        provider.metadata_timeout = provider.token_timeout = 0.3
        if delay:
            # only the endpoint under test is slow: earlier steps answer at once
            slow = fake.routes[case.failing]

            def late(r, slow=slow):
                import time

                time.sleep(delay)
                return slow(r)

            fake.routes[case.failing] = late
        with pytest.raises(TokenError) as info:
            case.call(provider)
        return info.value
    finally:
        fake.close()


@pytest.mark.parametrize("name", CASES)
def test_error_body(name, pki, tmp_path):
    case, secret = CASES[name], f"{SECRET}-{name}"
    denied = {"error": "access_denied", "error_description": f"nope ({secret})"}  # an endpoint echoing a secret
    error = _run(case, secret, pki, tmp_path, json_reply(denied, 403), 0)
    text = str(error)
    assert case.provider in text and case.step in text, text
    assert "HTTP 403: access_denied: nope (" in text and "\n" not in text
    if case.sends_secret:
        assert secret not in text and "nope ([redacted])" in text
    assert exit_code(error) == Exit.CONNECTION


@pytest.mark.parametrize("name", CASES)
def test_timeout(name, pki, tmp_path):
    case = CASES[name]
    error = _run(case, f"{SECRET}-{name}", pki, tmp_path, json_reply({}), 1.0)
    assert case.provider in str(error) and case.step in str(error)
    assert re.search(r"timed out after 0\.[3-9]s$", str(error)), str(error)  # measured, not the limit
