"""The `pgmi deploy` connection-wizard trigger, ready to call.

The deploy pipeline calls `maybe_run_deploy_wizard` after loading pgmi.yaml and before
resolving the connection. It does nothing unless no connection source exists at all, the
session is interactive and `--force` is absent; then it asks, merges the answers into the
flags that are still empty (so they beat the environment, as flags do), offers to save the
connection to pgmi.yaml and the password to .pgpass, and returns the result. The password
stays in memory: the caller uses it only when nothing else supplied one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pgmilib import records
from pgmilib.conn.resolve import ConnectionFlags
from pgmilib.errors import ApprovalDenied
from pgmilib.output import Output, is_interactive
from pgmilib.scaffold.connection_wizard import WizardResult, run_connection_wizard
from pgmilib.scaffold.prompts import Cancelled, Prompter

#: The wizard's keys that fill a ConnectionFlags field of the same name when it is still empty.
_FILLED = ("host", "port", "username", "database", "sslmode", "sslcert", "sslkey", "sslrootcert",
           "azure_tenant_id", "azure_client_id", "aws_region", "google_instance", "maintenance_database")


def no_connection_source(flags: ConnectionFlags, environ: Mapping[str, str],
                         yaml_connection: Mapping[str, object] | None) -> bool:
    """True when nothing names a server or database: no --connection/--host/-d, no
    connection-string variable, not both PGHOST and PGDATABASE, no host/database in pgmi.yaml."""
    if flags.connection or flags.host or flags.database:
        return False
    if environ.get("PGMI_CONNECTION_STRING") or environ.get("DATABASE_URL"):
        return False
    if environ.get("PGHOST") and environ.get("PGDATABASE"):
        return False
    yaml_connection = yaml_connection or {}
    return not (yaml_connection.get("host") or yaml_connection.get("database"))


def merge_into_flags(flags: ConnectionFlags, connection: Mapping[str, object]) -> ConnectionFlags:
    """`flags` with the wizard's answers in the fields still empty; a cloud auth method sets its
    enable flag. `flags` itself is not changed."""
    changes: dict[str, object] = {}
    for key in _FILLED:
        value = connection.get(key)
        if value not in (None, "", 0) and not getattr(flags, key):
            changes[key] = int(value) if key == "port" else str(value)
    method = connection.get("auth_method")
    if method in ("azure", "aws", "google"):
        changes[str(method)] = True
    return records.replace(flags, **changes)


def maybe_run_deploy_wizard(flags: ConnectionFlags, environ: Mapping[str, str],
                            yaml_connection: Mapping[str, object] | None, project_dir: str | Path, out: Output,
                            prompter: Prompter | None = None, *,
                            force: bool = False) -> tuple[ConnectionFlags, WizardResult] | None:
    """Run the wizard when nothing names a server, on a terminal, without --force: the flags
    with its answers merged in, and what it learned (the password stays in the result).
    None when it does not apply. Cancel -> exit 12."""
    if force or not is_interactive() or not no_connection_source(flags, environ, yaml_connection):
        return None
    p = prompter or Prompter()
    out.info("\nNo database connection configured.\n")
    try:
        result = run_connection_wizard(p)
    except (Cancelled, KeyboardInterrupt):  # Ctrl-C may land between two prompts
        raise ApprovalDenied("approval denied: connection setup cancelled") from None
    merged = merge_into_flags(flags, result.connection)
    if result.tested and p.confirm("Save these connection settings to pgmi.yaml?"):
        from pgmilib.config import write_project_config

        try:
            path = write_project_config(project_dir, result.connection)
        except OSError as error:
            out.warn(f"failed to save config: {error}")
        else:
            out.info(f"Saved to {path}")
    from pgmilib.scaffold.persist import offer_pgpass

    offer_pgpass(result, p, out)
    return merged, result
