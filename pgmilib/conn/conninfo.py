"""Connection strings, PG* environment, service file, .pgpass and precedence -> ConnParams.

Pure: no pg8000 import and no network. `resolve()` (conn/resolve.py) applies the precedence
rules step by step so each rule can be read (and tested) on its own; the result is a
structured `ConnParams` handed to `connect.open_connection` without ever being re-encoded
as a string (so tokens and passwords are never URL-escaped twice).

Accepted string forms: `postgres[ql]://` URIs, ADO.NET `Key=Value;...` and libpq
`key=value key=value`. The original rejected the libpq form; we accept it because it is
what `psql`, `pg_dump` and most tooling print, and nothing it could mean is ambiguous.
"""


from __future__ import annotations

from pgmilib.conn import SSLMODES
from pgmilib.conn.libpqkeys import check_target_session_attrs, parse_require_auth
from pgmilib.conn.params import (
    DEFAULT_HOST,
    DEFAULT_MAINTENANCE_DB,
    DEFAULT_PORT,
    ConnParams,
    parse_port,
    parse_timeout,
)
from pgmilib.errors import ConfigError, go_quote
from pgmilib.redact import register_secret


def _bad(reason: str) -> ConfigError:
    return ConfigError(f"invalid connection string: {reason}")


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------

# Keys each form understands (lower-cased) -> field; everything else goes to `options`.
_LIBPQ_KEYS = {
    "host": "host", "port": "port", "dbname": "database", "user": "user", "password": "password",
    "sslmode": "sslmode", "sslcert": "sslcert", "sslkey": "sslkey", "sslrootcert": "sslrootcert",
    "sslpassword": "sslpassword", "application_name": "application_name",
    "connect_timeout": "connect_timeout", "fallback_application_name": "fallback_application_name",
    "passfile": "passfile", "sslcrl": "sslcrl", "require_auth": "require_auth",
    "target_session_attrs": "target_session_attrs",
}
_URI_KEYS = {**_LIBPQ_KEYS, "applicationname": "application_name", "connecttimeout": "connect_timeout"}
_ADO_KEYS = {
    "host": "host", "server": "host", "port": "port", "database": "database", "initial catalog": "database",
    "username": "user", "user id": "user", "uid": "user", "password": "password", "pwd": "password",
    "sslmode": "sslmode", "ssl mode": "sslmode", "sslcert": "sslcert", "ssl cert": "sslcert",
    "sslkey": "sslkey", "ssl key": "sslkey", "sslrootcert": "sslrootcert", "ssl root cert": "sslrootcert",
    "sslpassword": "sslpassword", "ssl password": "sslpassword", "application name": "application_name",
    "applicationname": "application_name", "timeout": "connect_timeout", "connect timeout": "connect_timeout",
    "connecttimeout": "connect_timeout", "passfile": "passfile", "sslcrl": "sslcrl", "require_auth": "require_auth",
    "target_session_attrs": "target_session_attrs", "target session attributes": "target_session_attrs",
}
_KEYS = {"uri": _URI_KEYS, "libpq": _LIBPQ_KEYS, "ado": _ADO_KEYS}


def parse_connection_string(text: str) -> ConnParams:
    """Parse a URI, ADO.NET or libpq key=value string. ConfigError names what is wrong.

    Defaults: host localhost, port 5432, database postgres. Error messages never quote the
    password (nor the whole string, which may contain it).
    """
    text = (text or "").strip()
    if not text:
        raise _bad("connection string is empty")
    lowered = text.lower()
    if lowered.startswith(("postgresql://", "postgres://")):
        pairs = _parse_uri(text)
        form = "uri"
    elif "=" in text and _has_unquoted(text, ";"):
        pairs = _parse_ado(text)
        form = "ado"
    elif "=" in text:
        pairs = _parse_keyword_value(text)
        form = "libpq"
    else:
        raise _bad("unrecognized connection string format (expected postgresql://..., "
                   "key=value pairs, or Key=Value;... pairs)")
    return params_from_pairs(pairs, form)


