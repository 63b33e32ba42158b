"""`pgmi config [path]`: the connection wizard, written to `<path>/pgmi.yaml`."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgmilib.errors import Exit, PgmiError
from pgmilib.output import Output, is_interactive
from pgmilib.scaffold.prompts import Cancelled, Prompter


def cmd_config(args: argparse.Namespace, out: Output) -> int:
    if not is_interactive():
        error = PgmiError("config requires an interactive terminal")
        error.trailer.append("for CI, write pgmi.yaml by hand or use PG* environment variables")
        raise error
    from pgmilib.config import load_project_config
    from pgmilib.errors import ConfigError
    from pgmilib.scaffold.connection_wizard import run_connection_wizard
    from pgmilib.scaffold.persist import offer_pgpass, write_connection

    project = Path(args.path or ".")
    if not project.is_dir():
        raise ConfigError(f"project path {project} is not a directory")
    p = Prompter()
    if (project / "pgmi.yaml").exists():
        try:
            load_project_config(project)
            out.info("pgmi.yaml exists.")
            question = "Overwrite connection settings?"
        except ConfigError as error:
            out.info(f"pgmi.yaml exists but could not be parsed: {error}")
            question = "Overwrite the unparseable pgmi.yaml?"
        if not p.confirm(question):
            out.info("Cancelled.")
            return Exit.SUCCESS
    try:
        result = run_connection_wizard(p)
    except (Cancelled, KeyboardInterrupt):  # Ctrl-C may land between two prompts
        out.info("Cancelled.")
        return Exit.SUCCESS
    write_connection(project, result, out)
    offer_pgpass(result, p, out)
    return Exit.SUCCESS
