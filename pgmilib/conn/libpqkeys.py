"""The libpq keys a connection string may carry besides host, port, user and the TLS files.

Every key pgmi accepts is either honoured or refused; none is dropped in silence:

* honoured with their own field in ConnParams: `passfile`, `sslcrl`, `require_auth`,
  `target_session_attrs` (value rules here; used by conn/pgpass.py, conn/tls.py,
  conn/wire.py and conn/connect.py);
* honoured because the value asks for what pgmi always does (`sslsni=1`, `keepalives=1`,
  `gssencmode=prefer`, ...); any other value of those keys is refused;
* the original's driver (pgx) tuning knobs, which change how fast but never what is done:
  accepted and not sent to the server;
* everything else libpq knows but pgmi cannot do: refused with a config error naming the key.

Keys libpq does not know go to the server as start-up parameters (`search_path`, `options`),
so the server itself refuses a misspelt one.
"""

from __future__ import annotations

from collections.abc import Mapping

from pgmilib.errors import ConfigError, go_quote
from pgmilib.records import record

#: require_auth methods libpq knows; pgmi's driver cannot do GSSAPI or SSPI.
REQUIRE_AUTH_METHODS = ("password", "md5", "scram-sha-256", "none", "gss", "sspi")
_UNSUPPORTED_AUTH = ("gss", "sspi")

#: target_session_attrs values, as libpq spells them.
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")

#: Keys whose only accepted values are what pgmi does anyway (value -> nothing to do).
_DEFAULT_ONLY: Mapping[str, tuple[str, ...]] = {
    "sslsni": ("1",),  # the server name is always sent for a host name
    "keepalives": ("1",),  # TCP keepalives are always on
    "gssencmode": ("disable", "prefer"),  # never GSS-encrypted; prefer falls back to TLS/plain
    "sslnegotiation": ("postgres",),  # the SSLRequest handshake
    "sslcompression": ("0",),  # OpenSSL 1.1+ never compresses
    "load_balance_hosts": ("disable",),  # one host: nothing to balance
    "channel_binding": ("prefer", "disable"),  # prefer: used when the server offers it over TLS
}

#: The original's driver (pgx) tuning keys: how fast, never what is done. Not sent to the server.
_PGX_TUNING = frozenset({"statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode",
                         "min_read_buffer_size"})

#: libpq keys pgmi cannot honour, and why (the config error says so).
_REFUSED: Mapping[str, str] = {
    "hostaddr": "name the address in host instead",
    "krbsrvname": "Kerberos/GSSAPI authentication is not supported",
    "krbspn": "Kerberos/GSSAPI authentication is not supported",
    "gsslib": "Kerberos/GSSAPI authentication is not supported",
    "gssdelegation": "Kerberos/GSSAPI authentication is not supported",
    "sslcrldir": "name one file with sslcrl instead",
    "sslcertmode": "a client certificate is sent exactly when sslcert and sslkey are given",
    "ssl_min_protocol_version": "the TLS version range is Python's default (TLS 1.2 or later)",
    "ssl_max_protocol_version": "the TLS version range is Python's default (TLS 1.2 or later)",
    "requirepeer": "not supported",
    "replication": "a deploy never opens a replication connection",
    "keepalives_idle": "the system's TCP keepalive timing applies",
    "keepalives_interval": "the system's TCP keepalive timing applies",
    "keepalives_count": "the system's TCP keepalive timing applies",
    "tcp_user_timeout": "use connect_timeout and --timeout",
    "sslkeylogfile": "not supported",
    "min_protocol_version": "not supported",
    "max_protocol_version": "not supported",
    # Keys the driver sets itself from other fields; as extra keys they would be dropped.
    "user": "name the user with the form's own user key (user=, Username=, the URI's user@)",
    "database": "name the database with the form's own key (dbname=, Database=, the URI's path)",
    "application_name": "name it with application_name=, ApplicationName= or the URI's ?application_name=",
}


