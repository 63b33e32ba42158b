"""Plain line prompts on stderr (the port's stand-in for the original's full-screen TUI).

Prompts go to stderr so stdout stays data-only; answers are read from stdin one line at a
time. Ctrl-C or end of input in a text prompt raises `Cancelled`, which callers turn into
`Cancelled.` and exit 0. Only called on interactive paths (stdin and stdout are terminals).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Sequence
from typing import TextIO


class Cancelled(Exception):
    """The user pressed Ctrl-C or closed the input."""


class Prompter:
    def __init__(self, stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stderr = stderr or sys.stderr

    def say(self, text: str = "") -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def _readline(self, prompt: str) -> str:
        # The prompt is written inside the try: a Ctrl-C typed as soon as it shows (before
        # the read starts) cancels like one typed during the read.
        try:
            self.stderr.write(prompt)
            self.stderr.flush()
            line = self.stdin.readline()
        except KeyboardInterrupt:
            self.stderr.write("\n")
            raise Cancelled() from None
        if not line:  # end of input
            self.stderr.write("\n")
            raise Cancelled()
        return line.rstrip("\r\n")

    def text(self, label: str, default: str = "", *, required: bool = False,
             validate: Callable[[str], str | None] | None = None) -> str:
        """Ask for a line; empty means `default`. `validate` returns an error text or None."""
        shown = f" [{default}]" if default else ""
        while True:
            value = self._readline(f"{label}{shown}: ").strip() or default
            if required and not value:
                self.say(f"  {label} is required.")
                continue
            problem = validate(value) if validate else None
            if problem:
                self.say(f"  {problem}")
                continue
            return value

    def number(self, label: str, default: int, low: int = 1, high: int = 65535) -> int:
        def check(value: str) -> str | None:
            if not value.isdigit() or not low <= int(value) <= high:
                return f"{label} must be a number from {low} to {high}."
            return None

        return int(self.text(label, str(default), validate=check))

    def choose(self, title: str, options: Sequence[tuple[str, str]], default: int = 1) -> str:
        """Numbered menu of (value, label); returns the chosen value."""
        self.say(title)
        for i, (_value, label) in enumerate(options, 1):
            self.say(f"  {i}) {label}")

        def check(value: str) -> str | None:
            if value.isdigit() and 1 <= int(value) <= len(options):
                return None
            return f"Choose a number from 1 to {len(options)}."

        return options[int(self.text("Choice", str(default), validate=check)) - 1][0]

    def confirm(self, question: str) -> bool:
        """`<question> [Y/n]: `; empty, y or yes mean yes; end of input means no."""
        try:
            answer = self._readline(f"{question} [Y/n]: ")
        except Cancelled:
            return False
        return answer.strip().lower() in ("", "y", "yes")

    def secret(self, label: str) -> str:
        """A masked line (getpass on the terminal); Ctrl-C or end of input cancels."""
        try:
            return getpass.getpass(f"{label}: ", stream=self.stderr)
        except (KeyboardInterrupt, EOFError):
            self.stderr.write("\n")
            raise Cancelled() from None
