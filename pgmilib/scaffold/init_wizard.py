"""The init wizard of `pgmi init` as line prompts: directory, template, connection yes/no."""

from __future__ import annotations

from pathlib import Path

from pgmilib.records import record
from pgmilib.scaffold.catalogue import describe, template_names
from pgmilib.scaffold.connection_wizard import WizardResult, run_connection_wizard
from pgmilib.scaffold.create import blocking_entries
from pgmilib.scaffold.prompts import Prompter


@record
class InitChoice:
    target: str
    template: str
    connection: WizardResult | None = None


def _directory_problem(value: str) -> str | None:
    path = Path(value)
    if path.exists() and not path.is_dir():
        return f"{path.absolute()} exists but is not a directory."
    if path.is_dir():
        try:
            blocking = blocking_entries(path)
        except OSError as error:
            return f"cannot read {path.absolute()}: {error.strerror}"
        if blocking:
            return f"{path.absolute()} is not empty (blocking: {' '.join(blocking)}); choose another directory."
    return None


def run_init_wizard(p: Prompter, target: str | None, **connection_kw) -> InitChoice:
    """Ask the three questions; raises Cancelled on Ctrl-C / end of input."""
    p.say("New pgmi project")
    directory = p.text("Directory", target if target not in (None, ".") else ".", validate=_directory_problem)
    p.say(f"Project directory: {Path(directory).absolute()}")
    template = p.choose("Template:", [(n, f"{n} - {describe(n).short}") for n in template_names()])
    wants = p.choose("Set up the database connection now?",
                     [("no", "No - configure later (pgmi.yaml keeps its placeholder)"),
                      ("yes", "Yes - run the connection wizard")])
    result = run_connection_wizard(p, **connection_kw) if wants == "yes" else None
    return InitChoice(directory, template, result)
