"""The command line: `main(argv)` parses argv and runs one command function (see app.py)."""

from pgmilib.cli.app import main

__all__ = ["main"]
