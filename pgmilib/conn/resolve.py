"""Which connection a deploy uses: flags, connection strings, PG* environment, service file, pgmi.yaml.

`resolve()` implements the precedence rules (flags > connection string > PG* env / service >
pgmi.yaml > defaults) step by step, so each rule
can be read (and tested) on its own. Its inputs are explicit: a typed `ConnectionFlags`,
an environment *mapping* (the caller's copy, with the project's .env merged in) and the
pgmi.yaml `connection` block. It never reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pgmilib.conn.conninfo import parse_connection_string, set_hosts
from pgmilib.conn.libpqkeys import check_options, check_target_session_attrs, parse_require_auth
from pgmilib.conn.params import (
    DEFAULT_APP_NAME,
    DEFAULT_HOST,
    DEFAULT_MAINTENANCE_DB,
    DEFAULT_PORT,
    ConnParams,
    check_client_cert_pair,
    check_sslmode,
    parse_port,
    parse_timeout,
    socket_path,
)
from pgmilib.conn.service import merge_service, service_lookup
from pgmilib.errors import ConfigError, go_quote
from pgmilib.records import record
from pgmilib.redact import register_secret

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class ConnectionFlags:
    """The connection flags of `pgmi deploy` as typed values ('' / 0 / False = not given)."""

    connection: str = ""
    host: str = ""
    port: int = 0
    username: str = ""
    database: str = ""
    sslmode: str = ""
    sslcert: str = ""
    sslkey: str = ""
    sslrootcert: str = ""
    azure: bool = False
    azure_tenant_id: str = ""
    azure_client_id: str = ""
    aws: bool = False
    aws_region: str = ""
    google: bool = False
    google_instance: str = ""
    #: No CLI flag; API callers such as the MCP `deploy` tool may name one.
    maintenance_database: str = ""


def _yaml(yaml_connection: Mapping[str, object] | None, key: str) -> str:
    if not yaml_connection:
        return ""
    value = yaml_connection.get(key)
    return "" if value is None else str(value)


def _pick_string(flags: ConnectionFlags, environ: Mapping[str, str]) -> tuple[str, str]:
    """Step B: --connection, then $PGMI_CONNECTION_STRING, then $DATABASE_URL."""
    for text, source in ((flags.connection, "--connection"),
                         (environ.get("PGMI_CONNECTION_STRING", ""), "$PGMI_CONNECTION_STRING"),
                         (environ.get("DATABASE_URL", ""), "$DATABASE_URL")):
        if text:
            return text, source
    return "", ""


def _check_cloud_exclusive(flags: ConnectionFlags) -> None:
    groups = (
        (flags.azure, flags.azure_tenant_id, flags.azure_client_id),
        (flags.aws, flags.aws_region),
        (flags.google, flags.google_instance),
    )
    if sum(1 for group in groups if any(group)) > 1:
        raise ConfigError("cannot use multiple cloud authentication methods; choose one of --azure, --aws, or --google")


def _check_conflict(flags: ConnectionFlags, source: str) -> None:
    given = [name for name, attr in (("--host", "host"), ("--port", "port"), ("--username", "username"),
                                     ("--sslmode", "sslmode")) if getattr(flags, attr)]
    if not given:
        return
    origin = "--connection" if source == "--connection" else f"a connection string from {source}"
    error = ConfigError(f"cannot combine {origin} with {', '.join(given)}; use either a connection string, "
                        "granular flags (--host, --port, --username, --sslmode), or environment variables (PGHOST...)")
    if source != "--connection":
        error.trailer.append(f"hint: unset {source[1:]} to use the flags, or put these values into the string")
    raise error


def _flag_port(flags: ConnectionFlags) -> int:
    return parse_port(flags.port, "invalid --port flag") if flags.port else 0


def _os_user(environ: Mapping[str, str]) -> str:
    name = environ.get("USER") or environ.get("USERNAME")
    if name:
        return name
    try:
        import getpass  # here: only when no user is named anywhere

        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): pg8000 still needs some user
        return "postgres"


def resolve(flags: ConnectionFlags, environ: Mapping[str, str], yaml_connection: Mapping[str, object] | None) -> ConnParams:
    """Apply the precedence rules (steps A-G below) to the deploy flags, the environment and pgmi.yaml.

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
    _resolve_client_keys(params, environ, source or (f"service {environ['PGSERVICE']}" if environ.get("PGSERVICE")
                                                     else "the environment"))
    return params