def params_from_pairs(pairs: list[tuple[str, str]], form: str) -> ConnParams:
    params = ConnParams(host=DEFAULT_HOST, port=DEFAULT_PORT, database=DEFAULT_MAINTENANCE_DB)
    seen: set[str] = set()
    fallback_app = ""
    lists: dict[str, list[str]] = {}  # a host or port list (libpq's multi-host form)
    for raw_key, value in pairs:
        key = raw_key.strip().lower()
        if not key:
            continue
        canon = _KEYS[form].get(key)
        if canon is None:
            if raw_key not in params.options:
                params.options[raw_key.strip()] = value
            continue
        if canon in seen and form == "uri":
            continue  # repeated URI query keys: the first value counts
        seen.add(canon)
        if canon == "fallback_application_name":
            fallback_app = value
            continue
        if canon in ("host", "port") and "," in value:
            lists[canon] = [item.strip() for item in value.split(",")]
            continue
        lists.pop(canon, None)
        _set_field(params, canon, value, form)
    if not params.application_name and fallback_app:
        params.application_name = fallback_app
    if lists:
        set_hosts(params, lists.get("host") or [params.host], lists.get("port") or [str(params.port)],
                  "invalid connection string")
    return params


def set_hosts(params: ConnParams, hosts: list[str], ports: list[str], origin: str) -> None:
    """libpq's host list: tried in order; one port for all of them, or one per host ('' = 5432).
    `origin` starts an error message ("invalid connection string", "invalid $PGPORT value")."""
    hosts = [host.strip() for host in hosts]
    ports = [port.strip() for port in ports]
    if len(ports) == 1:
        ports = ports * len(hosts)
    elif len(ports) != len(hosts):
        raise ConfigError(f"{origin}: could not match {len(ports)} port numbers to {len(hosts)} hosts")
    pairs = [(host or DEFAULT_HOST, parse_port(port, f"{origin}: invalid port") if port else DEFAULT_PORT)
             for host, port in zip(hosts, ports)]
    (params.host, params.port), params.fallback_hosts = pairs[0], pairs[1:]
    params.given.update(("host", "port", "fallback_hosts"))


def _set_field(params: ConnParams, canon: str, value: str, form: str) -> None:
    if canon == "host":
        params.host = value or DEFAULT_HOST
    elif canon == "port":
        params.port = parse_port(value, "invalid connection string: invalid port")
    elif canon == "database":
        params.database = value or DEFAULT_MAINTENANCE_DB
    elif canon == "user":
        params.user = value
    elif canon == "password":
        params.password = value
        register_secret(value)
    elif canon == "sslmode":
        mode = value.strip().lower() if form == "ado" else value.strip()
        if mode not in SSLMODES:
            raise _bad(f"invalid sslmode {go_quote(value)} (valid: {', '.join(SSLMODES)})")
        params.sslmode = mode
    elif canon == "sslpassword":
        params.sslpassword = value
        register_secret(value)
    elif canon == "require_auth":
        parse_require_auth(value, "the connection string")
        params.require_auth = value.strip()
    elif canon == "target_session_attrs":
        mode = value.strip().lower() if form == "ado" else value.strip()
        params.target_session_attrs = check_target_session_attrs(mode, "the connection string")
    elif canon == "connect_timeout":
        params.connect_timeout = parse_timeout(value, f"invalid connection string: invalid connect_timeout value {go_quote(value)}")
    else:
        setattr(params, canon, value)
    params.given.add(canon)




def _has_unquoted(text: str, char: str) -> bool:
    """True if `char` occurs outside single/double quotes (ADO.NET vs libpq detection)."""
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quote == "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == char:
            return True
    return False


