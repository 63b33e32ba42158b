"""The `pgmi deploy` connection-wizard trigger, ready to call.

The deploy pipeline calls `maybe_run_deploy_wizard` after loading pgmi.yaml and before
resolving the connection. It does nothing unless no connection source exists at all, the
session is interactive and `--force` is absent; then it asks, merges the answers into the
flags that are still empty (so they beat the environment, as flags do), offers to save the
connection to pgmi.yaml and the password to .pgpass, and returns the result. The password
stays in memory: the caller uses it only when nothing else supplied one.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from pgmilib.errors import ApprovalDenied
from pgmilib.output import Output, is_interactive
from pgmilib.scaffold.connection_wizard import WizardResult, run_connection_wizard
from pgmilib.scaffold.prompts import Cancelled, Prompter

_FLAG_FOR = {"host": "host", "port": "port", "username": "username", "database": "database", "sslmode": "sslmode",
             "sslcert": "sslcert", "sslkey": "sslkey", "sslrootcert": "sslrootcert",
             "azure_tenant_id": "azure_tenant_id", "azure_client_id": "azure_client_id",
             "aws_region": "aws_region", "google_instance": "google_instance"}


def no_connection_source(args: argparse.Namespace, environ: Mapping[str, str],
                         yaml_connection: Mapping[str, object] | None) -> bool:
    """True when nothing names a server or database: no --connection/--host/-d, no
    connection-string variable, not both PGHOST and PGDATABASE, no host/database in pgmi.yaml."""
    if getattr(args, "connection", "") or getattr(args, "host", "") or getattr(args, "database", ""):
        return False
    if environ.get("PGMI_CONNECTION_STRING") or environ.get("DATABASE_URL"):
        return False
    if environ.get("PGHOST") and environ.get("PGDATABASE"):
        return False
    yaml_connection = yaml_connection or {}
    return not (yaml_connection.get("host") or yaml_connection.get("database"))


def merge_into_flags(args: argparse.Namespace, connection: Mapping[str, object]) -> None:
    """Fill only the flags that are still empty; a cloud auth method sets its enable flag."""
    for key, flag in _FLAG_FOR.items():
        value = connection.get(key)
        if value not in (None, "", 0) and not getattr(args, flag, None):
            setattr(args, flag, value)
    method = connection.get("auth_method")
    if method in ("azure", "aws", "google"):
        setattr(args, method, True)


def maybe_run_deploy_wizard(args: argparse.Namespace, environ: Mapping[str, str],
                            yaml_connection: Mapping[str, object] | None, project_dir: str | Path, out: Output,
                            prompter: Prompter | None = None) -> WizardResult | None:
    """Run the wizard when nothing names a server, on a terminal, without --force; else None.

    Cancel -> exit 12."""
    if getattr(args, "force", False) or not is_interactive() or not no_connection_source(args, environ,
                                                                                          yaml_connection):
        return None
    p = prompter or Prompter()
    out.info("\nNo database connection configured.\n")
    try:
        result = run_connection_wizard(p)
    except (Cancelled, KeyboardInterrupt):  # Ctrl-C may land between two prompts
        raise ApprovalDenied("approval denied: connection setup cancelled") from None
    merge_into_flags(args, result.connection)
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
    return result
