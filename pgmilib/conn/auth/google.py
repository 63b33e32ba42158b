"""Google Cloud SQL IAM database authentication with the standard library (docs/CLOUD.md).

The instance connection name `project:region:instance` is resolved with the Cloud SQL
Admin API (`connectSettings`) to its public (PRIMARY) address, and TLS trusts only the
instance's server CA and checks the server identity (CN `project:instance`, or the
instance DNS name for CAS-based CAs).

How pgmi reaches the instance, as the original does by default:
* no `--host`: the Cloud SQL connector path (cloudsql.py): `connectSettings`, an
  ephemeral client certificate from `generateEphemeralCert` for pgmi's own RSA key, and
  mutual TLS to the instance's server-side proxy on port 3307, the PostgreSQL protocol
  inside; no password is sent. No authorized network is needed.
* `$PGMI_CLOUDSQL_DIAL=direct`, no `--host`: the resolved PRIMARY address on --port with
  TLS against the instance's CA and the login token as the password (authorized networks).
* `--host` given: straight to that host with the login token as the password.

Credentials (ADC): $GOOGLE_APPLICATION_CREDENTIALS, else gcloud's
application_default_credentials.json ($CLOUDSDK_CONFIG or ~/.config/gcloud), both of type
service_account (RS256 JWT signed here, `rsa.py`) or authorized_user (refresh token);
else the metadata server ($GCE_METADATA_HOST or metadata.google.internal).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from pgmilib import records
from pgmilib.conn.auth.cloud import CloudProvider, warn_once
from pgmilib.conn.auth.cloudsql import add_client_identity, client_key, dial, ephemeral_cert, proxy_port
from pgmilib.conn.auth.http import CloudHttp, TokenError, display, form
from pgmilib.conn.auth.rsa import BadKey, jwt_rs256, load_private_key
from pgmilib.conn.auth.rsagen import public_key_pem
from pgmilib.errors import ConfigError
from pgmilib.redact import register_secret

if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams

LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
ADMIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.admin"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SQLADMIN = "https://sqladmin.googleapis.com/"
API_PATH = "sql/v1beta4/"
METADATA_HOST = "metadata.google.internal"
_NAME_PART = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_PROJECT = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z0-9][a-z0-9-]*$")


@records.record(frozen=True)
class InstanceName:
    project: str
    region: str
    instance: str

    def __str__(self) -> str:
        return f"{self.project}:{self.region}:{self.instance}"


def parse_instance(text: str) -> InstanceName:
    """`project:region:instance`, or `domain.com:project:region:instance` (the project keeps the domain)."""
    parts = text.strip().split(":")
    if len(parts) == 4:
        parts = [f"{parts[0]}:{parts[1]}", parts[2], parts[3]]
    if len(parts) != 3 or not _PROJECT.match(parts[0]) or not all(_NAME_PART.match(p) for p in parts[1:]):
        raise ConfigError(f"invalid --google-instance {text!r}: expected an instance connection name "
                          "project:region:instance (lower case, e.g. my-project:europe-west1:my-db)")
    return InstanceName(*parts)


class CloudSqlTls(ssl.SSLContext):
    """TLS to a Cloud SQL instance address: trust only its server CA, check its identity.

    Instance certificates of the Google-managed internal CA carry the CN `project:instance`
    and no DNS/IP name, so the host name check is replaced by a CN comparison after the
    handshake; CAS-based instances are checked against their DNS name instead.
    """

    expected_cn: str = ""
    dns_name: str = ""

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | None = None,
                    session: Any = None) -> ssl.SSLSocket:
        if self.dns_name:
            server_hostname = self.dns_name
        tls = super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                  server_hostname, session)
        if self.expected_cn:
            subject = (tls.getpeercert() or {}).get("subject", ())
            names = [value for rdn in subject for key, value in rdn if key == "commonName"]
            if self.expected_cn not in names:
                tls.close()
                error = ssl.SSLCertVerificationError(
                    f"certificate verify failed: server certificate CN {names} is not {self.expected_cn!r}")
                error.verify_message = f"the server certificate is not for instance {self.expected_cn!r}"
                error.reason = "CERTIFICATE_VERIFY_FAILED"
                raise error
        return tls


def instance_tls(ca_pem: str, name: InstanceName, ca_mode: str, dns_name: str) -> CloudSqlTls:
    ctx = CloudSqlTls(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_pem)
    if ca_mode in ("", "GOOGLE_MANAGED_INTERNAL_CA", "CA_MODE_UNSPECIFIED") or not dns_name:
        ctx.check_hostname = False
        ctx.expected_cn = f"{name.project}:{name.instance}"
    else:
        ctx.dns_name = dns_name.rstrip(".")
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class GoogleAuth(CloudProvider):
    """Cloud SQL IAM database authentication: an ADC access token as the password."""

    name = "google"
    label = "Google Cloud SQL IAM"

    def __init__(self, environ: Any = None, deadline: Any = None) -> None:
        super().__init__(environ, deadline)
        self._tls: ssl.SSLContext | None = None
        self._connector: ssl.SSLContext | None = None  # the mutual-TLS context of the connector path
        self._dialer: CloudHttp | None = None

    # -- connection target -------------------------------------------------------------

    def prepare(self, params: ConnParams, out: Any = None) -> ConnParams:
        if not params.google_instance:
            raise ConfigError("Google Cloud SQL IAM authentication requires --google-instance "
                              "(project:region:instance) or pgmi.yaml connection.google_instance")
        name = parse_instance(params.google_instance)
        if "host" in params.given:
            return super().prepare(params, out)
        self.out = out
        if "sslmode" in params.given and params.sslmode not in ("verify-ca", "verify-full"):
            warn_once(out, ("sslmode", self.name, str(name), params.sslmode),
                      f"--sslmode {params.sslmode} ignored: connections to a resolved Cloud SQL instance always use "
                      "TLS verified with the instance's server CA")
        dial_mode = self.environ.get("PGMI_CLOUDSQL_DIAL", "connector") or "connector"
        if dial_mode not in ("connector", "direct"):
            raise ConfigError(f"$PGMI_CLOUDSQL_DIAL {dial_mode!r} is not one of: connector, direct")
        admin_token, _ = self.access_token(ADMIN_SCOPE)
        address, ctx = self.resolve(name, admin_token)
        if dial_mode == "direct":
            self._tls = ctx
            return records.replace(params, host=address, sslmode="verify-ca")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # what the instance's server-side proxy speaks
        key, key_path = client_key(self.environ)
        login_token, _ = self.access_token(LOGIN_SCOPE)
        admin = CloudHttp(self.label, self.environ, action=f"{self.label}: cannot get a client certificate for "
                                                           f"instance {name}", deadline=self.deadline)
        url = (f"{self.sqladmin_base()}projects/{urllib.parse.quote(name.project, safe=':')}/instances/"
               f"{urllib.parse.quote(name.instance)}:generateEphemeralCert")
        cert = ephemeral_cert(admin, url, public_key_pem(key), login_token, admin_token, self.token_timeout)
        add_client_identity(ctx, cert, key, key_path)
        self._connector = ctx
        self._dialer = CloudHttp(self.label, self.environ, action=f"{self.label}: cannot connect to instance {name}",
                                 deadline=self.deadline)
        return records.replace(params, host=address, port=proxy_port(self.environ), sslmode="verify-ca")

    def ssl_context(self, params: ConnParams) -> ssl.SSLContext | bool | None:
        if self._connector is not None:
            return False  # the tunnel is TLS already: the PostgreSQL protocol starts without an SSLRequest
        return self._tls

    def open_socket(self, params: ConnParams, timeout: float | None) -> socket.socket | None:
        if self._connector is None:
            return None
        return dial(params.host, params.port, self._connector, timeout, self.deadline, self._dialer.fail)

    def sqladmin_base(self) -> str:
        base = self.environ.get("CLOUDSDK_API_ENDPOINT_OVERRIDES_SQLADMIN") or SQLADMIN
        base = base if base.endswith("/") else base + "/"
        return base if base.endswith(API_PATH) else base + API_PATH

    def resolve(self, name: InstanceName, token: str = "") -> tuple[str, CloudSqlTls]:
        """The instance's PRIMARY address and a TLS context for it (connectSettings)."""
        if not token:
            token, _ = self.access_token(ADMIN_SCOPE)
        url = (f"{self.sqladmin_base()}projects/{urllib.parse.quote(name.project, safe=':')}/instances/"
               f"{urllib.parse.quote(name.instance)}/connectSettings")
        admin = CloudHttp(self.label, self.environ, action=f"{self.label}: cannot resolve instance {name}",
                          deadline=self.deadline)
        step = "Cloud SQL Admin API connectSettings"
        doc = admin.json(step, "GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=self.token_timeout)
        step = f"{step} (GET {display(url)})"
        region = doc.get("region")
        if region and region != name.region:
            raise admin.fail(step, f"the instance is in region {region!r}, not {name.region!r}; "
                                       "fix --google-instance")
        if doc.get("backendType") not in (None, "SECOND_GEN"):
            raise admin.fail(step, f"the instance has backend type {doc.get('backendType')!r}; "
                                       "only SECOND_GEN instances support IAM database authentication")
        addresses = [a for a in doc.get("ipAddresses") or [] if isinstance(a, dict)]
        primary = next((a.get("ipAddress") for a in addresses if a.get("type") == "PRIMARY" and a.get("ipAddress")),
                       None)
        if not primary:
            kinds = ", ".join(sorted({str(a.get("type")) for a in addresses})) or "none"
            raise admin.fail(step, f"the instance has no public (PRIMARY) IP address (has: {kinds}); "
                                       "pass --host with an address you can reach (private IP, PSC endpoint)")
        ca = (doc.get("serverCaCert") or {}).get("cert") if isinstance(doc.get("serverCaCert"), dict) else None
        if not isinstance(ca, str) or "BEGIN CERTIFICATE" not in ca:
            raise admin.fail(step, "response has no serverCaCert")
        try:
            ctx = instance_tls(ca, name, str(doc.get("serverCaMode") or ""), str(doc.get("dnsName") or ""))
        except (ssl.SSLError, ValueError) as error:
            raise admin.fail(step, f"unusable serverCaCert: {error}") from None
        return str(primary), ctx

    # -- the password ------------------------------------------------------------------

    def password(self, params: ConnParams, database: str) -> str | None:
        if self._connector is not None:
            return None  # the server-side proxy logs in the identity of the client certificate
        token, expires = self.access_token(LOGIN_SCOPE)
        return self.issued(token, expires)

    # -- Application Default Credentials -----------------------------------------------

    def adc_file(self) -> str | None:
        env = self.environ
        explicit = env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if explicit:
            return explicit
        config = env.get("CLOUDSDK_CONFIG") or os.path.join(env.get("HOME") or os.path.expanduser("~"),
                                                            ".config", "gcloud")
        path = os.path.join(config, "application_default_credentials.json")
        return path if os.path.isfile(path) else None

    def access_token(self, scope: str) -> tuple[str, float | None]:
        path = self.adc_file()
        if path is None:
            return self._metadata(scope)
        info = _load_json_file(path)
        kind = info.get("type")
        if kind == "service_account":
            return self._service_account(info, path, scope)
        if kind == "authorized_user":
            return self._authorized_user(info, path)
        raise ConfigError(f"Google credentials file {path!r}: credential type {kind!r} is not supported "
                          "(supported: service_account, authorized_user; or the metadata server)")

    def _service_account(self, info: dict[str, Any], path: str, scope: str) -> tuple[str, float | None]:
        email, pem = info.get("client_email"), info.get("private_key")
        if not isinstance(email, str) or not email or not isinstance(pem, str):
            raise ConfigError(f"Google service account file {path!r} lacks client_email or private_key")
        register_secret(pem)
        try:
            key = load_private_key(pem)
        except BadKey as error:
            raise ConfigError(f"Google service account file {path!r}: private_key: {error}") from None
        token_uri = str(info.get("token_uri") or TOKEN_URI)
        now = int(time.time())
        header = {"kid": info["private_key_id"]} if info.get("private_key_id") else {}
        assertion = jwt_rs256(header, {"iss": email, "scope": scope, "aud": token_uri, "iat": now, "exp": now + 3600},
                              key)
        register_secret(assertion)
        body = form({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
        return self._token_endpoint("service account token exchange", token_uri, body)

    def _authorized_user(self, info: dict[str, Any], path: str) -> tuple[str, float | None]:
        fields = {k: info.get(k) for k in ("client_id", "client_secret", "refresh_token")}
        if not all(isinstance(v, str) and v for v in fields.values()):
            raise ConfigError(f"Google authorized_user file {path!r} lacks client_id, client_secret or refresh_token")
        register_secret(fields["client_secret"])
        register_secret(fields["refresh_token"])
        body = form({"grant_type": "refresh_token", **fields})  # type: ignore[dict-item]
        return self._token_endpoint("refresh token exchange", str(info.get("token_uri") or TOKEN_URI), body)

    def _token_endpoint(self, step: str, url: str, body: bytes) -> tuple[str, float | None]:
        doc = self.http.json(step, "POST", url, body=body, timeout=self.token_timeout)
        return self.http.token_field(step, doc, "access_token"), _expires_in(doc)

    def _metadata(self, scope: str) -> tuple[str, float | None]:
        host = self.environ.get("GCE_METADATA_HOST") or METADATA_HOST
        step = "metadata server"
        url = (f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token?"
               + urllib.parse.urlencode({"scopes": scope}))
        try:
            resp = self.http.request(step, "GET", url, headers={"Metadata-Flavor": "Google"},
                                     timeout=self.metadata_timeout, secure=False)
        except TokenError as error:
            if not error.reason.startswith("HTTP"):
                error.trailer.append("hint: no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS, run "
                                     "`gcloud auth application-default login`, or run on Google Cloud")
            raise
        if resp.headers.get("Metadata-Flavor") != "Google":
            raise self.http.fail(step, f"{host} answered without 'Metadata-Flavor: Google'; not a metadata server")
        from pgmilib.conn.auth.http import parse_json

        doc = parse_json(self.http, step, resp.body)
        return self.http.token_field(step, doc, "access_token"), _expires_in(doc)


def _expires_in(doc: dict[str, Any]) -> float | None:
    try:
        return time.time() + float(doc["expires_in"])
    except (KeyError, TypeError, ValueError):
        return None


def _load_json_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except OSError as error:
        raise ConfigError(f"cannot read Google credentials file {path!r}: {error.strerror or error}") from None
    except ValueError as error:
        raise ConfigError(f"Google credentials file {path!r} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"Google credentials file {path!r} is not a JSON object")
    return value
