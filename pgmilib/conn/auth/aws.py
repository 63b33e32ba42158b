"""AWS RDS / Aurora IAM: find credentials the way the AWS SDKs do, presign `rds-db:connect` (docs/CLOUD.md).

Chain, first source that has credentials wins:
1. an explicitly selected profile ($AWS_PROFILE / $AWS_DEFAULT_PROFILE) beats everything;
2. $AWS_ACCESS_KEY_ID + $AWS_SECRET_ACCESS_KEY [+ $AWS_SESSION_TOKEN];
3. $AWS_WEB_IDENTITY_TOKEN_FILE + $AWS_ROLE_ARN -> STS AssumeRoleWithWebIdentity;
4. the `default` profile of the shared credentials/config files;
5. ECS/EKS container credentials ($AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI);
6. EC2 instance metadata, IMDSv2 (unless $AWS_EC2_METADATA_DISABLED=true).
Within a profile: source_profile/credential_source + role_arn (STS AssumeRole, SigV4
signed), static keys, web_identity_token_file + role_arn, SSO (`sso_session` /
`sso_start_url`: the cached `aws sso login` token, then the portal's role credentials;
awssso.py), credential_process.
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import re
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from pgmilib.conn.auth.awssso import is_sso_profile, sso_credentials
from pgmilib.conn.auth.cloud import CloudProvider
from pgmilib.conn.auth.http import TokenError, form, is_loopback_host, parse_timestamp
from pgmilib.conn.auth.sigv4 import RDS_TOKEN_SECONDS, Credentials, rds_auth_token, sign_post
from pgmilib.errors import ConfigError
from pgmilib.redact import register_secret

if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams

ECS_HOST = "http://169.254.170.2"
ECS_FULL_URI_HOSTS = ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
IMDS_DEFAULT = "http://169.254.169.254"
IMDS_IPV6 = "http://[fd00:ec2::254]"
STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_ROLE_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")  # IAM's rule for role names


def _now() -> dt.datetime:
    """The signing clock (a function so tests can freeze it)."""
    return dt.datetime.now(dt.timezone.utc)


class AwsIamAuth(CloudProvider):
    """The RDS IAM token, re-signed for every connection attempt."""

    name = "aws"
    label = "AWS IAM"

    def password(self, params: ConnParams, database: str) -> str | None:
        if not params.aws_region:
            raise ConfigError("AWS IAM authentication requires a region: --aws-region, $AWS_REGION, "
                              "$AWS_DEFAULT_REGION or pgmi.yaml connection.aws_region")
        if not params.user:
            raise ConfigError("AWS IAM authentication requires a database user (--username)")
        creds = self.credentials(params.aws_region)
        token = rds_auth_token(params.host, params.port, params.aws_region, params.user, creds, _now())
        expires = time.time() + RDS_TOKEN_SECONDS
        if creds.expiration is not None:  # the presigned URL dies with the session credentials
            expires = min(expires, creds.expiration.timestamp())
        return self.issued(token, expires)

    # -- the chain ---------------------------------------------------------------------

    def credentials(self, region: str) -> Credentials:
        env = self.environ
        tried: list[str] = []
        profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
        if profile:
            creds = self._profile(profile, region, explicit=True)
            if creds is not None:
                return creds
            tried.append(f"profile {profile!r}")
        else:
            creds = self._env_keys() or self._env_web_identity(region)
            if creds is not None:
                return creds
            tried.append("environment variables")
            creds = self._profile("default", region, explicit=False)
            if creds is not None:
                return creds
            tried.append("shared files (profile 'default')")
        creds = self._container()
        if creds is not None:
            return creds
        tried.append("container credentials (not configured)")
        if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
            tried.append("EC2 instance metadata (disabled)")
        else:
            try:
                return self._imds()
            except TokenError as error:
                if not error.reason.startswith("HTTP"):  # off EC2: say what else could have been set
                    error.trailer.append("hint: no AWS credentials found in the environment, the shared files "
                                         "(~/.aws) or a container; set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                                         "AWS_SECRET_ACCESS_KEY, or run on AWS with an instance/task role")
                raise
        raise self.http.fail("credential chain", "no AWS credentials found (tried: " + ", ".join(tried) + ")")

    def _env_keys(self) -> Credentials | None:
        env = self.environ
        key = env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY")
        secret = env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY")
        if not (key and secret):
            return None
        return self._keep(Credentials(key, secret, env.get("AWS_SESSION_TOKEN", ""), source="environment"))

    def _env_web_identity(self, region: str) -> Credentials | None:
        env = self.environ
        token_file, role = env.get("AWS_WEB_IDENTITY_TOKEN_FILE"), env.get("AWS_ROLE_ARN")
        if not (token_file and role):
            return None
        return self._web_identity(token_file, role, env.get("AWS_ROLE_SESSION_NAME", ""), region)

    @staticmethod
    def _keep(creds: Credentials) -> Credentials:
        register_secret(creds.secret_key)
        register_secret(creds.session_token)
        return creds

    # -- shared files ------------------------------------------------------------------

    def _home(self) -> str:
        return self.environ.get("HOME") or os.path.expanduser("~")

    def _read_ini(self, var: str, default: str) -> configparser.RawConfigParser:
        path = os.path.expanduser(self.environ.get(var) or os.path.join(self._home(), ".aws", default))
        parser = configparser.RawConfigParser()
        try:
            with open(path, encoding="utf-8") as fh:
                parser.read_file(fh)
        except FileNotFoundError:
            pass
        except (OSError, configparser.Error) as error:
            raise ConfigError(f"cannot read AWS {default} file {path!r}: {error}") from None
        return parser

    def _profile_settings(self, name: str) -> dict[str, str] | None:
        config = self._read_ini("AWS_CONFIG_FILE", "config")
        creds = self._read_ini("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        section = "default" if name == "default" else f"profile {name}"
        found = False
        settings: dict[str, str] = {}
        for parser, sect in ((config, section), (config, name), (creds, name)):
            if parser.has_section(sect):
                found = True
                settings.update({k.lower(): v.strip() for k, v in parser.items(sect)})
        return settings if found else None

    def _profile(self, name: str, region: str, *, explicit: bool, depth: int = 0) -> Credentials | None:
        settings = self._profile_settings(name)
        if settings is None:
            if explicit:
                raise ConfigError(f"AWS profile {name!r} (from $AWS_PROFILE) was not found in the shared "
                                  "config or credentials file")
            return None
        if depth > 5:
            raise ConfigError(f"AWS profile {name!r}: source_profile chain is too long (a cycle?)")
        role = settings.get("role_arn", "")
        session = settings.get("role_session_name", "")
        if role and settings.get("source_profile"):
            source_name = settings["source_profile"]
            if source_name == name:
                source = self._static(settings, name)
            else:
                source = self._profile(source_name, region, explicit=True, depth=depth + 1)
            if source is None:
                raise ConfigError(f"AWS profile {name!r}: source_profile {source_name!r} has no credentials")
            return self._assume_role(source, role, session, settings.get("external_id", ""), region)
        static = self._static(settings, name)
        if static is not None:
            return static
        if role and settings.get("credential_source"):
            source = self._credential_source(settings["credential_source"], name)
            return self._assume_role(source, role, session, settings.get("external_id", ""), region)
        if role and settings.get("web_identity_token_file"):
            return self._web_identity(settings["web_identity_token_file"], role, session, region)
        if is_sso_profile(settings):
            config = self._read_ini("AWS_CONFIG_FILE", "config")
            return self._keep(sso_credentials(settings, name, config, self.environ, self._home(), self.http,
                                              self.token_timeout))
        if settings.get("credential_process"):
            return self._process(settings["credential_process"], name)
        return None

    def _static(self, settings: dict[str, str], name: str) -> Credentials | None:
        key, secret = settings.get("aws_access_key_id"), settings.get("aws_secret_access_key")
        if key and secret:
            return self._keep(Credentials(key, secret, settings.get("aws_session_token", ""), source=f"profile {name}"))
        return None

    def _credential_source(self, source: str, profile: str) -> Credentials:
        if source == "Environment":
            creds = self._env_keys()
        elif source == "Ec2InstanceMetadata":
            creds = self._imds()
        elif source == "EcsContainer":
            creds = self._container()
        else:
            raise ConfigError(f"AWS profile {profile!r}: unknown credential_source {source!r} "
                              "(valid: Environment, Ec2InstanceMetadata, EcsContainer)")
        if creds is None:
            raise ConfigError(f"AWS profile {profile!r}: credential_source {source} has no credentials")
        return creds

    def _process(self, command: str, profile: str) -> Credentials:
        step = f"credential_process of profile {profile!r}"
        import shlex

        try:
            limit = 60.0 if self.deadline is None else self.deadline.cap(60.0) or 0.0
            done = subprocess.run(shlex.split(command), check=False, capture_output=True, timeout=limit, text=True)
        except (OSError, ValueError, subprocess.TimeoutExpired) as error:
            raise self.http.fail(step, str(error)) from None
        if done.returncode != 0:
            raise self.http.fail(step, f"exit status {done.returncode}: {done.stderr.strip()[:200]}")
        try:
            doc = json.loads(done.stdout)
        except ValueError:
            raise self.http.fail(step, "output is not JSON") from None
        if not isinstance(doc, dict) or not doc.get("AccessKeyId") or not doc.get("SecretAccessKey"):
            raise self.http.fail(step, "output lacks AccessKeyId/SecretAccessKey")
        return self._keep(Credentials(doc["AccessKeyId"], doc["SecretAccessKey"], doc.get("SessionToken", ""),
                                      parse_timestamp(doc.get("Expiration")), source=step))

    # -- STS ---------------------------------------------------------------------------

    def _sts_url(self, region: str) -> str:
        env = self.environ
        base = env.get("AWS_ENDPOINT_URL_STS") or env.get("AWS_ENDPOINT_URL") or f"https://sts.{region}.amazonaws.com"
        return base.rstrip("/") + "/"

    def _web_identity(self, token_file: str, role: str, session: str, region: str) -> Credentials:
        step = "STS AssumeRoleWithWebIdentity"
        try:
            with open(os.path.expanduser(token_file), encoding="utf-8") as fh:
                web_token = fh.read().strip()
        except OSError as error:
            raise self.http.fail(step, f"cannot read web identity token file {token_file!r}: "
                                       f"{error.strerror or error}") from None
        register_secret(web_token)
        body = form({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": role,
                     "RoleSessionName": session or f"pgmi-{int(time.time())}", "WebIdentityToken": web_token})
        return self._sts(step, body, {}, region)

    def _assume_role(self, source: Credentials, role: str, session: str, external_id: str,
                     region: str) -> Credentials:
        fields = {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": role,
                  "RoleSessionName": session or f"pgmi-{int(time.time())}"}
        if external_id:
            fields["ExternalId"] = external_id
        body = form(fields)
        headers = sign_post(self._sts_url(region), body, region, "sts", source)
        return self._sts("STS AssumeRole", body, headers, region)

    def _sts(self, step: str, body: bytes, headers: dict[str, str], region: str) -> Credentials:
        url = self._sts_url(region)
        resp = self.http.request(step, "POST", url, body=body, headers={"Accept": "application/xml", **headers},
                                 timeout=self.token_timeout)
        try:
            root = ET.fromstring(resp.body)
        except ET.ParseError:
            raise self.http.fail(step, "malformed XML in STS response") from None
        found = {e.tag.removeprefix(STS_NS): (e.text or "").strip() for e in root.iter()}
        if not (found.get("AccessKeyId") and found.get("SecretAccessKey")):
            raise self.http.fail(step, "STS response has no Credentials")
        return self._keep(Credentials(found["AccessKeyId"], found["SecretAccessKey"], found.get("SessionToken", ""),
                                      parse_timestamp(found.get("Expiration")), source=step))

    # -- metadata services -------------------------------------------------------------

    def _container(self) -> Credentials | None:
        env = self.environ
        step = "ECS container credentials"
        relative, full = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        if relative:
            url = ECS_HOST + relative
        elif full:
            parts = urllib.parse.urlsplit(full)
            host = (parts.hostname or "").strip("[]")
            if parts.scheme != "https" and not (host in ECS_FULL_URI_HOSTS or is_loopback_host(host)):
                raise ConfigError(f"$AWS_CONTAINER_CREDENTIALS_FULL_URI {full!r} must use https or a loopback/"
                                  "ECS link-local host")
            url = full
        else:
            return None
        headers = {}
        token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            try:
                with open(token_file, encoding="utf-8") as fh:
                    headers["Authorization"] = fh.read().strip()
            except OSError as error:
                raise self.http.fail(step, f"cannot read {token_file!r}: {error.strerror or error}") from None
        elif env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
            headers["Authorization"] = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        register_secret(headers.get("Authorization"))
        doc = self.http.json(step, "GET", url, headers=headers, timeout=self.metadata_timeout, secure=False)
        return self._from_json(step, doc)

    def _from_json(self, step: str, doc: dict) -> Credentials:
        key, secret = doc.get("AccessKeyId"), doc.get("SecretAccessKey")
        if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
            raise self.http.fail(step, "response has no AccessKeyId/SecretAccessKey")
        token = doc.get("Token") or doc.get("SessionToken") or ""
        return self._keep(Credentials(key, secret, str(token), parse_timestamp(doc.get("Expiration")), source=step))

    def _imds(self) -> Credentials:
        env = self.environ
        base = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or (
            IMDS_IPV6 if env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").lower() == "ipv6" else IMDS_DEFAULT)
        base = base.rstrip("/")
        step = "EC2 instance metadata"
        timeout = self.metadata_timeout
        session = self.http.request(step, "PUT", base + "/latest/api/token", timeout=timeout, secure=False,
                                    headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"}).text.strip()
        register_secret(session)
        headers = {"X-aws-ec2-metadata-token": session}
        path = "/latest/meta-data/iam/security-credentials/"
        roles = self.http.request(step, "GET", base + path, headers=headers, timeout=timeout, secure=False).text
        role = next((line.strip() for line in roles.splitlines() if line.strip()), "")
        if not role:
            raise self.http.fail(step, "no IAM role is attached to this instance")
        if not _ROLE_NAME.match(role):  # never quoted: whatever answered is not the metadata service
            raise self.http.fail(step, "the instance's IAM role name in the answer is malformed")
        doc = self.http.json(step, "GET", base + path + urllib.parse.quote(role), headers=headers,
                             timeout=timeout, secure=False)
        if doc.get("Code", "Success") != "Success":
            raise self.http.fail(step, f"credentials not available: {doc.get('Code')}: {doc.get('Message', '')}")
        return self._from_json(step, doc)


