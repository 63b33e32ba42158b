"""The shared stdlib HTTP helper of the cloud providers, against real local servers."""

from __future__ import annotations

import pytest

from pgmilib.conn.auth import PROVIDERS, provider_for
from pgmilib.conn.auth.cloud import cloud_tls_default, format_duration
from pgmilib.conn.auth.http import MAX_BODY, CloudHttp, TokenError, error_detail, is_local_host
from pgmilib.conn.params import ConnParams
from pgmilib.errors import Exit, exit_code
from pgmilib.redact import register_secret
from tests.cloudfakes import json_reply, text_reply


def test_registry_has_one_provider_per_method():
    assert set(PROVIDERS) == {"password", "azure", "aws", "google"}
    p = provider_for(ConnParams(auth_method="google"), {"X": "1"})
    assert p.label == "Google Cloud SQL IAM" and p.environ == {"X": "1"}


def test_redirects_are_not_followed(fake):
    fake.routes[("GET", "/token")] = lambda r: (302, {"Location": "http://127.0.0.1:1/steal"}, b"")
    with pytest.raises(TokenError, match=r"^failed to acquire Demo token: step one \(GET http://127\.0\.0\.1:\d+/token\)"
                                         r": HTTP 302 \(redirects are not followed\)$"):
        CloudHttp("Demo", {}).request("step one", "GET", fake.url + "/token")
    assert len(fake.requests) == 1


def test_query_strings_stay_out_of_messages(fake):
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).request("s", "GET", fake.url + "/x?client_secret=abc")
    assert "client_secret" not in str(info.value) and "HTTP 404: no route" in str(info.value)


def test_plain_http_only_for_local_hosts():
    assert is_local_host("127.0.0.1") and is_local_host("169.254.169.254") and is_local_host("[fd00:ec2::254]")
    assert is_local_host("localhost") and not is_local_host("example.com") and not is_local_host("10.0.0.1")
    with pytest.raises(TokenError, match="refusing to send credentials over plain HTTP"):
        CloudHttp("Demo", {}).request("s", "POST", "http://example.com/token", body=b"x")


def test_invalid_url():
    with pytest.raises(TokenError, match="invalid endpoint URL"):
        CloudHttp("Demo", {}).request("s", "GET", "ftp://x/")


def test_headers_and_body_cap(fake):
    fake.routes[("GET", "/full")] = lambda r: text_reply("x" * MAX_BODY)
    response = CloudHttp("Demo", {}).request("s", "GET", fake.url + "/full")
    assert len(response.body) == MAX_BODY
    assert fake.requests[0].headers["user-agent"].startswith("pgmi/")
    fake.routes[("GET", "/big")] = lambda r: text_reply("x" * (MAX_BODY + 100))
    with pytest.raises(TokenError, match=r": the answer is 1,048,676 bytes; more than 1,048,576 is refused unread$"):
        CloudHttp("Demo", {}).request("s", "GET", fake.url + "/big")


def test_error_bodies_become_one_line():
    assert error_detail(b'{"error":"invalid_grant","error_description":"Bad\\nRequest"}') == "invalid_grant: Bad Request"
    assert error_detail(b'{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}') == (
        "PERMISSION_DENIED: denied")
    assert error_detail(b'{"code":"AccessDenied","message":"no"}') == "AccessDenied: no"
    assert error_detail(b"<ErrorResponse><Error><Code>X</Code><Message>m</Message></Error></ErrorResponse>") == "X: m"
    assert error_detail(b"") == ""
    assert error_detail(b"plain " * 200).endswith("…")
    register_secret("tok-SECRET-123")
    assert error_detail(b'{"error":"bad","error_description":"tok-SECRET-123"}') == "bad: [redacted]"


def test_json_errors_are_connection_failures(fake):
    fake.routes[("GET", "/j")] = lambda r: json_reply(["not", "an", "object"])
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).json("s", "GET", fake.url + "/j")
    assert "expected an object" in str(info.value) and exit_code(info.value) == Exit.CONNECTION


def test_bad_ssl_cert_file():
    with pytest.raises(TokenError, match="cannot load \\$SSL_CERT_FILE"):
        CloudHttp("Demo", {"SSL_CERT_FILE": "/nonexistent/ca.pem"}).request("s", "GET", "https://localhost:1/")


def test_cloud_tls_default_and_duration():
    assert cloud_tls_default(ConnParams(sslmode="prefer")).sslmode == "verify-full"
    assert cloud_tls_default(ConnParams(sslmode="")).sslmode == "verify-full"
    assert cloud_tls_default(ConnParams(sslmode="prefer", given={"sslmode"})).sslmode == "prefer"
    assert cloud_tls_default(ConnParams(sslmode="require")).sslmode == "require"
    assert (format_duration(299), format_duration(12), format_duration(3600)) == ("4m59s", "12s", "1h0m0s")


def test_resolution_marks_explicit_host_and_sslmode():
    from pgmilib.cli.app import build_parser
    from pgmilib.cli.deploy import connection_flags
    from pgmilib.conn.resolve import resolve

    def res(*argv: str, env: dict | None = None) -> ConnParams:
        args = build_parser().parse_args(["deploy", "proj", "-d", "db", "--aws", "--aws-region", "r", *argv])
        return resolve(connection_flags(args), {"USER": "u", **(env or {})}, None)

    plain = res()
    assert "host" not in plain.given and cloud_tls_default(plain).sslmode == "verify-full"
    assert "host" in res("--host", "h").given and "host" in res(env={"PGHOST": "h"}).given
    assert cloud_tls_default(res("--sslmode", "prefer")).sslmode == "prefer"  # explicit: kept (and warned about)
    assert cloud_tls_default(res(env={"PGSSLMODE": "require"})).sslmode == "require"
    from_string = res(env={"DATABASE_URL": "postgresql://u@h/db", "PGSSLMODE": "allow"})
    assert from_string.sslmode == "allow" and "sslmode" in from_string.given
    assert cloud_tls_default(res(env={"DATABASE_URL": "postgresql://u@h/db"})).sslmode == "verify-full"


def test_parse_timestamp_reads_every_form_the_providers_answer_with():
    import datetime as dt

    from pgmilib.conn.auth.http import parse_timestamp

    utc = dt.timezone.utc
    want = dt.datetime(2026, 12, 4, 20, 0, 0, tzinfo=utc)
    assert parse_timestamp("2026-12-04T20:00:00Z") == want  # AWS, azd (Z: only 3.11+ reads it alone)
    assert parse_timestamp("2026-12-04T21:00:00+01:00") == want
    assert parse_timestamp("2026-12-04T20:00:00.1234567Z") == want.replace(microsecond=123456)  # 7 digits
    assert parse_timestamp("2026-12-04T20:00:00") == want  # no offset: UTC by default
    local = parse_timestamp("2026-12-04 20:00:00.5", naive_is_utc=False)  # az's expiresOn: local time
    assert local == dt.datetime(2026, 12, 4, 20, 0, 0, 500000).astimezone()
    for bad in (None, 1733342400, "", "  ", "tomorrow", "2026-13-04T20:00:00Z"):
        assert parse_timestamp(bad) is None
