"""The connection wizard as line prompts: provider, auth, form, test connection.

Used by `pgmi config`, the init wizard and (when nothing names a database) `pgmi deploy`.
The result is a mapping with the keys of pgmi.yaml's `connection:` block; the password, if
one was typed, is kept apart (memory only) and registered for redaction at once.
"""

from __future__ import annotations

from collections.abc import Callable

from pgmilib.conn.params import DEFAULT_HOST, DEFAULT_MAINTENANCE_DB, DEFAULT_PORT
from pgmilib.records import field, record
from pgmilib.redact import redact, register_secret
from pgmilib.scaffold.prompts import Cancelled, Prompter

PROVIDERS = (
    ("local", "Local / On-Premises"),
    ("azure", "Azure Database for PostgreSQL"),
    ("aws", "Amazon RDS / Aurora"),
    ("google", "Google Cloud SQL"),
    ("other", "Other / Connection string"),
)
CLOUD_AUTH = {
    "azure": ("azure", "Microsoft Entra ID token"),
    "aws": ("aws", "IAM authentication token"),
    "google": ("google", "Cloud SQL IAM"),
}


@record
class WizardResult:
    connection: dict[str, object]  # pgmi.yaml `connection:` keys
    password: str | None = None  # never written to pgmi.yaml
    tested: bool = False
    notes: list[str] = field(default_factory=list)


def _password_form(p: Prompter, provider: str, prev: dict) -> tuple[dict, str | None]:
    host_default = prev.get("host") or (DEFAULT_HOST if provider == "local" else "")
    conn = {
        "host": p.text("Host", str(host_default), required=True),
        "port": p.number("Port", int(prev.get("port") or DEFAULT_PORT)),
        "database": p.text("Database", str(prev.get("database") or ""), required=True),
        "maintenance_database": p.text("Maintenance database", str(prev.get("maintenance_database") or DEFAULT_MAINTENANCE_DB)),
        "username": p.text("Username", str(prev.get("username") or "postgres")),
        "sslmode": "prefer" if provider == "local" else "require",
    }
    password = p.secret("Password (empty: use $PGPASSWORD or .pgpass)") or None
    register_secret(password)
    return conn, password


def _cloud_form(p: Prompter, provider: str, prev: dict) -> dict:
    conn: dict[str, object] = {"auth_method": provider, "sslmode": "require", "port": DEFAULT_PORT}
    if provider == "azure":
        conn["host"] = p.text("Server (e.g. myserver.postgres.database.azure.com)", str(prev.get("host") or ""),
                              required=True)
        conn["database"] = p.text("Database", str(prev.get("database") or ""), required=True)
        conn["username"] = p.text("Username (Entra principal)", str(prev.get("username") or ""))
    elif provider == "aws":
        conn["host"] = p.text("Host", str(prev.get("host") or ""), required=True)
        conn["port"] = p.number("Port", int(prev.get("port") or DEFAULT_PORT))
        conn["database"] = p.text("Database", str(prev.get("database") or ""), required=True)
        conn["username"] = p.text("Username", str(prev.get("username") or ""))
        conn["aws_region"] = p.text("Region (e.g. eu-west-1)", str(prev.get("aws_region") or ""))
    else:
        conn.pop("port")
        conn["google_instance"] = p.text("Instance (project:region:instance)", str(prev.get("google_instance") or ""),
                                         required=True,
                                         validate=lambda v: None if v.count(":") == 2 else
                                         "Instance must look like project:region:instance.")
        conn["database"] = p.text("Database", str(prev.get("database") or ""), required=True)
        conn["username"] = p.text("Username (e.g. user@project.iam)", str(prev.get("username") or ""))
    return conn


#: What a pasted connection string keeps in pgmi.yaml (the password goes to .pgpass, if anywhere).
_KEPT_FROM_STRING = {"host", "port", "database", "user", "password", "sslmode", "maintenance_database",
                     "sslcert", "sslkey", "sslrootcert"}


def _string_form(p: Prompter) -> tuple[dict, str | None]:
    from pgmilib.conn.conninfo import parse_connection_string
    from pgmilib.errors import PgmiError

    while True:
        text = p.text("Connection string (URI or key=value)", required=True)
        try:
            params = parse_connection_string(text)
        except PgmiError as error:
            p.say(f"  {redact(str(error))}")
            continue
        register_secret(params.password)
        conn = {"host": params.host, "port": params.port, "database": params.database,
                "username": params.user, "sslmode": params.sslmode,
                "maintenance_database": params.maintenance_database if "maintenance_database" in params.given
                else "", "sslcert": params.sslcert, "sslkey": params.sslkey, "sslrootcert": params.sslrootcert}
        if not params.database:
            p.say("  The connection string must name a database.")
            continue
        dropped = sorted((params.given - _KEPT_FROM_STRING) | set(params.options))
        if dropped:  # pgmi.yaml has no place for them: say so rather than lose them silently
            p.say(f"  Not kept in pgmi.yaml: {', '.join(dropped)}; set them in $PGMI_CONNECTION_STRING or"
                  " the PG* variables when you deploy.")
        return conn, params.password


def test_connection(conn: dict, password: str | None) -> str:
    """Connect to the maintenance database (the target may not exist yet) within 10 s.

    Returns the server's `version()` text up to the first comma; raises PgmiError on failure.
    """
    from pgmilib.conn.connect import Deadline, open_connection
    from pgmilib.conn.params import ConnParams

    params = ConnParams(host=str(conn.get("host") or DEFAULT_HOST), port=int(conn.get("port") or DEFAULT_PORT),
                        user=str(conn.get("username") or ""), password=password,
                        database=str(conn.get("database") or ""),
                        maintenance_database=str(conn.get("maintenance_database") or DEFAULT_MAINTENANCE_DB),
                        sslmode=str(conn.get("sslmode") or ""), sslcert=str(conn.get("sslcert") or ""),
                        sslkey=str(conn.get("sslkey") or ""), sslrootcert=str(conn.get("sslrootcert") or ""),
                        connect_timeout=10)
    if not params.user:
        import getpass

        params.user = getpass.getuser()
    link = open_connection(params, params.maintenance_database, deadline=Deadline(10), retry=False)
    try:
        return str(link.run("SELECT version()")[0][0]).split(",")[0]
    finally:
        link.close()


def run_connection_wizard(p: Prompter, *, tester: Callable[[dict, str | None], str] = test_connection
                          ) -> WizardResult:
    """Ask for a connection until it works (or the user gives up: raises Cancelled)."""
    provider = p.choose("Where is your PostgreSQL server?", PROVIDERS)
    method = "password"
    if provider in CLOUD_AUTH:
        method = p.choose("Authentication:", [("password", "Password"), CLOUD_AUTH[provider]])
    prev: dict = {}
    while True:
        password = None
        if provider == "other":
            conn, password = _string_form(p)
        elif method == "password":
            conn, password = _password_form(p, provider, prev)
        else:
            conn = _cloud_form(p, provider, prev)
            p.say("No connection test for cloud authentication: the token is fetched at deploy time.")
            return WizardResult(conn, None, tested=True)
        target = conn.get("maintenance_database") or DEFAULT_MAINTENANCE_DB
        p.say(f"Testing connection to {conn['host']}:{conn['port']} (database {target})...")
        try:
            version = tester(conn, password)
        except Exception as error:  # noqa: BLE001 -- any failure goes back to the form
            p.say(f"Connection failed: {redact(str(error))}")
            if not p.confirm("Edit the settings and try again?"):
                raise Cancelled() from None
            prev = conn
            continue
        p.say(f"Connected: {version}")
        return WizardResult(conn, password, tested=True)
