"""What the three cloud providers share: TLS defaults for token logins, warnings, token bookkeeping."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pgmilib import records
from pgmilib.conn.auth.base import AuthProvider
from pgmilib.conn.auth.http import METADATA_TIMEOUT, TOKEN_TIMEOUT, CloudHttp
from pgmilib.errors import ConfigError
from pgmilib.redact import register_secret

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pgmilib.conn.deadline import Deadline
    from pgmilib.conn.params import ConnParams

WEAK_SSLMODES = ("disable", "allow", "prefer")
_warned: set[tuple[str, ...]] = set()  # one warning per process and subject, not one per connection


def format_duration(seconds: float) -> str:
    """Go-style short duration: 4m59s, 1h0m0s, 12s."""
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    return f"{m}m{sec}s" if m else f"{sec}s"


def warn_once(out: Any, key: tuple[str, ...], message: str) -> None:
    if out is None or key in _warned:
        return
    _warned.add(key)
    out.warn(message)


class CloudProvider(AuthProvider):
    """A token-as-password provider: TLS with verification by default, fresh token per attempt."""

    retries = True

    def __init__(self, environ: Mapping[str, str] | None = None, deadline: Deadline | None = None) -> None:
        super().__init__(environ, deadline)
        self.http = CloudHttp(self.label, self.environ, deadline=deadline)
        self.metadata_timeout = METADATA_TIMEOUT
        self.token_timeout = TOKEN_TIMEOUT

    def prepare(self, params: ConnParams, out: Any = None) -> ConnParams:
        self.out = out
        if params.is_unix_socket:
            raise ConfigError(f"{self.label} authentication needs a TCP host (got the socket directory "
                              f"{params.host!r}); pass --host")
        params = cloud_tls_default(params)
        mode = params.sslmode
        if mode in WEAK_SSLMODES or (mode == "require" and not params.sslrootcert):
            warn_once(out, ("sslmode", self.name, params.host, mode),
                      f"sslmode {mode} with {self.label}: the token is sent without verifying the server "
                      f"certificate of {params.host}; use --sslmode verify-full (with --sslrootcert for a "
                      "private CA bundle)")
        return params

    def issued(self, token: str, expires_at: float | None) -> str:
        """Register a fresh token as a secret and warn when it is about to expire."""
        register_secret(token)
        if expires_at is not None:
            left = expires_at - time.time()
            if left < 300:
                warn_once(self.out, ("expiry", self.name, token[-16:]),
                          f"{self.label} token expires in {format_duration(left)}")
        return token


def cloud_tls_default(params: ConnParams) -> ConnParams:
    """A cloud login without an explicit sslmode uses verify-full instead of libpq's `prefer`."""
    if params.sslmode in ("", "prefer") and "sslmode" not in params.given:
        return records.replace(params, sslmode="verify-full")
    return params