def _pct_decode(text: str, what: str) -> str:
    """Strict percent-decoding: a '%' not followed by two hex digits is an error."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        b = raw[i]
        if b == 0x25:  # '%'
            hexpair = raw[i + 1:i + 3]
            try:
                if len(hexpair) != 2:
                    raise ValueError
                out.append(int(hexpair, 16))
            except ValueError:
                raise _bad(f"malformed URI: invalid percent-encoding in the {what}") from None
            i += 3
        else:
            out.append(b)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(f"malformed URI: the {what} is not valid UTF-8 after percent-decoding") from None


def _parse_uri(text: str) -> list[tuple[str, str]]:
    rest = text.split("://", 1)[1]
    rest = rest.split("#", 1)[0]
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    pairs: list[tuple[str, str]] = []
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        pairs.append(("user", _pct_decode(user, "user name")))
        if colon:
            pairs.append(("password", _pct_decode(password, "password")))
    else:
        hostport = netloc
    split = [_split_hostport(item) for item in hostport.split(",")]  # h1:5432,h2:5433 (libpq's host list)
    host = ",".join(_pct_decode(h, "host") for h, _ in split)
    port = ",".join(p for _, p in split) if any(p for _, p in split) else ""
    if host.strip(","):
        pairs.append(("host", host))
    if port:
        pairs.append(("port", port))
    if slash and path:
        pairs.append(("dbname", _pct_decode(path, "database name")))
    query_pairs: list[tuple[str, str]] = []
    for item in query.split("&") if query else ():
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise _bad(f"malformed URI: query parameter {go_quote(_pct_decode(key, 'query'))} has no '='")
        what = "password" if key.lower() in ("password", "sslpassword") else "query"
        query_pairs.append((_pct_decode(key, "query"), _pct_decode(value, what)))
    # Query parameters override the URI components (libpq); repeated query keys: first wins.
    first: dict[str, tuple[str, str]] = {}
    for key, value in query_pairs:
        first.setdefault(key.lower(), (key, value))
    overridden = {_URI_KEYS[k] for k in first if _URI_KEYS.get(k) in ("host", "port", "database", "user", "password")}
    pairs = [(k, v) for k, v in pairs if _URI_KEYS[k] not in overridden]
    return pairs + list(first.values())


def _split_hostport(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _bad("malformed URI: unterminated '[' in the host")
        host, after = hostport[1:end], hostport[end + 1:]
        if after and not after.startswith(":"):
            raise _bad("malformed URI: unexpected text after the IPv6 address")
        return host, after[1:]
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if ":" in host:
        raise _bad("malformed URI: IPv6 addresses must be written in brackets")
    return host, port


def _parse_ado(text: str) -> list[tuple[str, str]]:
    """ADO.NET tokenizer: `Key=Value;` with '...' or "..." values (doubled quote = literal)."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n;":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        semi = text.find(";", i)
        if eq < 0 or (0 <= semi < eq):  # a token without '=' is skipped
            i = n if semi < 0 else semi + 1
            continue
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "'\"":
            quote = text[i]
            i += 1
            value_chars = []
            while i < n:
                if text[i] == quote:
                    if i + 1 < n and text[i + 1] == quote:
                        value_chars.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                value_chars.append(text[i])
                i += 1
            else:
                raise _bad(f"unterminated quoted value for key {go_quote(key)}")
            value = "".join(value_chars)
            semi = text.find(";", i)
            i = n if semi < 0 else semi + 1  # text after the closing quote is discarded
        else:
            semi = text.find(";", i)
            end = n if semi < 0 else semi
            value = text[i:end].strip()
            i = end + 1
        if key:
            pairs.append((key, value))
    return pairs


def _parse_keyword_value(text: str) -> list[tuple[str, str]]:
    """libpq `key = value` pairs; values may be '...' quoted with backslash escapes."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            raise _bad(f"missing \"=\" after {go_quote(key)} in the key=value string")
        i += 1
        while i < n and text[i].isspace():
            i += 1
        chars: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise _bad(f"unterminated quoted value for key {go_quote(key)}")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                elif ch == "'":
                    i += 1
                    break
                else:
                    chars.append(ch)
                    i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                else:
                    chars.append(text[i])
                    i += 1
        pairs.append((key, "".join(chars)))
    return pairs


