"""Connection strings, PG* environment, service file, .pgpass and precedence -> ConnParams.

Pure: no pg8000 import and no network. `resolve()` implements the precedence algorithm of
config.md §6 step by step so each rule can be read (and tested) on its own; the result is a
structured `ConnParams` handed to `connect.open_connection` without ever being re-encoded
as a string (so tokens and passwords are never URL-escaped twice).

Accepted string forms: `postgres[ql]://` URIs, ADO.NET `Key=Value;...` and libpq
`key=value key=value`. The original rejected the libpq form; we accept it because it is
what `psql`, `pg_dump` and most tooling print, and nothing it could mean is ambiguous.
"""

from __future__ import annotations

import getpass
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pgmilib.errors import ConfigError, go_quote
from pgmilib.redact import register_secret

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
AUTH_METHODS = ("azure", "aws", "google")
DEFAULT_PORT = 5432
DEFAULT_APP_NAME = "pgmi"


@dataclass
class ConnParams:
    """Everything needed to open a connection. Secrets never show in repr()."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    user: str = ""
    password: str | None = None
    database: str = ""  # the target database ('' if none was named)
    maintenance_database: str = "postgres"
    sslmode: str = ""  # '' = not given (resolve() turns it into 'prefer')
    sslcert: str = ""
    sslkey: str = ""
    sslrootcert: str = ""
    sslpassword: str | None = None
    connect_timeout: float | None = None
    application_name: str = ""
    options: dict[str, str] = field(default_factory=dict)  # extra parameters (startup params)
    auth_method: str = "password"
    azure_tenant_id: str = ""
    azure_client_id: str = ""
    aws_region: str = ""
    google_instance: str = ""
    source: str = ""
    # Names of the fields a parsed string set explicitly (the rest are defaults); precedence
    # rules need to tell "the string said postgres" from "the string named no database".
    given: set[str] = field(default_factory=set, repr=False, compare=False)

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name in ("password", "sslpassword"):
                shown = "[redacted]" if value else "unset"
                parts.append(f"{f.name}={shown}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"ConnParams({', '.join(parts)})"

    __str__ = __repr__

    @property
    def is_unix_socket(self) -> bool:
        return self.host.startswith("/")


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
}
_URI_KEYS = {**_LIBPQ_KEYS, "applicationname": "application_name", "connecttimeout": "connect_timeout"}
_ADO_KEYS = {
    "host": "host", "server": "host", "port": "port", "database": "database", "initial catalog": "database",
    "username": "user", "user id": "user", "uid": "user", "password": "password", "pwd": "password",
    "sslmode": "sslmode", "ssl mode": "sslmode", "sslcert": "sslcert", "ssl cert": "sslcert",
    "sslkey": "sslkey", "ssl key": "sslkey", "sslrootcert": "sslrootcert", "ssl root cert": "sslrootcert",
    "sslpassword": "sslpassword", "ssl password": "sslpassword", "application name": "application_name",
    "applicationname": "application_name", "timeout": "connect_timeout", "connect timeout": "connect_timeout",
    "connecttimeout": "connect_timeout",
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
    return _params_from_pairs(pairs, form)


def _params_from_pairs(pairs: list[tuple[str, str]], form: str) -> ConnParams:
    params = ConnParams(host="localhost", port=DEFAULT_PORT, database="postgres")
    seen: set[str] = set()
    fallback_app = ""
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
        _set_field(params, canon, value, form)
    if not params.application_name and fallback_app:
        params.application_name = fallback_app
    return params


def _set_field(params: ConnParams, canon: str, value: str, form: str) -> None:
    if canon == "host":
        if "," in value:
            raise _bad(f"multiple hosts are not supported ({go_quote(value)}); name one host")
        params.host = value or "localhost"
    elif canon == "port":
        if "," in value:
            raise _bad(f"multiple ports are not supported ({go_quote(value)})")
        params.port = parse_port(value, "invalid connection string: invalid port")
    elif canon == "database":
        params.database = value or "postgres"
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
    elif canon == "connect_timeout":
        params.connect_timeout = _parse_timeout(value, f"invalid connection string: invalid connect_timeout value {go_quote(value)}")
    else:
        setattr(params, canon, value)
    params.given.add(canon)


def parse_port(value: Any, prefix: str) -> int:
    """An integer 1..65535, else ConfigError `<prefix> "<value>" (must be 1..65535)`."""
    text = str(value).strip()
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{prefix} {go_quote(text)}: not an integer") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{prefix} {go_quote(text)}: must be between 1 and 65535")
    return port


def _parse_timeout(value: str, message: str) -> float | None:
    """Non-negative integer seconds; 0 means no per-attempt limit (None)."""
    text = value.strip()
    if not text.isdigit():
        raise ConfigError(f"{message}: must be a non-negative integer (seconds)")
    seconds = int(text)
    return float(seconds) if seconds > 0 else None


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
    host, port = _split_hostport(hostport)
    if host:
        pairs.append(("host", _pct_decode(host, "host")))
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
    if "," in hostport:
        raise _bad("multiple hosts are not supported; name one host")
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


# ---------------------------------------------------------------------------------------
# Service file (PGSERVICE / service=)
# ---------------------------------------------------------------------------------------


def service_lookup(name: str, environ: Mapping[str, str]) -> ConnParams:
    """The entries of service `name`: $PGSERVICEFILE or ~/.pg_service.conf, then the system file.

    Returned as ConnParams with `given` listing the keys the service set. An unknown service
    is a ConfigError, as in libpq (a typo must not silently connect elsewhere).
    """
    import configparser

    candidates = [environ.get("PGSERVICEFILE") or os.path.join(_home(environ), ".pg_service.conf")]
    sysconf = environ.get("PGSYSCONFDIR")
    candidates.append(os.path.join(sysconf, "pg_service.conf") if sysconf else "/etc/postgresql-common/pg_service.conf")
    for path in candidates:
        if not os.path.isfile(path):
            continue
        parser = configparser.RawConfigParser(strict=False, interpolation=None, comment_prefixes=("#",),
                                              delimiters=("=",))
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read service file {path}: {type(error).__name__}") from None
        if parser.has_section(name):
            return _params_from_pairs(list(parser.items(name)), "libpq")
    raise ConfigError(f"definition of service {go_quote(name)} not found (looked in {', '.join(candidates)})")


def _merge_service(params: ConnParams, service: ConnParams) -> None:
    """Fill the fields `params` did not set from a service entry (explicit values win)."""
    for name in service.given:
        if name not in params.given:
            setattr(params, name, getattr(service, name))
            params.given.add(name)
    for key, value in service.options.items():
        params.options.setdefault(key, value)


# ---------------------------------------------------------------------------------------
# .pgpass
# ---------------------------------------------------------------------------------------


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def _pgpass_fields(line: str) -> list[str]:
    """Split a .pgpass line at unescaped ':'; `\\:` and `\\\\` are literal."""
    out, cur = [], []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if ch == ":" and len(out) < 4:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def pgpass_lookup(host: str, port: int, database: str, user: str, environ: Mapping[str, str],
                  out: Any = None) -> str | None:
    """Password for this connection from $PGPASSFILE or ~/.pgpass, libpq rules; None if no match.

    First line whose four fields each equal the value or are `*` wins; a Unix-socket host
    matches `localhost`. Like libpq (and unlike the original, which followed pgx), a file
    readable by group or others is ignored with a warning: a password file anyone can read
    is a leak, and silently using it would hide that.
    """
    path = environ.get("PGPASSFILE") or os.path.join(_home(environ), ".pgpass")
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        if out is not None:
            out.warn(f"password file {go_quote(path)} is not a plain file; ignoring it")
        return None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        if out is not None:
            out.warn(f"password file {go_quote(path)} has group or world access; permissions should be "
                     "u=rw (0600) or less; ignoring it")
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    match_host = "localhost" if (not host or host.startswith("/")) else host
    wanted = (match_host, str(port), database, user)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = _pgpass_fields(line)
        if len(parts) != 5:
            continue
        if all(p == "*" or p == w for p, w in zip(parts[:4], wanted)):
            register_secret(parts[4])
            return parts[4]
    return None


# ---------------------------------------------------------------------------------------
# Precedence (config.md §6)
# ---------------------------------------------------------------------------------------


def _flag(flags: Any, name: str, default: Any = "") -> Any:
    value = getattr(flags, name, default)
    return default if value is None else value


def _yaml(yaml_connection: Mapping[str, object] | None, key: str) -> str:
    if not yaml_connection:
        return ""
    value = yaml_connection.get(key)
    return "" if value is None else str(value)


def _pick_string(flags: Any, environ: Mapping[str, str]) -> tuple[str, str]:
    """Step B: --connection, then $PGMI_CONNECTION_STRING, then $DATABASE_URL."""
    for text, source in ((_flag(flags, "connection"), "--connection"),
                         (environ.get("PGMI_CONNECTION_STRING", ""), "$PGMI_CONNECTION_STRING"),
                         (environ.get("DATABASE_URL", ""), "$DATABASE_URL")):
        if text:
            return text, source
    return "", ""


def _check_cloud_exclusive(flags: Any) -> None:
    groups = (
        (_flag(flags, "azure", False), _flag(flags, "azure_tenant_id"), _flag(flags, "azure_client_id")),
        (_flag(flags, "aws", False), _flag(flags, "aws_region")),
        (_flag(flags, "google", False), _flag(flags, "google_instance")),
    )
    if sum(1 for group in groups if any(group)) > 1:
        raise ConfigError("cannot use multiple cloud authentication methods; choose one of --azure, --aws, or --google")


def _check_conflict(flags: Any, source: str) -> None:
    given = [name for name, attr in (("--host", "host"), ("--port", "port"), ("--username", "username"),
                                     ("--sslmode", "sslmode")) if _flag(flags, attr, "")]
    if not given:
        return
    origin = "--connection" if source == "--connection" else f"a connection string from {source}"
    error = ConfigError(f"cannot combine {origin} with {', '.join(given)}; use either a connection string, "
                        "granular flags (--host, --port, --username, --sslmode), or environment variables (PGHOST...)")
    if source != "--connection":
        error.trailer.append(f"hint: unset {source[1:]} to use the flags, or put these values into the string")
    raise error


def _flag_port(flags: Any) -> int:
    port = _flag(flags, "port", 0) or 0
    if port == 0:
        return 0
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"invalid --port flag {port}: must be between 1 and 65535")
    return int(port)


def _os_user(environ: Mapping[str, str]) -> str:
    name = environ.get("USER") or environ.get("USERNAME")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): pg8000 still needs some user
        return "postgres"


def resolve(flags: Any, environ: Mapping[str, str], yaml_connection: Mapping[str, object] | None) -> ConnParams:
    """Apply config.md §6 (steps A-G) to the deploy flags, the environment and pgmi.yaml.

    Deliberate fixes over the original, each noted in the spec as a defect:
    * sslmode from any source, port ranges and sslcert-without-sslkey are validated here
      (exit 10) instead of failing later inside the driver (exit 1);
    * on the granular path, pgmi.yaml `maintenance_database` is honoured even when the
      target came from $PGDATABASE/pgmi.yaml (the original forced `postgres`);
    * AWS region and Google instance are carried through to the connector.
    Additions: PGSERVICE (granular path; service values rank between flags and PG* env,
    as in libpq) and `service=` inside a string (fills what the string left unset).
    """
    _check_cloud_exclusive(flags)
    text, source = _pick_string(flags, environ)
    if text:
        _check_conflict(flags, source)
        params = _resolve_string(text, source, environ)
    else:
        params = _resolve_granular(flags, environ, yaml_connection)
    _resolve_cloud(params, flags, environ, yaml_connection)
    _resolve_tls(params, flags, environ, yaml_connection, from_string=bool(text))
    _resolve_databases(params, flags, yaml_connection, from_string=bool(text))
    return params


def _resolve_string(text: str, source: str, environ: Mapping[str, str]) -> ConnParams:
    try:
        params = parse_connection_string(text)
    except ConfigError as error:
        if source == "--connection":
            raise
        prefix = getattr(ConfigError, "PREFIX", "")
        reason = error.message.removeprefix(prefix).replace("invalid connection string",
                                                            f"invalid connection string in {source}", 1)
        raise ConfigError(reason) from None
    service = params.options.pop("service", "")
    if service:
        _merge_service(params, service_lookup(service, environ))
    params.source = source
    if not params.user:
        params.user = environ.get("PGUSER") or _os_user(environ)
    if params.password is None and environ.get("PGPASSWORD"):
        params.password = environ["PGPASSWORD"]
        register_secret(params.password)
    if not params.sslmode:
        params.sslmode = _check_sslmode(environ.get("PGSSLMODE", ""), "$PGSSLMODE") or "prefer"
        if environ.get("PGSSLMODE"):
            params.given.add("sslmode")  # explicit: cloud methods keep it (conn/auth/cloud.py)
    if not params.application_name:
        params.application_name = DEFAULT_APP_NAME
    if "connect_timeout" not in params.given and environ.get("PGCONNECT_TIMEOUT"):
        params.connect_timeout = _env_timeout(environ)
    # Step G input: the string's database (postgres when it named none) is the resolved db.
    params.maintenance_database = params.database if "database" in params.given else "postgres"
    return params


def _env_timeout(environ: Mapping[str, str]) -> float | None:
    value = environ.get("PGCONNECT_TIMEOUT", "")
    return _parse_timeout(value, f"invalid $PGCONNECT_TIMEOUT value {go_quote(value)}")


def _check_sslmode(value: str, origin: str) -> str:
    if value and value not in SSLMODES:
        raise ConfigError(f"invalid {origin} {go_quote(value)} (valid: {', '.join(SSLMODES)})")
    return value


def _resolve_granular(flags: Any, environ: Mapping[str, str], yaml_connection: Mapping[str, object] | None
                      ) -> ConnParams:
    service_name = environ.get("PGSERVICE", "")
    svc = service_lookup(service_name, environ) if service_name else ConnParams()
    svc_given = svc.given if service_name else set()

    def pick(flag_value: Any, svc_field: str, env_key: str, yaml_key: str) -> tuple[Any, str]:
        if flag_value:
            return flag_value, "flag"
        if svc_field in svc_given:
            return getattr(svc, svc_field), "service"
        if environ.get(env_key):
            return environ[env_key], "env"
        value = _yaml(yaml_connection, yaml_key)
        if value and value != "0":
            return value, "yaml"
        return "", ""

    params = ConnParams(source="flags")
    host, _ = pick(_flag(flags, "host"), "host", "PGHOST", "host")
    params.host = host or "localhost"
    if host:
        params.given.add("host")  # explicit: Google connects here instead of resolving the instance

    port, origin = pick(_flag_port(flags), "port", "PGPORT", "port")
    if origin == "env":
        params.port = parse_port(port, "invalid $PGPORT value")
    elif origin == "yaml":
        params.port = parse_port(port, "invalid pgmi.yaml connection.port")
    else:
        params.port = int(port) if port else DEFAULT_PORT

    user, _ = pick(_flag(flags, "username"), "user", "PGUSER", "username")
    params.user = user or _os_user(environ)

    if svc.password is not None and service_name:
        params.password = svc.password
    elif environ.get("PGPASSWORD"):
        params.password = environ["PGPASSWORD"]
    register_secret(params.password)

    database, _ = pick("", "database", "PGDATABASE", "database")
    params.database = database

    sslmode, origin = pick(_flag(flags, "sslmode"), "sslmode", "PGSSLMODE", "sslmode")
    label = {"flag": "--sslmode", "env": "$PGSSLMODE", "yaml": "pgmi.yaml connection.sslmode",
             "service": f"sslmode in service {service_name}"}.get(origin, "sslmode")
    params.sslmode = _check_sslmode(sslmode, label) or "prefer"
    if origin:
        params.given.add("sslmode")  # explicit: cloud methods keep it (conn/auth/cloud.py)

    if "application_name" in svc_given:
        params.application_name = svc.application_name
    else:
        params.application_name = environ.get("PGAPPNAME") or DEFAULT_APP_NAME

    if "connect_timeout" in svc_given:
        params.connect_timeout = svc.connect_timeout
    elif environ.get("PGCONNECT_TIMEOUT"):
        params.connect_timeout = _env_timeout(environ)

    for name in ("sslcert", "sslkey", "sslrootcert", "sslpassword"):
        if name in svc_given:  # service TLS settings rank like a string's (step F)
            setattr(params, name, getattr(svc, name))
            params.given.add(name)
    params.options.update(svc.options)
    params.maintenance_database = _yaml(yaml_connection, "maintenance_database") or "postgres"
    return params


def _resolve_cloud(params: ConnParams, flags: Any, environ: Mapping[str, str],
                   yaml_connection: Mapping[str, object] | None) -> None:
    """Step E: Azure, then AWS, then Google; the last enabled one wins."""
    yaml_method = _yaml(yaml_connection, "auth_method")
    params.auth_method = "password"
    if _flag(flags, "azure", False) or yaml_method == "azure":
        params.auth_method = "azure"
        params.azure_tenant_id = (_flag(flags, "azure_tenant_id") or environ.get("AZURE_TENANT_ID")
                                  or _yaml(yaml_connection, "azure_tenant_id"))
        params.azure_client_id = (_flag(flags, "azure_client_id") or environ.get("AZURE_CLIENT_ID")
                                  or _yaml(yaml_connection, "azure_client_id"))
    if _flag(flags, "aws", False) or yaml_method == "aws":
        params.auth_method = "aws"
        params.aws_region = (_flag(flags, "aws_region") or environ.get("AWS_REGION")
                             or environ.get("AWS_DEFAULT_REGION") or _yaml(yaml_connection, "aws_region"))
        if not params.aws_region:
            raise ConfigError("AWS IAM authentication requires a region: --aws-region, $AWS_REGION, "
                              "$AWS_DEFAULT_REGION or pgmi.yaml connection.aws_region")
    if _flag(flags, "google", False) or yaml_method == "google":
        params.auth_method = "google"
        params.google_instance = _flag(flags, "google_instance") or _yaml(yaml_connection, "google_instance")
        if not params.google_instance:
            raise ConfigError("Google Cloud SQL IAM authentication requires --google-instance "
                              "(project:region:instance) or pgmi.yaml connection.google_instance")


def _resolve_tls(params: ConnParams, flags: Any, environ: Mapping[str, str],
                 yaml_connection: Mapping[str, object] | None, *, from_string: bool) -> None:
    """Step F: flag > string (or service) > $PGSSL* > pgmi.yaml, per file; sslpassword has no flag/yaml."""
    for name, env_key in (("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY"), ("sslrootcert", "PGSSLROOTCERT")):
        value = _flag(flags, name) or (getattr(params, name) if name in params.given else "")
        value = value or environ.get(env_key, "") or _yaml(yaml_connection, name)
        setattr(params, name, value)
    if params.sslpassword is None and environ.get("PGSSLPASSWORD"):
        params.sslpassword = environ["PGSSLPASSWORD"]
        register_secret(params.sslpassword)
    if bool(params.sslcert) != bool(params.sslkey):
        missing = "sslkey" if params.sslcert else "sslcert"
        raise ConfigError(f'both "sslcert" and "sslkey" are required for a client certificate ({missing} is missing)')


def _resolve_databases(params: ConnParams, flags: Any, yaml_connection: Mapping[str, object] | None, *,
                       from_string: bool) -> None:
    """Step G: the target (-d wins) and the maintenance database."""
    flag_db = _flag(flags, "database")
    resolved = params.database
    target = flag_db or resolved
    if not target:
        error = ConfigError("database name is required")
        error.trailer.extend([
            "  - pass -d <name> (or --database <name>)",
            "  - or use a connection string with a database name (--connection postgresql://host/<name>)",
            "  - or set PGDATABASE (or connection.database in pgmi.yaml)",
        ])
        raise error
    maintenance = params.maintenance_database or "postgres"
    yaml_maintenance = _yaml(yaml_connection, "maintenance_database")
    if not flag_db and resolved and resolved != "postgres":
        # The resolved database is the target here, so it cannot also be the maintenance db.
        # Granular path: honour pgmi.yaml maintenance_database (fix of the original's quirk).
        maintenance = yaml_maintenance if (not from_string and yaml_maintenance) else "postgres"
    params.database = target
    params.maintenance_database = maintenance
