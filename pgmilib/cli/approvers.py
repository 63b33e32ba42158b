"""The `--overwrite` approvers that talk to the terminal.

The deploy core asks `DeployRequest.approver` before it drops a database; this module is
where the CLI builds that approver from --force and whether it runs at a terminal. The
core's own approvers (refuse; accept under `force`) are in pgmilib/deploy/dbadmin.py.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from pgmilib.deploy.dbadmin import AcceptingApprover, Approver, RefusingApprover
from pgmilib.errors import ApprovalDenied, Interrupted, go_quote
from pgmilib.output import Output
from pgmilib.redact import redact

_COUNTDOWN = 5
_BANNER = r"""
          _____
         /     \
        | () () |      DANGER: DESTRUCTIVE OPERATION
         \  ^  /
          |||||        DROP DATABASE {name}
          |||||        every object and row in it will be deleted
"""


class ForcedApprover:
    """--force: never blocks. On a terminal, a banner (unless PGMI_NO_BANNER) and a 5-second
    abortable countdown."""

    def __init__(self, out: Output, interactive: bool, sleep: Callable[[float], None] = time.sleep) -> None:
        self.out = out
        self.interactive = interactive
        self.sleep = sleep

    def approve(self, database: str) -> None:
        if not self.interactive:
            AcceptingApprover(self.out).approve(database)
            return
        name = go_quote(database)
        if not os.environ.get("PGMI_NO_BANNER"):
            self.out.info("")
            self.out.info(_BANNER.format(name=name).strip("\n"))
            self.out.info("")
        stream = self.out.stderr
        try:
            for left in range(_COUNTDOWN, 0, -1):
                stream.write(redact(f"\r--force: DROP DATABASE {name} in {left}s. Ctrl-C aborts."))
                stream.flush()
                self.sleep(1)
        except KeyboardInterrupt:
            stream.write("\n")
            stream.flush()
            raise Interrupted(f"interrupted: overwrite of {name} aborted") from None
        line = f"--force: DROP DATABASE {name} now."
        width = len(f"--force: DROP DATABASE {name} in {_COUNTDOWN}s. Ctrl-C aborts.")
        stream.write(redact("\r" + line.ljust(width)) + "\n")
        stream.flush()


class InteractiveApprover:
    """A terminal without --force: the user types the database name to confirm."""

    def __init__(self, out: Output, stdin: TextIO | None = None) -> None:
        self.out = out
        self.stdin = stdin if stdin is not None else sys.stdin

    def approve(self, database: str) -> None:
        name = go_quote(database)
        self.out.info("")
        self.out.warn(f"about to DROP and RECREATE database {name}. This deletes all data.")
        self.out.stderr.write("Type the database name to confirm: ")
        self.out.stderr.flush()
        try:
            line = self.stdin.readline()
        except KeyboardInterrupt:
            self.out.info("")
            raise Interrupted(f"interrupted: overwrite of {name} aborted") from None
        if not line:
            self.out.info("")
            self.out.info("No input available. Use --force to bypass confirmation in non-interactive mode.")
            raise ApprovalDenied(f"approval denied: no confirmation to drop {name}")
        typed = line.strip()
        if typed != database:
            self.out.info(f"{go_quote(typed)} does not match {name}. Cancelled.")
            raise ApprovalDenied(f"approval denied: overwrite of {name} was not confirmed")
        self.out.info("Confirmed.")


def choose_approver(force: bool, interactive: bool, out: Output, stdin: TextIO | None = None) -> Approver:
    """--force -> forced; no terminal -> refusing; otherwise type-the-name."""
    if force:
        return ForcedApprover(out, interactive)
    if not interactive:
        return RefusingApprover()
    return InteractiveApprover(out, stdin)
