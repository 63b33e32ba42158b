"""Authentication providers, one module each; this file is the registry.

Adding a method = one module with an `AuthProvider` subclass + one line in `PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pgmilib.conn.auth.aws import AwsIamAuth
from pgmilib.conn.auth.azure import AzureAuth
from pgmilib.conn.auth.base import AuthProvider
from pgmilib.conn.auth.google import GoogleAuth
from pgmilib.conn.auth.password import PasswordAuth
from pgmilib.errors import Marker, PgmiError

if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams

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
    provider.out = out
    db = params.database if database is None else database
    secret = provider.password(params, db)
    if secret is None and provider.needs_pgpass:
        from pgmilib.conn.pgpass import pgpass_lookup

        secret = pgpass_lookup(params.host, params.port, db, params.user, provider.environ, out)
    return secret
