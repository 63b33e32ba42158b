"""After a wizard: write the connection into pgmi.yaml and offer to keep the password in .pgpass."""

from __future__ import annotations

from pathlib import Path

from pgmilib.conn.params import DEFAULT_HOST, DEFAULT_PORT
from pgmilib.conn.pgpass import save_password
from pgmilib.output import Output
from pgmilib.scaffold.connection_wizard import WizardResult
from pgmilib.scaffold.prompts import Prompter


def write_connection(project_dir: str | Path, result: WizardResult, out: Output) -> Path:
    """Replace the `connection` block of `<project_dir>/pgmi.yaml` (params/timeout kept), mode 0600."""
    from pgmilib.config import write_project_config

    path = write_project_config(project_dir, result.connection)
    out.info(f"Wrote {path}")
    return path


def offer_pgpass(result: WizardResult, p: Prompter, out: Output) -> None:
    """Ask `[Y/n]` to save a typed password to .pgpass; a failure is a warning, never fatal."""
    if not result.password:
        return
    if not p.confirm("Save password to .pgpass for future sessions?"):
        out.info("Tip: provide the password at deploy time with $PGPASSWORD, ~/.pgpass or a connection string.")
        return
    c = result.connection
    try:
        path = save_password(str(c.get("host") or DEFAULT_HOST), int(c.get("port") or DEFAULT_PORT),
                             str(c.get("username") or ""), result.password)
    except OSError as error:
        out.warn(f"failed to save .pgpass: {error}")
        out.info("Tip: set $PGPASSWORD or write ~/.pgpass yourself (host:port:database:user:password, mode 0600).")
        return
    out.info(f"Saved to {path} (for every database of this server and user: the deploy also "
             "connects to the maintenance database)")
