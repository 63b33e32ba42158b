"""ConnParams: everything needed to open one connection, and the value rules shared by every source.

The port range, the connect_timeout grammar and the sslmode list are defined here once;
connection strings, the PG* environment, pgmi.yaml and the flags all check through them.
"""

from __future__ import annotations

import os

from pgmilib.conn import SSLMODES
from pgmilib.errors import ConfigError, go_quote
from pgmilib.records import field, fields, record

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

AUTH_METHODS = ("azure", "aws", "google")
DEFAULT_PORT = 5432
#: The host when nothing names one and no local socket is found (conn.resolve.default_host), and the wizard's.
DEFAULT_HOST = "localhost"
#: Where a database is created or dropped from, when nothing names another (libpq tools do the same).
DEFAULT_MAINTENANCE_DB = "postgres"
DEFAULT_APP_NAME = "pgmi"


@record
class ConnParams:
    """Everything needed to open a connection. Secrets never show in repr()."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    user: str = ""
    password: str | None = None
    database: str = ""  # the target database ('' if none was named)
    maintenance_database: str = DEFAULT_MAINTENANCE_DB
    sslmode: str = ""  # '' = not given (resolve() turns it into 'prefer')
    sslcert: str = ""
    sslkey: str = ""
    sslrootcert: str = ""
    sslpassword: str | None = None
    connect_timeout: float | None = None
    # More (host, port) pairs to try, in order, after host:port (libpq's `host=a,b` list).
    fallback_hosts: list[tuple[str, int]] = field(default_factory=list)
    passfile: str = ""  # the password file for this connection ('' = $PGPASSFILE or the default)
    sslcrl: str = ""  # certificate revocation list checked under a verifying sslmode
    require_auth: str = ""  # libpq's list of allowed (or `!`-refused) authentication methods
    target_session_attrs: str = ""  # '' = any
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

    @property
    def socket_path(self) -> str:
        """The server's unix socket for a socket-directory host (libpq's `<dir>/.s.PGSQL.<port>`)."""
        return socket_path(self.host, self.port)


def socket_path(directory: str, port: int) -> str:
    """libpq's unix socket of the server on `port` in `directory`."""
    return os.path.join(directory, f".s.PGSQL.{port}")



def parse_port(value: Any, prefix: str) -> int:
    """An integer 1..65535, else ConfigError `<prefix> "<value>" (must be 1..65535)`."""
    text = str(value).strip()
    try:
        if not text.isascii():  # int() would also take non-ASCII digits
            raise ValueError(text)
        port = int(text)
    except ValueError:
        raise ConfigError(f"{prefix} {go_quote(text)}: not an integer") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{prefix} {go_quote(text)}: must be between 1 and 65535")
    return port


def parse_timeout(value: str, message: str) -> float | None:
    """Non-negative integer seconds; 0 means no per-attempt limit (None)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):  # int() would accept '٣' and '²'-free Unicode digits
        raise ConfigError(f"{message}: must be a non-negative integer (seconds)")
    seconds = int(text)
    return float(seconds) if seconds > 0 else None



def check_sslmode(value: str, origin: str) -> str:
    """`value` if it is one of SSLMODES (or empty); ConfigError naming `origin` otherwise."""
    if value and value not in SSLMODES:
        raise ConfigError(f"invalid {origin} {go_quote(value)} (valid: {', '.join(SSLMODES)})")
    return value


def check_client_cert_pair(params: ConnParams) -> None:
    """A client certificate needs both files: sslcert and sslkey, or neither (ConfigError, exit 10)."""
    if bool(params.sslcert) != bool(params.sslkey):
        missing = "sslkey" if params.sslcert else "sslcert"
        raise ConfigError(f'both "sslcert" and "sslkey" are required for a client certificate ({missing} is missing)')
