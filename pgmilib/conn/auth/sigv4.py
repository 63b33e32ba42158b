"""AWS Signature Version 4: the RDS IAM auth token (query presign) and header signing for STS.

Pure functions of their inputs (the clock is a parameter) so known-answer vectors
(tests/test_cloud_aws.py) can be checked exactly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from typing import NamedTuple

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RDS_TOKEN_SECONDS = 900  # 15 minutes, fixed by RDS


class Credentials(NamedTuple):
    """AWS credentials; `expiration` is an aware datetime or None (long-term keys)."""

    access_key: str
    secret_key: str
    session_token: str = ""
    expiration: dt.datetime | None = None
    source: str = ""


def _quote(text: str) -> str:
    """RFC 3986 encoding: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((_quote(k), _quote(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _signature(creds: Credentials, now: dt.datetime, region: str, service: str, canonical_request: str) -> str:
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])
    return hmac.new(signing_key(creds.secret_key, date, region, service), to_sign.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def rds_auth_token(host: str, port: int, region: str, user: str, creds: Credentials,
                   now: dt.datetime | None = None) -> str:
    """The `rds-db:connect` presigned URL without scheme, used verbatim as the password."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    query = {
        "Action": "connect", "DBUser": user, "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{creds.access_key}/{date}/{region}/rds-db/aws4_request",
        "X-Amz-Date": amz_date, "X-Amz-Expires": str(RDS_TOKEN_SECONDS), "X-Amz-SignedHeaders": "host",
    }
    if creds.session_token:
        query["X-Amz-Security-Token"] = creds.session_token
    cq = canonical_query(query)
    hostport = f"{host}:{port}"
    request = "\n".join(["GET", "/", cq, f"host:{hostport}", "", "host", EMPTY_SHA256])
    return f"{hostport}/?{cq}&X-Amz-Signature={_signature(creds, now, region, 'rds-db', request)}"


def sign_post(url: str, body: bytes, region: str, service: str, creds: Credentials,
              now: dt.datetime | None = None) -> dict[str, str]:
    """Headers that SigV4-sign a form POST (STS AssumeRole): host, x-amz-date, content type, token."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    parts = urllib.parse.urlsplit(url)
    headers = {"content-type": "application/x-www-form-urlencoded", "host": parts.netloc,
               "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ")}
    if creds.session_token:
        headers["x-amz-security-token"] = creds.session_token
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
    signed = ";".join(names)
    query = canonical_query(dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    request = "\n".join(["POST", _quote_path(parts.path or "/"), query, canonical_headers, signed,
                         hashlib.sha256(body).hexdigest()])
    date = now.strftime("%Y%m%d")
    sig = _signature(creds, now, region, service, request)
    headers["authorization"] = (f"{ALGORITHM} Credential={creds.access_key}/{date}/{region}/{service}/aws4_request, "
                                f"SignedHeaders={signed}, Signature={sig}")
    del headers["host"]  # http.client sends Host itself
    return {k.title() if k != "x-amz-date" else "X-Amz-Date": v for k, v in headers.items()}


def _quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/-_.~")
