"""The command line: `main(argv)` parses argv and runs one command function (see app.py);
`run()` is the process entry point (main, then the process ends without interpreter teardown)."""

from pgmilib.cli.app import main, run

__all__ = ["main", "run"]
