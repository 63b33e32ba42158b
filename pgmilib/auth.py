"""Password providers: one small class per authentication method.

`connect.open_connection` asks the provider of `params.auth_method` for the password at the
start of **every** connection attempt (connections.md §11.1: cloud tokens are fetched anew
per attempt, so a retry never reuses an expired token). A provider may also take over the
transport (`open_socket`, for Cloud SQL's certificate tunnel) and decide whether connect
retries apply.

Only standard password authentication is implemented in this build; the cloud providers
exist as named seams that fail with a clear message (exit 10, unsupported auth) until
their token flows (connections.md §11.2-§11.4, stdlib HTTP only) are filled in.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import Marker, PgmiError
from .redact import register_secret

if TYPE_CHECKING:
    from .connstr import ConnParams


class AuthProvider:
    """Base: how a connection attempt gets its secret (and, rarely, its socket)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # human name for messages, e.g. "AWS IAM"
    retries: ClassVar[bool] = True  # connect retries (§6) apply to this method
    needs_pgpass: ClassVar[bool] = False  # fall back to .pgpass when password() gives None

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def password(self, params: ConnParams, database: str) -> str | None:
        """The password (or token) for one attempt against `database`; registered as a secret."""
        raise NotImplementedError

    def open_socket(self, params: ConnParams, timeout: float | None) -> socket.socket | None:
        """A ready transport replacing host/port (None: connect normally)."""
        return None


class PasswordAuth(AuthProvider):
    """Standard: the resolved password (string or $PGPASSWORD), else .pgpass per connection."""

    name = "password"
    label = "password"
    needs_pgpass = True

    def password(self, params: ConnParams, database: str) -> str | None:
        register_secret(params.password)
        return params.password


class _NotYet(AuthProvider):
    """A cloud method whose token flow is not part of this build yet."""

    def password(self, params: ConnParams, database: str) -> str | None:
        raise PgmiError(f"{self.label} authentication is not available in this build yet; "
                        "use password authentication (connection string, $PGPASSWORD or ~/.pgpass)",
                        markers=[Marker.UNSUPPORTED_AUTH])


class AzureAuth(_NotYet):
    """Entra ID token as the password (client secret, workload identity, managed identity, az CLI)."""

    name = "azure"
    label = "Azure Entra ID"


class AwsIamAuth(_NotYet):
    """RDS IAM: a SigV4-presigned auth token (15 min) as the password, re-signed per attempt."""

    name = "aws"
    label = "AWS IAM"


class GoogleAuth(_NotYet):
    """Cloud SQL IAM: TLS 1.3 tunnel to port 3307 with an ephemeral client certificate; no retries."""

    name = "google"
    label = "Google Cloud SQL IAM"
    retries = False


PROVIDERS: dict[str, type[AuthProvider]] = {
    cls.name: cls for cls in (PasswordAuth, AzureAuth, AwsIamAuth, GoogleAuth)
}


def provider_for(params: ConnParams, environ: Mapping[str, str] | None = None) -> AuthProvider:
    """The provider of `params.auth_method`; an unknown method is a config error (exit 10)."""
    cls = PROVIDERS.get(params.auth_method or "password")
    if cls is None:
        raise PgmiError(f"unsupported authentication method {params.auth_method!r} "
                        f"(valid: {', '.join(PROVIDERS)})", markers=[Marker.UNSUPPORTED_AUTH])
    return cls(environ)


def password_for(params: ConnParams, database: str | None = None, environ: Mapping[str, str] | None = None,
                 out: Any = None) -> str | None:
    """The password for one connection attempt: provider first, then .pgpass where it applies."""
    provider = provider_for(params, environ)
    db = params.database if database is None else database
    secret = provider.password(params, db)
    if secret is None and provider.needs_pgpass:
        from .connstr import pgpass_lookup

        secret = pgpass_lookup(params.host, params.port, db, params.user, provider.environ, out)
    return secret