#: The libpq keys with their own ConnParams field and variable (string or service > variable).
_CLIENT_FIELDS = {"passfile": "PGPASSFILE", "sslcrl": "PGSSLCRL", "require_auth": "PGREQUIREAUTH",
                  "target_session_attrs": "PGTARGETSESSIONATTRS"}


def _resolve_client_keys(params: ConnParams, environ: Mapping[str, str], origin: str) -> None:
    """passfile, sslcrl, require_auth, target_session_attrs from their variables when no string or
    service named them; every value checked, and every other extra key honoured or refused here."""
    for name, env_key in _CLIENT_FIELDS.items():
        if name not in params.given and environ.get(env_key):
            setattr(params, name, environ[env_key].strip())
            where = f"${env_key}"
        else:
            where = origin
        if name == "require_auth":
            parse_require_auth(params.require_auth, where)
        elif name == "target_session_attrs":
            check_target_session_attrs(params.target_session_attrs, where)
    check_options(params.options, origin)


#: Where local servers put their unix socket (Debian/Ubuntu, then upstream's default).
SOCKET_DIRS = ("/var/run/postgresql", "/tmp")


def default_host(port: int, socket_dirs: tuple[str, ...] | None = None) -> str:
    """The host when no flag, service, variable or pgmi.yaml named one: like libpq, the local
    server's unix socket when there is one (so `sudo -u postgres pgmi deploy . -d app` uses peer
    authentication as psql does), else localhost over TCP."""
    if os.name == "posix":
        for directory in SOCKET_DIRS if socket_dirs is None else socket_dirs:
            if os.path.exists(socket_path(directory, port)):
                return directory
    return DEFAULT_HOST


def _resolve_string(text: str, source: str, environ: Mapping[str, str]) -> ConnParams:
    try:
        params = parse_connection_string(text)
    except ConfigError as error:
        if source == "--connection":
            raise
        prefix = ConfigError.PREFIX
        reason = error.message.removeprefix(prefix).replace("invalid connection string",
                                                            f"invalid connection string in {source}", 1)
        raise ConfigError(reason) from None
    service = params.options.pop("service", "")
    servicefile = params.options.pop("servicefile", "")
    if service:
        merge_service(params, service_lookup(service, {**environ, "PGSERVICEFILE": servicefile} if servicefile
                                             else environ))
    params.source = source
    if not params.user:
        params.user = environ.get("PGUSER") or _os_user(environ)
    if params.password is None and environ.get("PGPASSWORD"):
        params.password = environ["PGPASSWORD"]
        register_secret(params.password)
    if not params.sslmode:
        params.sslmode = check_sslmode(environ.get("PGSSLMODE", ""), "$PGSSLMODE") or "prefer"
        if environ.get("PGSSLMODE"):
            params.given.add("sslmode")  # explicit: cloud methods keep it (conn/auth/cloud.py)
    if not params.application_name:
        params.application_name = DEFAULT_APP_NAME
    if "connect_timeout" not in params.given and environ.get("PGCONNECT_TIMEOUT"):
        params.connect_timeout = _env_timeout(environ)
    # Step G input: the string's database (postgres when it named none) is the resolved db.
    params.maintenance_database = params.database if "database" in params.given else DEFAULT_MAINTENANCE_DB
    return params


def _env_timeout(environ: Mapping[str, str]) -> float | None:
    value = environ.get("PGCONNECT_TIMEOUT", "")
    return parse_timeout(value, f"invalid $PGCONNECT_TIMEOUT value {go_quote(value)}")


