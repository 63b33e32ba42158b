"""pgmilib/lean.py: uuid without `platform`, argparse without gettext and locale, pathlib without urllib.parse.

Each check runs a fresh interpreter (the test runner has imported all of them already): the
modules behave as when imported the usual way, and the stand-ins never outlive the import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """\
import json, os, sys
sys.path.insert(0, sys.argv[1])
from pgmilib import lean
lean.import_uuid()
lean.import_argparse()
lean.import_pathlib()
import uuid, argparse, pathlib
seen = {"loaded": sorted(m for m in ("platform", "gettext", "locale", "urllib.parse") if m in sys.modules),
        "linux": getattr(uuid, "_LINUX", None), "aix": getattr(uuid, "_AIX", None),
        "uuid": str(uuid.UUID(bytes=bytes(range(16)))), "uuid4 version": uuid.uuid4().version}
parser = argparse.ArgumentParser(prog="p", add_help=True)
parser.add_argument("--two", nargs=2)
parser.add_argument("--one")
messages = []
for argv in (["--two", "x"], ["--one"], ["--bogus"]):
    try:
        parser.parse_args(argv)
    except SystemExit:
        pass
seen["usage"] = parser.format_usage()
seen["help"] = parser.format_help()
seen["uri"] = pathlib.PurePosixPath("/tmp/a b/\u00e9%#?.sql").as_uri()  # the stand-in's quote_from_bytes
import platform, gettext, urllib.parse  # the real ones, after the stand-ins
seen["platform"] = platform.python_implementation()
seen["gettext"] = gettext.gettext("x") == "x" and hasattr(gettext, "GNUTranslations")
seen["urllib.parse"] = urllib.parse.urlsplit("postgresql://h:5/d").port
print(json.dumps(seen))
"""

PLAIN = """\
import argparse, json, pathlib, uuid
parser = argparse.ArgumentParser(prog="p", add_help=True)
parser.add_argument("--two", nargs=2)
parser.add_argument("--one")
for argv in (["--two", "x"], ["--one"], ["--bogus"]):
    try:
        parser.parse_args(argv)
    except SystemExit:
        pass
print(json.dumps({"usage": parser.format_usage(), "help": parser.format_help(),
                  "uri": pathlib.PurePosixPath("/tmp/a b/\u00e9%#?.sql").as_uri(),
                  "linux": getattr(uuid, "_LINUX", None), "aix": getattr(uuid, "_AIX", None)}))
"""


def _run(code: str, *args: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, timeout=60,
                          check=False, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_uuid_argparse_and_pathlib_behave_as_imported_the_usual_way():
    lean, lean_errors = _run(PROBE, str(REPO))
    plain, plain_errors = _run(PLAIN)
    assert lean["loaded"] == []  # no stand-in's module was imported for real
    assert (lean["linux"], lean["aix"]) == (plain["linux"], plain["aix"])  # the flags the real platform gives
    assert lean["uuid"] == "00010203-0405-0607-0809-0a0b0c0d0e0f" and lean["uuid4 version"] == 4
    assert (lean["usage"], lean["help"]) == (plain["usage"], plain["help"])
    assert lean["uri"] == plain["uri"] == "file:///tmp/a%20b/%C3%A9%25%23%3F.sql"
    # argparse's messages, singular and plural, word for word as with gettext
    assert lean_errors == plain_errors
    assert "argument --two: expected 2 arguments" in lean_errors
    assert "argument --one: expected one argument" in lean_errors
    assert "unrecognized arguments: --bogus" in lean_errors


def test_the_real_modules_come_after_the_stand_ins():
    lean, _ = _run(PROBE, str(REPO))
    assert lean["platform"] == "CPython"  # the real platform module, not the stand-in
    assert lean["gettext"] is True
    assert lean["urllib.parse"] == 5


ALREADY = """\
import sys
sys.path.insert(0, sys.argv[1])
import gettext, argparse, platform, uuid, urllib.parse, pathlib
from pgmilib import lean
lean.import_argparse()
lean.import_uuid()
lean.import_pathlib()
print(argparse._ is gettext.gettext, sys.modules["platform"] is platform, sys.modules["urllib.parse"] is urllib.parse)
"""


def test_modules_imported_before_are_left_as_they_are():
    done = subprocess.run([sys.executable, "-S", "-c", ALREADY, str(REPO)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
