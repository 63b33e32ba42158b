"""Cloud sign-in rules, each pinned by a test that fails when the rule is broken (docs/RELIABILITY.md).

SigV4 signs the instant, not the wall clock of some zone; JWT times are seconds since the epoch;
the Azure certificate assertion lives 10 minutes; only loopback and link-local hosts may carry
credentials over plain HTTP; an authority host without a scheme means https; a Cloud SQL server
certificate without a CN is not the instance's.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pgmilib.conn.auth.azure import AzureAuth
from pgmilib.conn.auth.google import LOGIN_SCOPE, GoogleAuth, instance_tls, parse_instance
from pgmilib.conn.auth.http import is_local_host, is_loopback_host
from pgmilib.conn.auth.sigv4 import Credentials, canonical_query, rds_auth_token, sign_post
from tests.cloudfakes import json_reply

UTC = dt.timezone.utc
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
INSTANT = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def _claims(jwt: str) -> dict:
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


# ---- SigV4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [dt.timedelta(hours=2), dt.timedelta(hours=-9, minutes=-30),
                                    dt.timedelta(hours=14)])
def test_sigv4_with_a_non_utc_aware_datetime_signs_the_same_instant(offset):
    local = INSTANT.astimezone(dt.timezone(offset))
    assert local.strftime("%Y%m%d%H") != INSTANT.strftime("%Y%m%d%H")  # the zone's wall clock differs
    token = rds_auth_token("db.example.internal", 6543, "eu-west-1", "iam_user", CREDS, local)
    assert token == rds_auth_token("db.example.internal", 6543, "eu-west-1", "iam_user", CREDS, INSTANT)
    assert "X-Amz-Date=20240102T030405Z" in token and "%2F20240102%2Feu-west-1%2Frds-db%2F" in token
    assert token.endswith("&X-Amz-Signature=9530021bea28f4f9ec52ac64439b3b71af33fe1e38e2d8e969a7380421c10474")
    body = b"Action=AssumeRole&Version=2011-06-15"
    headers = sign_post("https://sts.eu-west-1.amazonaws.com/", body, "eu-west-1", "sts", CREDS, local)
    assert headers == sign_post("https://sts.eu-west-1.amazonaws.com/", body, "eu-west-1", "sts", CREDS, INSTANT)
    assert headers["X-Amz-Date"] == "20240102T030405Z" and "/20240102/eu-west-1/sts/" in headers["Authorization"]


def test_sigv4_default_clock_is_now_in_utc():
    before = dt.datetime.now(UTC).replace(microsecond=0)
    token = rds_auth_token("h", 5432, "us-east-1", "u", CREDS)
    stamp = dt.datetime.strptime(token.split("X-Amz-Date=")[1][:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before - dt.timedelta(seconds=1) <= stamp <= dt.datetime.now(UTC) + dt.timedelta(seconds=1)
    headers = sign_post("https://sts.amazonaws.com/", b"", "us-east-1", "sts", CREDS)
    stamp = dt.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before - dt.timedelta(seconds=1) <= stamp <= dt.datetime.now(UTC) + dt.timedelta(seconds=1)


def test_sigv4_known_answers_and_encoding():
    # AWS SigV4 test suite, case "post-x-www-form-urlencoded"
    suite = sign_post("https://example.amazonaws.com/", b"Param1=value1", "us-east-1", "service", CREDS,
                      dt.datetime(2015, 8, 30, 12, 36, tzinfo=UTC))
    assert suite == {
        "Content-Type": "application/x-www-form-urlencoded", "X-Amz-Date": "20150830T123600Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                         "SignedHeaders=content-type;host;x-amz-date, "
                         "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"}
    assert canonical_query({"b": "x y", "a": "~-_.", "A": "/+=@"}) == "A=%2F%2B%3D%40&a=~-_.&b=x%20y"
    with_token = rds_auth_token("h", 1, "r", "u", CREDS._replace(session_token="t/+="), INSTANT)
    assert "&X-Amz-Security-Token=t%2F%2B%3D&" in with_token
    assert "X-Amz-Security-Token" not in rds_auth_token("h", 1, "r", "u", CREDS, INSTANT)
    signed = sign_post("https://sts.amazonaws.com/a b/?x=1&y=", b"", "r", "sts", CREDS._replace(session_token="t"),
                       INSTANT)
    assert signed["X-Amz-Security-Token"] == "t"
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in signed["Authorization"]
    other_path = sign_post("https://sts.amazonaws.com/a%20c/?x=1&y=", b"", "r", "sts",
                           CREDS._replace(session_token="t"), INSTANT)
    assert other_path["Authorization"] != signed["Authorization"]


# ---- plain HTTP only to local hosts -------------------------------------------------------------


@pytest.mark.parametrize(("host", "local"), [
    ("localhost", True), ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("169.254.169.254", True), ("169.254.170.2", True), ("fe80::1", True), ("fd00:ec2::254", True),
    ("[fd00:ec2::23]", True),
    ("localhost.evil.example", False), ("evil-localhost", False), ("localhost.", False), ("127.0.0.1.nip.io", False),
    ("10.0.0.1", False), ("192.168.1.1", False), ("8.8.8.8", False), ("fd00:ec2::255", False), ("example.com", False),
    ("", False), ("X127.0.0.1", False), ("[localhost]", False),
])
def test_is_local_host(host, local):
    assert is_local_host(host) is local


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LocalHost", True), ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
    ("[::1]", True), ("::ffff:127.0.0.1", True), ("127.0.0.1%lo", True), ("127.0.0.1%a%b", True),
    ("169.254.169.254", False), ("fe80::1", False), ("10.0.0.1", False), ("localhost.evil.example", False),
    ("::ffff:10.0.0.1", False), ("", False),
])
def test_is_loopback_host(host, loopback):
    # by address, the zone id after the first % ignored; by name only exactly "localhost"
    assert is_loopback_host(host) is loopback
    assert is_local_host(host) is (loopback or host in ("169.254.169.254", "fe80::1"))


# ---- Azure ---------------------------------------------------------------------------------------

TENANT = "contoso.onmicrosoft.com"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"


@pytest.mark.parametrize(("authority", "url"), [
    ("login.example.net", "https://login.example.net/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ("login.example.net/", "https://login.example.net/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ("https://login.example.net//", "https://login.example.net/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ("http://127.0.0.1:9", "http://127.0.0.1:9/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ("https://hostX/", "https://hostX/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ("", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"),
])
def test_authority_host_without_a_scheme_gets_https(authority, url):
    env = {"AZURE_AUTHORITY_HOST": authority} if authority else {}
    assert AzureAuth(env)._token_url(TENANT) == url


def test_authority_host_without_a_scheme_is_reached_over_https(https_fake, pki):
    https_fake.routes[("POST", TOKEN_PATH)] = lambda r: json_reply({"access_token": "az-token-1", "expires_in": 3599})
    authority = https_fake.url.split("://", 1)[1]  # 127.0.0.1:PORT, no scheme
    env = {"AZURE_AUTHORITY_HOST": authority, "SSL_CERT_FILE": str(pki / "ca.crt"),
           "AZURE_CLIENT_SECRET": "sp-secret-value"}
    assert AzureAuth(env).token(TENANT, "app-id")[0] == "az-token-1"
    assert https_fake.requests[-1].path == TOKEN_PATH


def test_azure_certificate_assertion_times(https_fake, pki, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-key", str(pki / "rsa.pem"), "-out", str(tmp_path / "sp.crt"),
                    "-days", "1", "-subj", "/CN=pgmi-sp"], check=True, capture_output=True)
    bundle = tmp_path / "sp.pem"
    bundle.write_text((tmp_path / "sp.crt").read_text() + (pki / "rsa.pem").read_text())
    https_fake.routes[("POST", TOKEN_PATH)] = lambda r: json_reply({"access_token": "az-token-2", "expires_in": 3599})
    env = {"AZURE_AUTHORITY_HOST": https_fake.url, "SSL_CERT_FILE": str(pki / "ca.crt"),
           "AZURE_CLIENT_CERTIFICATE_PATH": str(bundle)}
    before = time.time()
    assert AzureAuth(env).token(TENANT, "app-id")[0] == "az-token-2"
    claims = _claims(https_fake.requests[-1].form["client_assertion"])
    assert isinstance(claims["iat"], int) and before - 2 <= claims["iat"] <= time.time() + 1  # seconds, not ms
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["aud"] == https_fake.url + TOKEN_PATH and claims["iss"] == claims["sub"] == "app-id"
    assert len(claims["jti"]) == 36


# ---- Google --------------------------------------------------------------------------------------


def test_google_service_account_jwt_iat_is_in_seconds(https_fake, pki, tmp_path):
    https_fake.routes[("POST", "/token")] = lambda r: json_reply({"access_token": "ya29.x", "expires_in": 3599})
    info = {"type": "service_account", "private_key_id": "kid", "private_key": (pki / "rsa.pem").read_text(),
            "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": https_fake.url + "/token"}
    (tmp_path / "sa.json").write_text(json.dumps(info))
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "sa.json"), "SSL_CERT_FILE": str(pki / "ca.crt"),
           "HOME": str(tmp_path)}
    before = time.time()
    assert GoogleAuth(env).access_token(LOGIN_SCOPE)[0] == "ya29.x"
    claims = _claims(https_fake.requests[-1].form["assertion"])
    assert isinstance(claims["iat"], int) and before - 2 <= claims["iat"] <= time.time() + 1
    assert claims["exp"] - claims["iat"] == 3600


@pytest.fixture(scope="module")
def no_cn_pki():
    """A CA; server certificates with the instance's CN and no SAN (as Cloud SQL's), with neither,
    and with a SAN but no CN."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
    d = Path(tempfile.mkdtemp(prefix="pgmi-nocn-", dir=parent))

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    try:
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pgmi no-cn test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, subject, san in (("nocn", "/O=myproj:mydb/OU=myproj:mydb", "DNS:localhost,IP:127.0.0.1"),
                                   ("good", "/CN=myproj:mydb", ""), ("bare", "/O=myproj:mydb", "")):
            # Cloud SQL instance certificates name the instance in the CN only (no SAN)
            (d / f"{name}.ext").write_text((f"subjectAltName={san}\n" if san else "") + "basicConstraints=CA:FALSE\n")
            ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                 f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
            ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _handshake(pki: Path, cert: str, client: ssl.SSLContext) -> None:
    """One real TLS handshake on loopback: a server presenting `cert`, the client context given."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                try:
                    with server_ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (ssl.SSLError, OSError):
                    pass
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            client.wrap_socket(sock, server_hostname="127.0.0.1").close()
    finally:
        listener.close()
        thread.join(10)


def test_cloud_sql_certificate_without_a_cn_is_refused(no_cn_pki):
    name = parse_instance("myproj:europe-west1:mydb")
    ca = (no_cn_pki / "ca.crt").read_text()
    # internal-CA modes check the CN, whatever DNS name the API reports; so does any mode without one
    for mode, dns in (("GOOGLE_MANAGED_INTERNAL_CA", ""), ("", "db.example"), ("CA_MODE_UNSPECIFIED", "db.example"),
                      ("GOOGLE_MANAGED_INTERNAL_CA", "db.example"), ("GOOGLE_MANAGED_CAS_CA", "")):
        ctx = instance_tls(ca, name, mode, dns)
        assert ctx.expected_cn == "myproj:mydb" and ctx.dns_name == "" and ctx.check_hostname is False
        _handshake(no_cn_pki, "good", ctx)  # the CN matches; no SAN needed
        for cert in ("nocn", "bare"):
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                _handshake(no_cn_pki, cert, instance_tls(ca, name, mode, dns))
            assert "server certificate CN [] is not 'myproj:mydb'" in str(info.value)
            assert info.value.verify_message == "the server certificate is not for instance 'myproj:mydb'"
            assert info.value.reason == "CERTIFICATE_VERIFY_FAILED"
    other = parse_instance("myproj:europe-west1:other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(no_cn_pki, "good", instance_tls(ca, other, "GOOGLE_MANAGED_INTERNAL_CA", ""))


def test_cloud_sql_cas_instance_is_checked_by_dns_name(no_cn_pki):
    name = parse_instance("myproj:europe-west1:mydb")
    ca = (no_cn_pki / "ca.crt").read_text()
    ctx = instance_tls(ca, name, "GOOGLE_MANAGED_CAS_CA", "localhost.")
    assert instance_tls(ca, name, "GOOGLE_MANAGED_CAS_CA", "dbX.").dns_name == "dbX"
    assert ctx.dns_name == "localhost" and ctx.expected_cn == "" and ctx.check_hostname is True
    _handshake(no_cn_pki, "nocn", ctx)  # SAN DNS:localhost: no CN needed
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(no_cn_pki, "nocn", instance_tls(ca, name, "GOOGLE_MANAGED_CAS_CA", "db.other.example"))


def test_sigv4_signs_the_query_and_normalizes_an_empty_path():
    def auth(url: str) -> str:
        return sign_post(url, b"", "r", "sts", CREDS, INSTANT)["Authorization"]

    assert auth("https://sts.amazonaws.com") == auth("https://sts.amazonaws.com/")
    assert auth("https://sts.amazonaws.com/?x=1") != auth("https://sts.amazonaws.com/?x=2")
    assert auth("https://sts.amazonaws.com/?x=1&y=") != auth("https://sts.amazonaws.com/?x=1")
    assert auth("https://sts.amazonaws.com/?b=2&a=1") == auth("https://sts.amazonaws.com/?a=1&b=2")


def test_sigv4_ignores_the_local_time_zone(monkeypatch):
    token = rds_auth_token("db.example.internal", 6543, "eu-west-1", "iam_user", CREDS, INSTANT)
    headers = sign_post("https://sts.amazonaws.com/", b"", "r", "sts", CREDS, INSTANT)
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a wall clock in another day part
    time.tzset()
    try:
        assert rds_auth_token("db.example.internal", 6543, "eu-west-1", "iam_user", CREDS, INSTANT) == token
        assert sign_post("https://sts.amazonaws.com/", b"", "r", "sts", CREDS, INSTANT) == headers
    finally:
        monkeypatch.undo()
        time.tzset()


# ---- RS256 and the JWT assertions ---------------------------------------------------------------


def test_jwt_is_compact_base64url_json(pki):
    import hashlib

    from pgmilib.conn.auth.rsa import b64url, jwt_rs256, load_private_key

    # unpadded base64url: only "=" is stripped (an "X" at the end is data)
    assert b64url(b"\x00\x00\x17") == "AAAX" and b64url(b"\xff") == "_w" and b64url(b"\xfb\xef") == "--8"
    key = load_private_key((pki / "rsa.pem").read_text())
    token = jwt_rs256({"kid": "k 1"}, {"iss": "a@b", "exp": 5}, key)
    head, body, signature = token.split(".")
    # compact JSON (no whitespace), the fixed alg/typ first: the exact bytes that are signed
    assert head == b64url(b'{"alg":"RS256","typ":"JWT","kid":"k 1"}') and body == b64url(b'{"iss":"a@b","exp":5}')
    s = int.from_bytes(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), "big")
    digest = pow(s, key.e, key.n).to_bytes(key.size, "big")[-32:]
    assert digest == hashlib.sha256(f"{head}.{body}".encode()).digest()


def test_rs256_padding_and_key_size_boundary(pki):
    import hashlib

    from pgmilib.conn.auth.rsa import SHA256_DIGEST_INFO, BadKey, RsaKey, load_private_key, sign_rs256

    key = load_private_key((pki / "rsa.pem").read_text())
    signature = sign_rs256(key, b"data")
    assert len(signature) == key.size
    em = pow(int.from_bytes(signature, "big"), key.e, key.n).to_bytes(key.size, "big")
    t = SHA256_DIGEST_INFO + hashlib.sha256(b"data").digest()
    assert em == b"\x00\x01" + b"\xff" * (key.size - len(t) - 3) + b"\x00" + t
    # the smallest modulus that fits the padding is len(t) + 11 bytes; one byte less is refused
    for size, ok in ((len(t) + 11, True), (len(t) + 10, False)):
        n = (1 << (8 * size - 1)) + 1
        tiny = RsaKey(n=n, e=3, d=1, p=n, q=1, dp=1, dq=1, qinv=0)
        if ok:
            with pytest.raises(BadKey) as info:  # got past the size check, then the fault check refuses
                sign_rs256(tiny, b"data")
            assert str(info.value) == "RSA key parameters are inconsistent"
        else:
            with pytest.raises(BadKey) as info:
                sign_rs256(tiny, b"data")
            assert str(info.value) == "RSA key too small for SHA-256"


def _google_env(https_fake, pki, tmp_path, **info) -> dict[str, str]:
    https_fake.routes[("POST", "/token")] = lambda r: json_reply({"access_token": "ya29.x", "expires_in": 3599})
    data = {"type": "service_account", "private_key_id": "kid-9", "private_key": (pki / "rsa.pem").read_text(),
            "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": https_fake.url + "/token", **info}
    (tmp_path / "sa.json").write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "sa.json"), "SSL_CERT_FILE": str(pki / "ca.crt"),
            "HOME": str(tmp_path)}


def test_google_service_account_assertion_shape_and_secrets(https_fake, pki, tmp_path):
    from pgmilib.redact import known_secrets

    env = _google_env(https_fake, pki, tmp_path)
    GoogleAuth(env).access_token(LOGIN_SCOPE)
    form = https_fake.requests[-1].form
    assert set(form) == {"grant_type", "assertion"}
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    head = json.loads(base64.urlsafe_b64decode(form["assertion"].split(".")[0] + "=="))
    assert head == {"alg": "RS256", "typ": "JWT", "kid": "kid-9"}
    claims = _claims(form["assertion"])
    assert set(claims) == {"iss", "scope", "aud", "iat", "exp"}
    assert claims["iss"] == "sa@p.iam.gserviceaccount.com" and claims["scope"] == LOGIN_SCOPE
    assert claims["aud"] == https_fake.url + "/token"
    secrets = known_secrets()
    assert form["assertion"] in secrets and (pki / "rsa.pem").read_text() in secrets
    env = _google_env(https_fake, pki, tmp_path, private_key_id=None)
    GoogleAuth(env).access_token(LOGIN_SCOPE)
    head = json.loads(base64.urlsafe_b64decode(https_fake.requests[-1].form["assertion"].split(".")[0] + "=="))
    assert head == {"alg": "RS256", "typ": "JWT"}


def test_google_token_exchange_failure_names_the_step(https_fake, pki, tmp_path):
    from pgmilib.conn.auth.http import TokenError

    env = _google_env(https_fake, pki, tmp_path)
    https_fake.routes[("POST", "/token")] = lambda r: json_reply({"error": "invalid_grant"}, 400)
    with pytest.raises(TokenError) as info:
        GoogleAuth(env).access_token(LOGIN_SCOPE)
    assert "service account token exchange" in str(info.value)


@pytest.mark.parametrize(("info", "message"), [
    ({"client_email": None}, "lacks client_email or private_key"),
    ({"client_email": ""}, "lacks client_email or private_key"),
    ({"client_email": 7}, "lacks client_email or private_key"),
    ({"private_key": None}, "lacks client_email or private_key"),
    ({"private_key": 7}, "lacks client_email or private_key"),
    ({"private_key": "not a key"}, ": private_key: "),
])
def test_google_service_account_file_errors(https_fake, pki, tmp_path, info, message):
    from pgmilib.errors import ConfigError

    env = _google_env(https_fake, pki, tmp_path, **info)
    with pytest.raises(ConfigError) as caught:
        GoogleAuth(env).access_token(LOGIN_SCOPE)
    assert str(caught.value).startswith(f"invalid configuration: Google service account file "
                                        f"{str(tmp_path / 'sa.json')!r}") and message in str(caught.value)
    assert https_fake.requests == []


def _azure_bundle(pki, tmp_path) -> Path:
    subprocess.run(["openssl", "req", "-x509", "-key", str(pki / "rsa.pem"), "-out", str(tmp_path / "sp.crt"),
                    "-days", "1", "-subj", "/CN=pgmi-sp"], check=True, capture_output=True)
    bundle = tmp_path / "sp.pem"
    bundle.write_text((tmp_path / "sp.crt").read_text() + (pki / "rsa.pem").read_text())
    return bundle


def test_azure_certificate_assertion_header_and_secret(https_fake, pki, tmp_path):
    import hashlib

    from pgmilib.conn.auth.rsa import pem_blocks
    from pgmilib.redact import known_secrets

    bundle = _azure_bundle(pki, tmp_path)
    https_fake.routes[("POST", TOKEN_PATH)] = lambda r: json_reply({"access_token": "az-token-3", "expires_in": 3599})
    env = {"AZURE_AUTHORITY_HOST": https_fake.url, "SSL_CERT_FILE": str(pki / "ca.crt"),
           "AZURE_CLIENT_CERTIFICATE_PATH": str(bundle)}
    AzureAuth(env).token(TENANT, "app-id")
    assertion = https_fake.requests[-1].form["client_assertion"]
    der = next(b for label, b in pem_blocks((tmp_path / "sp.crt").read_text()) if label == "CERTIFICATE")
    head = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    assert head == {"alg": "RS256", "typ": "JWT", "x5t": b64(hashlib.sha1(der).digest()),
                    "x5t#S256": b64(hashlib.sha256(der).digest())}
    assert assertion in known_secrets()


@pytest.mark.parametrize("case", ["missing", "password", "no-certificate", "bad-key", "latin1"])
def test_azure_certificate_file_errors(https_fake, pki, tmp_path, case):
    from pgmilib.errors import ConfigError

    bundle = _azure_bundle(pki, tmp_path)
    env = {"AZURE_AUTHORITY_HOST": https_fake.url, "SSL_CERT_FILE": str(pki / "ca.crt"),
           "AZURE_CLIENT_CERTIFICATE_PATH": str(bundle)}
    expected = {
        "missing": f"cannot read $AZURE_CLIENT_CERTIFICATE_PATH {str(tmp_path / 'nope.pem')!r}: ",
        "password": "password-protected Azure client certificates are not supported; export the key unencrypted "
                    "(PKCS#8) into a 0600 file",
        "no-certificate": f"$AZURE_CLIENT_CERTIFICATE_PATH {str(bundle)!r}: no 'BEGIN CERTIFICATE' block",
        "bad-key": f"$AZURE_CLIENT_CERTIFICATE_PATH {str(bundle)!r}: ",
        "latin1": f"cannot read $AZURE_CLIENT_CERTIFICATE_PATH {str(bundle)!r}: ",
    }[case]
    if case == "missing":
        env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(tmp_path / "nope.pem")
    elif case == "password":
        env["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = "pw"
    elif case == "no-certificate":
        bundle.write_text((pki / "rsa.pem").read_text())
    elif case == "bad-key":
        bundle.write_text((tmp_path / "sp.crt").read_text())
    else:
        bundle.write_bytes(b"\xe9" + bundle.read_bytes())
    with pytest.raises(ConfigError) as info:
        AzureAuth(env).token(TENANT, "app-id")
    assert str(info.value).startswith("invalid configuration: " + expected), str(info.value)
    assert https_fake.requests == []
