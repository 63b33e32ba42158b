"""`pgmi init [path] [-t TEMPLATE]`: scaffold a project from templates/.

With a terminal on stdin and stdout and no explicit `-t`, a short wizard asks for the
directory, the template and (optionally) the connection; otherwise the arguments decide.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from pgmilib.errors import Exit
from pgmilib.output import Output, is_interactive
from pgmilib.scaffold.create import create_project, project_name, tree_lines, unknown_template
from pgmilib.scaffold.prompts import Cancelled, Prompter

CLOUD_CAVEAT = (
    "Note for managed PostgreSQL: the advanced template needs a deploy user with CREATEROLE and\n"
    "permission to CREATE EXTENSION hstore (no superuser needed).\n"
    "`pgmi templates describe advanced` lists what it needs and creates."
)


def cmd_init(args: argparse.Namespace, out: Output) -> int:
    from pgmilib.scaffold.catalogue import DEFAULT_TEMPLATE, template_names

    wizard = None
    if is_interactive() and args.template is None:
        from pgmilib.scaffold.init_wizard import run_init_wizard

        prompter = Prompter()
        try:
            wizard = run_init_wizard(prompter, args.target_path)
        except (Cancelled, KeyboardInterrupt):  # Ctrl-C may land between two prompts
            out.info("Cancelled.")
            return Exit.SUCCESS
        target, template = wizard.target, wizard.template
    else:
        target, template = args.target_path or ".", args.template or DEFAULT_TEMPLATE
        if template not in template_names():
            raise unknown_template(template)
    root = create_project(template, Path(target), project_name(target), log=out.verbose)
    out.info(f"Wrote {target} ({template} template).")
    out.data("\n".join(tree_lines(root)))
    if template == "advanced":
        out.info("\n" + CLOUD_CAVEAT)
    database = "mydb"
    if wizard is not None and wizard.connection is not None:
        from pgmilib.scaffold.persist import offer_pgpass, write_connection

        write_connection(root, wizard.connection, out)
        database = str(wizard.connection.connection.get("database") or database)
        offer_pgpass(wizard.connection, prompter, out)
    where, db = shlex.quote(str(target)), shlex.quote(database)  # the lines are meant to be pasted into a shell
    out.info(
        f"\nNext:\n  pgmi deploy {where} -d {db}\n  cd {where} && pgmi ai setup --assistant claude\n\n"
        "`pgmi ai setup` writes .claude/skills/pgmi/ for you to commit; --assistant also accepts cursor,\n"
        "copilot, windsurf and cline. `pgmi ai` shows the same documentation."
    )
    return Exit.SUCCESS