def _resolve_granular(flags: ConnectionFlags, environ: Mapping[str, str], yaml_connection: Mapping[str, object] | None
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
    port, origin = pick(_flag_port(flags), "port", "PGPORT", "port")
    if "," in str(port):
        pass  # a port list: checked with the host list below
    elif origin == "env":
        params.port = parse_port(port, "invalid $PGPORT value")
    elif origin == "yaml":
        params.port = parse_port(port, "invalid pgmi.yaml connection.port")
    else:
        params.port = int(port) if port else DEFAULT_PORT

    host, host_origin = pick(flags.host, "host", "PGHOST", "host")
    if host_origin == "service" and svc.fallback_hosts:
        params.host, params.fallback_hosts = svc.host, list(svc.fallback_hosts)
    elif "," in str(host) or "," in str(port):  # libpq's host list, e.g. PGHOST=db1,db2
        set_hosts(params, str(host or DEFAULT_HOST).split(","), str(port or DEFAULT_PORT).split(","),
                  "invalid host/port list")
    else:
        params.host = host or default_host(params.port)
    if host:
        params.given.add("host")  # explicit: Google connects here instead of resolving the instance

    user, _ = pick(flags.username, "user", "PGUSER", "username")
    params.user = user or _os_user(environ)

    if svc.password is not None and service_name:
        params.password = svc.password
    elif environ.get("PGPASSWORD"):
        params.password = environ["PGPASSWORD"]
    register_secret(params.password)

    database, _ = pick("", "database", "PGDATABASE", "database")
    params.database = database

    sslmode, origin = pick(flags.sslmode, "sslmode", "PGSSLMODE", "sslmode")
    label = {"flag": "--sslmode", "env": "$PGSSLMODE", "yaml": "pgmi.yaml connection.sslmode",
             "service": f"sslmode in service {service_name}"}.get(origin, "sslmode")
    params.sslmode = check_sslmode(sslmode, label) or "prefer"
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

    for name in ("sslcert", "sslkey", "sslrootcert", "sslpassword", *_CLIENT_FIELDS):
        if name in svc_given:  # service TLS settings rank like a string's (step F)
            setattr(params, name, getattr(svc, name))
            params.given.add(name)
    params.options.update(svc.options)
    params.maintenance_database = _yaml(yaml_connection, "maintenance_database") or DEFAULT_MAINTENANCE_DB
    return params


def _resolve_cloud(params: ConnParams, flags: ConnectionFlags, environ: Mapping[str, str],
                   yaml_connection: Mapping[str, object] | None) -> None:
    """Step E: Azure, then AWS, then Google; the last enabled one wins."""
    yaml_method = _yaml(yaml_connection, "auth_method")
    params.auth_method = "password"
    if flags.azure or yaml_method == "azure":
        params.auth_method = "azure"
        params.azure_tenant_id = (flags.azure_tenant_id or environ.get("AZURE_TENANT_ID")
                                  or _yaml(yaml_connection, "azure_tenant_id"))
        params.azure_client_id = (flags.azure_client_id or environ.get("AZURE_CLIENT_ID")
                                  or _yaml(yaml_connection, "azure_client_id"))
    if flags.aws or yaml_method == "aws":
        params.auth_method = "aws"
        params.aws_region = (flags.aws_region or environ.get("AWS_REGION")
                             or environ.get("AWS_DEFAULT_REGION") or _yaml(yaml_connection, "aws_region"))
        if not params.aws_region:
            raise ConfigError("AWS IAM authentication requires a region: --aws-region, $AWS_REGION, "
                              "$AWS_DEFAULT_REGION or pgmi.yaml connection.aws_region")
    if flags.google or yaml_method == "google":
        params.auth_method = "google"
        params.google_instance = flags.google_instance or _yaml(yaml_connection, "google_instance")
        if not params.google_instance:
            raise ConfigError("Google Cloud SQL IAM authentication requires --google-instance "
                              "(project:region:instance) or pgmi.yaml connection.google_instance")


def _resolve_tls(params: ConnParams, flags: ConnectionFlags, environ: Mapping[str, str],
                 yaml_connection: Mapping[str, object] | None, *, from_string: bool) -> None:
    """Step F: flag > string (or service) > $PGSSL* > pgmi.yaml, per file; sslpassword has no flag/yaml."""
    for name, env_key in (("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY"), ("sslrootcert", "PGSSLROOTCERT")):
        value = getattr(flags, name) or (getattr(params, name) if name in params.given else "")
        value = value or environ.get(env_key, "") or _yaml(yaml_connection, name)
        setattr(params, name, value)
    if params.sslpassword is None and environ.get("PGSSLPASSWORD"):
        params.sslpassword = environ["PGSSLPASSWORD"]
        register_secret(params.sslpassword)
    check_client_cert_pair(params)


def _resolve_databases(params: ConnParams, flags: ConnectionFlags, yaml_connection: Mapping[str, object] | None, *,
                       from_string: bool) -> None:
    """Step G: the target (-d wins) and the maintenance database."""
    flag_db = flags.database
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
    maintenance = params.maintenance_database or DEFAULT_MAINTENANCE_DB
    yaml_maintenance = _yaml(yaml_connection, "maintenance_database")
    if not flag_db and resolved and resolved != DEFAULT_MAINTENANCE_DB:
        # The resolved database is the target here, so it cannot also be the maintenance db.
        # Granular path: honour pgmi.yaml maintenance_database (fix of the original's quirk).
        maintenance = yaml_maintenance if (not from_string and yaml_maintenance) else DEFAULT_MAINTENANCE_DB
    params.database = target
    params.maintenance_database = flags.maintenance_database or maintenance
