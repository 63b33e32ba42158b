#!/usr/bin/env python3
"""pgmi: PostgreSQL-native deployment driver.

This file is only the entry point so that `python3 pgmi.py ...` works from a checkout;
everything else lives in the `pgmilib` package beside it.
"""
import sys


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupted)  # like Ctrl-C until main() takes over: exit 130
    try:
        from pgmilib.python_floor import check

        check("run pgmi.py with a newer python3")  # one line on an older interpreter, never a traceback
        from pgmilib.cli import run
    except KeyboardInterrupt:  # a signal while Python is still importing pgmi
        sys.stderr.write("pgmi: interrupted\n")
        sys.exit(130)
    run()
