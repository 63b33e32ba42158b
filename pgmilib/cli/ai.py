"""`pgmi ai ...`: documentation for coding assistants, and installing it where they look.

`pgmi ai` takes the rest of its command line as one list (app.py registers it with
REMAINDER) and parses it here, so the whole family lives in one module that is imported
only when used. Documents go to stdout, through a pager when a person is reading;
`setup` and `check` report on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pgmilib.errors import Exit, PgmiError, UsageError
from pgmilib.output import Output, is_interactive


def build_parser() -> argparse.ArgumentParser:
    from pgmilib.cli.app import _Parser

    common = argparse.ArgumentParser(add_help=False)  # -v anywhere, as on every pgmi command (main reads it)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    root = _Parser(prog="pgmi ai", parents=[common], description="Documentation for AI coding assistants (pgmi ai "
                   "with no subcommand prints the overview).")
    subs = root.add_subparsers(dest="ai_command", metavar="<subcommand>", parser_class=_Parser)

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return subs.add_parser(name, help=text, description=text, parents=[common])

    add("skills", "list the skills")
    add("skill", "print one skill").add_argument("name", nargs="?")
    add("contract", "the session API as JSON")
    client = add("client", "guidance for HTTP clients of the advanced template")
    client.add_argument("language", nargs="?", help="typescript, python, go, csharp or rust")
    setup = add("setup", "install pgmi guidance for a coding assistant")
    who = setup.add_mutually_exclusive_group()
    who.add_argument("--assistant", default="", help="claude, agents, codex, opencode, codex-skills, antigravity, "
                     "cursor, copilot, windsurf, cline or gemini")
    who.add_argument("--all", action="store_true", help="every distinct assistant target")
    setup.add_argument("--global", dest="global_", action="store_true", help="install for your user, not the project")
    setup.add_argument("--dry-run", action="store_true", help="show what would be written")
    setup.add_argument("--force", action="store_true", help="overwrite hand-edited files")
    pointer = setup.add_mutually_exclusive_group()
    pointer.add_argument("--claude-md", action="store_true", help="add the pgmi pointer to CLAUDE.md without asking")
    pointer.add_argument("--no-claude-md", action="store_true", help="never touch CLAUDE.md")
    check = add("check", "is the installed guidance current?")
    check.add_argument("--assistant", default="claude", help="default claude")
    check.add_argument("--global", dest="global_", action="store_true", help="check the user-level install")
    return root


def page(out: Output, text: str) -> None:
    """Show a document: through $PGMI_PAGER / $PAGER / less -R when a person reads it, else straight out."""
    if not is_interactive(stdout=out.stdout):
        out.data(text)
        return
    command = os.environ.get("PGMI_PAGER") or os.environ.get("PAGER") or ("more" if os.name == "nt" else "less -R")
    if command.strip() == "cat":
        out.data(text)
        return
    import shlex

    argv = shlex.split(command)
    if not argv or shutil.which(argv[0]) is None:
        out.data(text)
        return
    try:
        subprocess.run(argv, input=text, text=True, check=False)
    except OSError:
        out.data(text)


def cmd_ai(args: argparse.Namespace, out: Output) -> int:
    """Dispatch `pgmi ai [subcommand ...]`."""
    from pgmilib.ai import content

    sub = build_parser().parse_args(list(getattr(args, "rest", []) or []))
    command = sub.ai_command
    if command is None:
        page(out, content.read_doc("overview.md"))
    elif command == "skills":
        page(out, content.skills_table())
    elif command == "skill":
        if not sub.name:
            raise UsageError("pgmi ai skill needs a skill name (see pgmi ai skills)")
        page(out, content.skill_text(sub.name))
    elif command == "contract":
        from pgmilib.ai.contract import contract_json

        page(out, contract_json())
    elif command == "client":
        page(out, content.client_text(sub.language))
    elif command == "setup":
        return _setup(sub, out)
    elif command == "check":
        return _check(sub, out)
    return Exit.SUCCESS


def _setup(sub: argparse.Namespace, out: Output) -> int:
    from pgmilib.ai import setup

    cwd, home = Path.cwd(), Path.home()
    if sub.all and sub.global_:
        raise UsageError("--all and --global cannot be combined")
    interactive = is_interactive()
    assistants = setup.resolve_assistants(sub.assistant, sub.all, interactive)
    if not sub.global_:
        setup.require_project(cwd)
    conflicts, claude_written = setup.setup(assistants, cwd=cwd, home=home, global_=sub.global_,
                                            dry_run=sub.dry_run, force=sub.force, report=out.info)
    if claude_written and not sub.global_ and not sub.no_claude_md:
        if sub.dry_run:
            if sub.claude_md:
                out.info("update CLAUDE.md (pgmi pointer)")
        elif ((sub.claude_md or (interactive and _confirm("Add a pgmi pointer to CLAUDE.md? [y/N] ")))
              and setup.update_claude_md(cwd / "CLAUDE.md")):
            out.info(f"{'updated':<10} CLAUDE.md (pgmi pointer)")
    if sub.dry_run:
        out.info("Dry run: no files written.")
    if conflicts:
        raise PgmiError(f"{conflicts} file(s) were edited by hand and left alone; re-run with --force to overwrite")
    return Exit.SUCCESS


def _confirm(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _check(sub: argparse.Namespace, out: Output) -> int:
    from pgmilib.ai import setup

    cwd = Path.cwd()
    setup.resolve_assistants(sub.assistant, False, True)  # validates the name
    if not sub.global_:
        setup.require_project(cwd)
    problems = setup.check(sub.assistant, cwd=cwd, home=Path.home(), global_=sub.global_, report=out.info)
    if problems:
        flag = " --global" if sub.global_ else ""
        raise PgmiError(f"{problems} guidance file(s) are missing, stale or edited: run "
                        f"pgmi ai setup --assistant {sub.assistant}{flag}")
    return Exit.SUCCESS
