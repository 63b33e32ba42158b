"""The oldest Python pgmi runs on, and the one line an older interpreter gets instead of a traceback.

Runs on interpreters far older than pgmi supports (this module exists to turn them away), so it
keeps to syntax every python3 reads: no `from __future__ import annotations` (3.7+), no f-strings
(3.6+), no imports beyond `sys`. Three places use it, each with its own advice: the zipapp's
launcher (build.py copies this file into the archive's start-up code), `pgmi.py` in a checkout,
and the Makefile's interpreter check. `pip install .` is refused earlier by pyproject.toml's
`requires-python`, which tests/test_portability.py keeps equal to MINIMUM.
"""

import sys

#: The oldest CPython pgmi supports (docs/PORTABILITY.md lists the tested versions).
MINIMUM = (3, 9)
#: Where a distribution's own python3 is older than MINIMUM, the package that brings a newer one.
NEWER_PYTHON = ("RHEL/Rocky/Alma 8: dnf install python3.11; Ubuntu 20.04: apt install python3.9; "
                "SLES 15: zypper install python311")


def message(advice):
    """The one line for this interpreter: what is required, what was found (version and path), what to do."""
    found = ".".join(str(part) for part in sys.version_info[:3])
    return "pgmi: error: Python {}.{} or newer is required, but {} is Python {}; {} ({})".format(
        MINIMUM[0], MINIMUM[1], sys.executable or "this interpreter", found, advice, NEWER_PYTHON)


def check(advice):
    """Exit 1 with `message(advice)` when this interpreter is older than MINIMUM; otherwise nothing."""
    if tuple(sys.version_info[:2]) < MINIMUM:
        sys.stderr.write(message(advice) + "\n")
        sys.stderr.flush()
        sys.exit(1)


if __name__ == "__main__":  # the Makefile: python3 -S pgmilib/python_floor.py "<advice>"
    check(sys.argv[1] if len(sys.argv) > 1 else "use a newer python3")
