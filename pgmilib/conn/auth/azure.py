"""Azure Entra ID for Azure Database for PostgreSQL: an access token for the ossrdbms scope (docs/CLOUD.md).

Which credential, first that applies:
1. service principal: tenant + client id + $AZURE_CLIENT_SECRET (client secret), or
   + $AZURE_CLIENT_CERTIFICATE_PATH (certificate assertion, RS256 with the x5t thumbprint;
   the PEM file must hold the certificate and an unencrypted PKCS#8 RSA key);
2. workload identity: $AZURE_FEDERATED_TOKEN_FILE + client id + tenant;
3. managed identity: App Service / Functions / Container Apps ($IDENTITY_ENDPOINT +
   $IDENTITY_HEADER), else the VM metadata endpoint (IMDS). A user-assigned identity is
   selected by the resolved client id (--azure-client-id > $AZURE_CLIENT_ID > pgmi.yaml);
   the original ignored that flag;
4. off Azure (the metadata endpoint unreachable, or it has no identity): the Azure CLI
   (`az account get-access-token`), then the Azure Developer CLI (`azd auth token`), each
   only when it is on PATH (azurecli.py). Azure PowerShell is not part of this build.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

from pgmilib.conn.auth.azurecli import Unavailable, az_token, azd_token
from pgmilib.conn.auth.cloud import CloudProvider
from pgmilib.conn.auth.http import TokenError, display, form, is_loopback_host
from pgmilib.conn.auth.rsa import BadKey, b64url, jwt_rs256, load_private_key, pem_blocks
from pgmilib.conn.backoff import Backoff, pause
from pgmilib.errors import ConfigError, Marker
from pgmilib.redact import register_secret

if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams

RESOURCE = "https://ossrdbms-aad.database.windows.net"
SCOPE = RESOURCE + "/.default"
AUTHORITY = "https://login.microsoftonline.com"
IMDS = "http://169.254.169.254"
IMDS_PATH = "/metadata/identity/oauth2/token"
_TENANT = re.compile(r"^[A-Za-z0-9.-]+$")
IMDS_RETRY_STATUSES = ("HTTP 404", "HTTP 410", "HTTP 429", "HTTP 5")
IMDS_BACKOFF = Backoff(first=0.2, factor=2.0)  # 0.2 s, then 0.4 s


def _expiry(payload: dict[str, Any]) -> float | None:
    """Absolute expiry from `expires_on` (epoch, often a string) or `expires_in` (seconds)."""
    for key, base in (("expires_on", 0.0), ("expires_in", time.time())):
        try:
            return base + float(payload[key])
        except (KeyError, TypeError, ValueError):
            continue
    return None


class AzureAuth(CloudProvider):
    """An Entra access token, fetched anew for every connection attempt."""

    name = "azure"
    label = "Azure Entra ID"

    def password(self, params: ConnParams, database: str) -> str | None:
        token, expires = self.token(params.azure_tenant_id, params.azure_client_id)
        return self.issued(token, expires)

    def token(self, tenant: str, client_id: str) -> tuple[str, float | None]:
        env = self.environ
        if tenant and not _TENANT.match(tenant):
            raise ConfigError(f"invalid Azure tenant id {tenant!r} (a GUID or a domain name)")
        secret = env.get("AZURE_CLIENT_SECRET", "")
        cert_path = env.get("AZURE_CLIENT_CERTIFICATE_PATH", "")
        if tenant and client_id and secret:
            register_secret(secret)
            return self._client_credentials("client secret", tenant, {"client_id": client_id, "client_secret": secret})
        if tenant and client_id and cert_path:
            assertion = self._certificate_assertion(cert_path, tenant, client_id)
            return self._client_credentials("client certificate", tenant, _assertion_fields(client_id, assertion))
        federated = env.get("AZURE_FEDERATED_TOKEN_FILE", "")
        if federated and tenant and client_id:
            assertion = self._read_federated(federated)
            return self._client_credentials("workload identity", tenant, _assertion_fields(client_id, assertion))
        if env.get("IDENTITY_ENDPOINT") and env.get("IDENTITY_HEADER"):
            return self._app_service(client_id)
        try:
            return self._imds(client_id)
        except TokenError as error:
            # Not on an Azure VM (nothing answers), or a VM without an identity (400/404): the
            # default chain moves on to the developer's own sign-in. Any other answer is a real
            # managed identity failing, and --timeout running out ends the chain too.
            if Marker.DEADLINE in error.markers or (error.reason.startswith("HTTP")
                                                    and not error.reason.startswith(("HTTP 400", "HTTP 404"))):
                raise
            return self._developer_tools(tenant, error)

    def _developer_tools(self, tenant: str, imds_error: TokenError) -> tuple[str, float | None]:
        """The Azure CLI, then azd; when neither can give a token, the managed identity's error
        (or "run `az login`" when a tool is installed but signed out)."""
        signed_out: list[tuple[str, str]] = []
        for step, fetch, target in (("Azure CLI", az_token, RESOURCE), ("Azure Developer CLI", azd_token, SCOPE)):
            try:
                return fetch(self.environ, self.deadline, self.http.fail, target, tenant)
            except Unavailable as why:
                if "not signed in" in str(why):
                    signed_out.append((step, str(why)))
        if signed_out:
            raise self.http.fail(*signed_out[0]) from None
        if not imds_error.reason.startswith("HTTP"):
            imds_error.trailer.append("hint: no Azure credential found: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                                      "AZURE_CLIENT_SECRET (or a certificate / federated token file), sign in with "
                                      "`az login` or `azd auth login`, or run on Azure with a managed identity")
        raise imds_error

    # -- Entra token endpoint ----------------------------------------------------------

    def _token_url(self, tenant: str) -> str:
        authority = (self.environ.get("AZURE_AUTHORITY_HOST") or AUTHORITY).rstrip("/")
        if "://" not in authority:
            authority = "https://" + authority
        return f"{authority}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token"

    def _client_credentials(self, kind: str, tenant: str, fields: dict[str, str]) -> tuple[str, float | None]:
        step = f"{kind} token request"
        body = form({"grant_type": "client_credentials", "scope": SCOPE, **fields})
        doc = self.http.json(step, "POST", self._token_url(tenant), body=body, timeout=self.token_timeout)
        return self.http.token_field(step, doc, "access_token"), _expiry(doc)

    def _read_federated(self, path: str) -> str:
        try:  # re-read every time: the kubelet rotates it
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError as error:
            raise self.http.fail("workload identity", f"cannot read $AZURE_FEDERATED_TOKEN_FILE {path!r}: "
                                                      f"{error.strerror or error}") from None
        if not value:
            raise self.http.fail("workload identity", f"$AZURE_FEDERATED_TOKEN_FILE {path!r} is empty")
        register_secret(value)
        return value

    def _certificate_assertion(self, path: str, tenant: str, client_id: str) -> str:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read $AZURE_CLIENT_CERTIFICATE_PATH {path!r}: {error}") from None
        if self.environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"):
            raise ConfigError("password-protected Azure client certificates are not supported; "
                              "export the key unencrypted (PKCS#8) into a 0600 file")
        try:
            certs = [der for label, der in pem_blocks(text) if label == "CERTIFICATE"]
            if not certs:
                raise BadKey("no 'BEGIN CERTIFICATE' block")
            key = load_private_key(text)
        except BadKey as error:
            raise ConfigError(f"$AZURE_CLIENT_CERTIFICATE_PATH {path!r}: {error}") from None
        now = int(time.time())
        header = {"x5t": b64url(hashlib.sha1(certs[0]).digest()),  # SHA-1 thumbprint: Entra still keys on it
                  "x5t#S256": b64url(hashlib.sha256(certs[0]).digest())}
        claims = {"aud": self._token_url(tenant), "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
                  "nbf": now, "iat": now, "exp": now + 600}
        assertion = jwt_rs256(header, claims, key)
        register_secret(assertion)
        return assertion

    # -- managed identity --------------------------------------------------------------

    def _app_service(self, client_id: str) -> tuple[str, float | None]:
        env = self.environ
        step = "managed identity (App Service)"
        query = {"api-version": "2019-08-01", "resource": RESOURCE}
        if client_id:
            query["client_id"] = client_id
        register_secret(env["IDENTITY_HEADER"])
        endpoint = env["IDENTITY_ENDPOINT"]
        parts = urllib.parse.urlsplit(endpoint)
        try:
            host = parts.hostname or ""
        except ValueError:
            host = ""
        if parts.scheme not in ("http", "https") or (parts.scheme == "http" and not is_loopback_host(host)):
            # App Service, Functions and Container Apps point it at a loopback port: anything else
            # would carry the IDENTITY_HEADER secret in clear across a network (the rule AWS's
            # container credentials follow too).
            raise ConfigError(f"$IDENTITY_ENDPOINT {display(endpoint)!r} must use https or a loopback host "
                              "(127.0.0.0/8, ::1, localhost): the IDENTITY_HEADER secret is never sent over plain HTTP")
        url = endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(query)
        doc = self.http.json(step, "GET", url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
                             timeout=self.metadata_timeout)
        return self.http.token_field(step, doc, "access_token"), _expiry(doc)

    def _imds(self, client_id: str) -> tuple[str, float | None]:
        base = (self.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or IMDS).rstrip("/")
        step = "managed identity (IMDS)"
        query = {"api-version": "2018-02-01", "resource": RESOURCE}
        if client_id:
            query["client_id"] = client_id
        url = f"{base}{IMDS_PATH}?{urllib.parse.urlencode(query)}"
        for attempt in range(3):  # IMDS asks clients to back off on 404/410/429/5xx
            try:
                doc = self.http.json(step, "GET", url, headers={"Metadata": "true"},
                                     timeout=self.metadata_timeout, secure=False)
                return self.http.token_field(step, doc, "access_token"), _expiry(doc)
            except TokenError as error:
                if attempt == 2 or not error.reason.startswith(IMDS_RETRY_STATUSES):
                    raise
                # Cut short by the run's deadline or a cancel: the next try then fails for that reason.
                pause(IMDS_BACKOFF.delay(attempt), self.deadline)
        raise AssertionError("unreachable")


def _assertion_fields(client_id: str, assertion: str) -> dict[str, str]:
    return {"client_id": client_id, "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}

