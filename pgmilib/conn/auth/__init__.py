"""Authentication providers, one module each; this file is the registry.

Adding a method = one module with an `AuthProvider` subclass + one line in `PROVIDERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from pgmilib.errors import Marker, PgmiError

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

    from pgmilib.conn.auth.base import AuthProvider
    from pgmilib.conn.deadline import Deadline
    from pgmilib.conn.params import ConnParams


class _Providers(Mapping[str, "type[AuthProvider]"]):
    """name -> provider class, each module imported on first use.

    The cloud providers pull in http.client, email, xml and json (~40 ms of imports); a
    password deploy never needs them, so only the provider a connection asks for is loaded.
    """

    def __init__(self, where: dict[str, str]) -> None:
        self._where = where

    def __getitem__(self, name: str) -> type[AuthProvider]:
        module, _, attr = self._where[name].partition(":")
        return getattr(importlib.import_module(module), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


PROVIDERS: Mapping[str, type[AuthProvider]] = _Providers({
    "password": "pgmilib.conn.auth.password:PasswordAuth",
    "azure": "pgmilib.conn.auth.azure:AzureAuth",
    "aws": "pgmilib.conn.auth.aws:AwsIamAuth",
    "google": "pgmilib.conn.auth.google:GoogleAuth",
})


def provider_for(params: ConnParams, environ: Mapping[str, str] | None = None,
                 deadline: Deadline | None = None) -> AuthProvider:
    """The provider of `params.auth_method`; an unknown method is a config error (exit 10)."""
    cls = PROVIDERS.get(params.auth_method or "password")
    if cls is None:
        raise PgmiError(f"unsupported authentication method {params.auth_method!r} "
                        f"(valid: {', '.join(PROVIDERS)})", markers=[Marker.UNSUPPORTED_AUTH])
    return cls(environ, deadline)


def password_for(params: ConnParams, database: str | None = None, environ: Mapping[str, str] | None = None,
                 out: Any = None, deadline: Deadline | None = None) -> str | None:
    """The password for one connection attempt: provider first, then .pgpass where it applies."""
    provider = provider_for(params, environ, deadline)
    provider.out = out
    db = params.database if database is None else database
    secret = provider.password(params, db)
    if secret is None and provider.needs_pgpass:
        from pgmilib.conn.pgpass import pgpass_lookup

        secret = pgpass_lookup(params.host, params.port, db, params.user, provider.environ, out, params.passfile)
    return secret