def is_client_only(key: str) -> bool:
    """True for a key pgmi reads itself (never a server start-up parameter)."""
    k = key.lower()
    return (k in _DEFAULT_ONLY or k in _PGX_TUNING or k in _REFUSED or k.startswith("pool_")
            or k in ("passfile", "sslcrl", "require_auth", "target_session_attrs", "service", "servicefile"))


def check_options(options: Mapping[str, str], origin: str) -> None:
    """ConfigError (exit 10) for an extra key pgmi cannot honour, naming the key and `origin`."""
    for raw_key, value in options.items():
        key = raw_key.lower()
        if key in _REFUSED:
            raise ConfigError(f"connection key {go_quote(raw_key)} in {origin} is not supported: {_REFUSED[key]}")
        allowed = _DEFAULT_ONLY.get(key)
        if allowed is not None and value.strip().lower() not in allowed:
            raise ConfigError(f"connection key {raw_key}={go_quote(value)} in {origin} is not supported "
                              f"(pgmi accepts only {' or '.join(allowed)})")


def unused_keys(options: Mapping[str, str]) -> list[str]:
    """The original driver's tuning keys present: accepted, and named in the verbose output."""
    return sorted(k for k in options if k.lower() in _PGX_TUNING or k.lower().startswith("pool_"))


@record(frozen=True)
class RequireAuth:
    """libpq's require_auth: the methods listed are the only ones allowed, or with `!` the ones refused."""

    methods: frozenset[str]
    negated: bool = False
    text: str = ""

    def refusal(self, method: str) -> str | None:
        """Why `method` (what the server asked for; `none` for no exchange) is refused, or None."""
        if (method in self.methods) != self.negated:
            return None
        return f"require_auth={self.text} does not allow {method} authentication, which the server asked for"


def parse_require_auth(value: str, origin: str) -> RequireAuth | None:
    """The require_auth list (None when empty). libpq's rules: comma-separated, all methods or
    all `!`-negated, no repeats; gss/sspi are refused because pgmi cannot do them."""
    text = value.strip()
    if not text:
        return None
    items = [item.strip() for item in text.split(",")]
    negated = items[0].startswith("!")
    methods: set[str] = set()
    for item in items:
        if item.startswith("!") != negated:
            raise ConfigError(f"invalid require_auth {go_quote(value)} in {origin}: negated and plain methods "
                              "cannot be mixed")
        name = item[1:] if negated else item
        if name not in REQUIRE_AUTH_METHODS:
            raise ConfigError(f"invalid require_auth method {go_quote(name)} in {origin} "
                              f"(valid: {', '.join(REQUIRE_AUTH_METHODS)})")
        if name in _UNSUPPORTED_AUTH and not negated:
            raise ConfigError(f"require_auth method {go_quote(name)} in {origin} is not supported "
                              "(pgmi cannot do GSSAPI or SSPI authentication)")
        if name in methods:
            raise ConfigError(f"invalid require_auth {go_quote(value)} in {origin}: {name} is listed twice")
        methods.add(name)
    return RequireAuth(frozenset(methods), negated, text)


def check_target_session_attrs(value: str, origin: str) -> str:
    """`value` if libpq knows it ('' stays ''), else ConfigError naming `origin`."""
    if value and value not in TARGET_SESSION_ATTRS:
        raise ConfigError(f"invalid target_session_attrs {go_quote(value)} in {origin} "
                          f"(valid: {', '.join(TARGET_SESSION_ATTRS)})")
    return value


def session_matches(wanted: str, read_only: bool, in_recovery: bool, *, standby_pass: bool = True) -> bool:
    """Does a server in this state satisfy target_session_attrs `wanted`?

    prefer-standby takes a standby on the first pass over the hosts and anything on the second
    (`standby_pass=False`), as libpq does.
    """
    if wanted in ("", "any"):
        return True
    if wanted == "read-write":
        return not read_only
    if wanted == "read-only":
        return read_only
    if wanted == "primary":
        return not in_recovery
    if wanted == "standby":
        return in_recovery
    if wanted == "prefer-standby":
        return in_recovery or not standby_pass
    raise ValueError(wanted)
