"""AWS IAM Identity Center (SSO) profiles: the cached sign-in of `aws sso login`, then the role's credentials.

A profile is an SSO profile when it names `sso_session` (the current form: the start URL
and region live in an `[sso-session NAME]` section of the config file) or `sso_start_url`
(the legacy form: everything in the profile). Either way it names `sso_account_id` and
`sso_role_name`.

1. The access token comes from the AWS CLI's cache, `~/.aws/sso/cache/<sha1>.json`, where
   <sha1> is the hex SHA-1 of the session name (current form) or of the start URL (legacy).
   pgmi only reads it: a missing or expired sign-in is one line asking for
   `aws sso login` (pgmi does not refresh it with the cached refresh token, nor open a browser).
2. `GET https://portal.sso.<region>.amazonaws.com/federation/credentials?account_id=..&role_name=..`
   with the token in `x-amz-sso_bearer_token` gives the role's short-lived keys
   (`roleCredentials`: accessKeyId, secretAccessKey, sessionToken, expiration in epoch
   milliseconds). `$AWS_ENDPOINT_URL_SSO` (then `$AWS_ENDPOINT_URL`) replaces the portal,
   as in the AWS SDKs.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import json
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Mapping

from pgmilib.conn.auth.http import CloudHttp, TokenError, parse_timestamp
from pgmilib.conn.auth.sigv4 import Credentials
from pgmilib.errors import ConfigError
from pgmilib.redact import register_secret

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")
MAX_CACHE_BYTES = 1 << 20


def is_sso_profile(settings: Mapping[str, str]) -> bool:
    return bool(settings.get("sso_session") or settings.get("sso_start_url"))


def sso_credentials(settings: Mapping[str, str], profile: str, config: configparser.RawConfigParser,
                    environ: Mapping[str, str], home: str, http: CloudHttp, timeout: float) -> Credentials:
    """The role credentials of SSO profile `profile` (settings already merged from the shared files)."""
    session = settings.get("sso_session", "")
    if session:
        section = f"sso-session {session}"
        if not config.has_section(section):
            raise ConfigError(f"AWS profile {profile!r}: sso_session {session!r} has no [{section}] section "
                              "in the config file")
        sso = {k.lower(): v.strip() for k, v in config.items(section)}
        start_url, region = sso.get("sso_start_url", ""), sso.get("sso_region", "")
        cache_key, login = session, f"aws sso login --sso-session {session}"
    else:
        start_url, region = settings.get("sso_start_url", ""), settings.get("sso_region", "")
        cache_key, login = start_url, f"aws sso login --profile {profile}"
    account, role = settings.get("sso_account_id", ""), settings.get("sso_role_name", "")
    where = f"AWS profile {profile!r}"
    missing = [name for name, value in (("sso_start_url", start_url), ("sso_region", region),
                                        ("sso_account_id", account), ("sso_role_name", role)) if not value]
    if missing:
        raise ConfigError(f"{where}: an SSO profile needs {', '.join(missing)}")
    if not _ACCOUNT.match(account):
        raise ConfigError(f"{where}: sso_account_id {account!r} is not a 12-digit AWS account id")
    if not _REGION.match(region):
        raise ConfigError(f"{where}: sso_region {region!r} is not an AWS region name")
    step = f"SSO sign-in of profile {profile!r}"
    token = _cached_token(os.path.join(home, ".aws", "sso", "cache"), cache_key, http, step, login)
    base = environ.get("AWS_ENDPOINT_URL_SSO") or environ.get("AWS_ENDPOINT_URL") or \
        f"https://portal.sso.{region}.amazonaws.com"
    url = base.rstrip("/") + "/federation/credentials?" + urllib.parse.urlencode(
        {"account_id": account, "role_name": role})
    try:
        doc = http.json("SSO GetRoleCredentials", "GET", url, headers={"x-amz-sso_bearer_token": token},
                        timeout=timeout)
    except TokenError as error:
        if error.reason.startswith(("HTTP 401", "HTTP 403")):  # revoked or signed out elsewhere
            error.trailer.append(f"hint: sign in again with `{login}`")
        raise
    found = doc.get("roleCredentials")
    if not isinstance(found, dict):
        raise http.fail("SSO GetRoleCredentials", "response has no 'roleCredentials'")
    key, secret = found.get("accessKeyId"), found.get("secretAccessKey")
    if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
        raise http.fail("SSO GetRoleCredentials", "response has no accessKeyId/secretAccessKey")
    expiration = None
    if isinstance(found.get("expiration"), (int, float)) and not isinstance(found.get("expiration"), bool):
        expiration = dt.datetime.fromtimestamp(found["expiration"] / 1000, dt.timezone.utc)
    return Credentials(key, secret, str(found.get("sessionToken") or ""), expiration, source=step)


def _cached_token(cache_dir: str, key: str, http: CloudHttp, step: str, login: str) -> str:
    """The cached access token for `key`, registered as a secret; missing or expired: run `login`."""
    # SHA-1 only names the file, as the AWS CLI does; nothing relies on it being hard to invert.
    path = os.path.join(cache_dir, hashlib.sha1(key.encode("utf-8")).hexdigest() + ".json")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read forever
            raise http.fail(step, f"the cached token {path} is not a regular file; run `{login}`")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CACHE_BYTES + 1)
    except FileNotFoundError:
        raise http.fail(step, f"not signed in (no cached token {path}); run `{login}`") from None
    except OSError as error:
        raise http.fail(step, f"cannot read the cached token {path}: {error.strerror or error}") from None
    try:
        doc = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_CACHE_BYTES else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("accessToken"), str):
        register_secret(doc["accessToken"])
    for field in ("refreshToken", "clientSecret"):
        if isinstance(doc, dict) and isinstance(doc.get(field), str):
            register_secret(doc[field])
    if not isinstance(doc, dict) or not isinstance(doc.get("accessToken"), str) or not doc["accessToken"]:
        raise http.fail(step, f"the cached token {path} is not the JSON the AWS CLI writes; run `{login}`")
    when = parse_timestamp(doc.get("expiresAt"))
    expires = when.timestamp() if when else None
    if expires is None:
        raise http.fail(step, f"the cached token {path} has no valid expiresAt; run `{login}`")
    if expires <= time.time():
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        raise http.fail(step, f"the SSO sign-in expired at {when}; run `{login}`")
    return doc["accessToken"]

