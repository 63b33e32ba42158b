"""The managed stamp on every file `pgmi ai setup` writes, and how `check` reads it back.

A generated file is its body followed by a comment block:

    <!-- pgmi:managed
    version: 0.1.0
    source: github.com/vvka-141/pgmi
    checksum: <sha256>
    -->

The checksum covers the whole file as rendered with an empty checksum value, so an edit
anywhere (body, stamp, text after the stamp) shows up; line endings are normalised before
hashing, so a checkout that converts LF to CRLF is not an edit, and a different version
line alone is not an edit either (the version is inside the hashed text, but it is read
from the file, not compared with the binary's).
"""

from __future__ import annotations

import hashlib
import re

from pgmilib.records import record

MARKER = "<!-- pgmi:managed"
SOURCE = "github.com/vvka-141/pgmi"
_CHECKSUM = re.compile(r"^(checksum:[ \t]*)([0-9a-fA-F]*)[ \t]*$", re.MULTILINE)
_VERSION = re.compile(r"^version:[ \t]*(\S*)[ \t]*$", re.MULTILINE)


def normalise(text: str) -> str:
    """CRLF/CR -> LF and exactly one trailing newline."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n"


def _render(body: str, version: str, checksum: str) -> str:
    return f"{normalise(body)}\n{MARKER}\nversion: {version}\nsource: {SOURCE}\nchecksum: {checksum}\n-->\n"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stamp(body: str, version: str) -> str:
    """The file to write: normalised body plus a stamp whose checksum covers the whole file."""
    return _render(body, version, _digest(_render(body, version, "")))


@record(frozen=True)
class Stamped:
    body: str  # normalised text before the stamp
    version: str  # "" when the stamp names none
    valid: bool  # the checksum matches: nobody edited the file since pgmi wrote it


def parse(text: str) -> Stamped | None:
    """Read a file pgmi may have written; None when it carries no stamp at all."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = text.find(MARKER)
    if start == -1:
        return None
    end = text.find("-->", start)
    block = text[start:end if end != -1 else len(text)]
    version = _VERSION.search(block)
    checksum = _CHECKSUM.search(block)
    body = normalise(text[:start])
    if checksum is None or end == -1:
        return Stamped(body, version.group(1) if version else "", False)
    blanked = text[:start] + block[:checksum.start(2)] + block[checksum.end(2):] + text[end:]
    valid = _digest(blanked) == checksum.group(2).lower()
    return Stamped(body, version.group(1) if version else "", valid)
