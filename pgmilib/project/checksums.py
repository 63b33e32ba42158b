"""The two checksums of a project file (raw and normalized) and the per-project cache of the normalized one.

The normalized checksum has its own byte-level tokenizer (comments, quotes, dollar quotes)
rather than using `pgmilib.sqllex`: the spec defines it on bytes with rules of its own (ASCII
dollar tags only, case folding outside quotes, a comment becomes one space, Go's whitespace
set) and publishes vectors for it. It must give exactly those values, while sqllex must
agree with the PostgreSQL server; the two purposes differ, so the rules live apart, here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pgmilib.fileio import atomic_write

BOM = b"\xef\xbb\xbf"


def raw_checksum(data: bytes) -> str:
    """SHA-256 hex of the exact (BOM-stripped) bytes."""
    return hashlib.sha256(data).hexdigest()


# A plain '...' literal or "..." identifier is matched whole (the common case, one search);
# an E'...' string is re-scanned with its own rule.
_SPECIAL = re.compile(rb"""--|/\*|'[^']*(?:''[^']*)*'?|"[^"]*(?:""[^"]*)*"?|\$""")
_BLOCK_TOKEN = re.compile(rb"/\*|\*/")
_ESCAPE_QUOTE_END = re.compile(rb"\\[\s\S]|''|'")
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_IDENT_BYTE = re.compile(rb"[A-Za-z0-9_$\x80-\xff]")


# Consecutive line comments with only ASCII whitespace between them: one match, one space.
_LINE_COMMENT_RUN = re.compile(rb"--[^\n]*(?:\n[\t\n\v\f\r ]*--[^\n]*)*")


def remove_comments(data: bytes, *, fold_case: bool = True, exact: bool = True) -> bytes:
    """Step A of the normalised checksum: comments -> one space, ASCII case folded outside quotes.

    `fold_case=False` gives the comment removal alone (the spec's intermediate vectors).
    `exact=False` is for the checksum only: a run of line comments separated by whitespace
    becomes one space (identical after step B collapses whitespace), so a header block of
    comment lines is one step of the loop instead of one per line.
    Tokens are found with regular expressions so the bulk of a file is copied in C; the state
    machine of the normalization only runs at quote/comment/dollar boundaries. `bytes.lower()` folds
    exactly ASCII A-Z and keeps the length, so normal text is sliced from a lowered copy.
    """
    low = data.lower() if fold_case else data
    out: list[bytes] = []
    append = out.append
    search = _SPECIAL.search
    pos = 0
    size = len(data)
    while pos < size:
        match = search(data, pos)
        if match is None:
            append(low[pos:])
            break
        start = match.start()
        append(low[pos:start])
        end = match.end()
        first = data[start]
        if first == 0x27:  # '
            if (start >= 1 and data[start - 1] in b"Ee"
                    and (start == 1 or not _IDENT_BYTE.match(data, start - 2))):
                end = _quoted_end(_ESCAPE_QUOTE_END, data, start + 1, b"'")
            append(data[start:end])
        elif first == 0x22:  # "
            append(data[start:end])
        elif first == 0x2D:  # --
            append(b" ")
            if not exact:
                pos = _LINE_COMMENT_RUN.match(data, start).end()  # type: ignore[union-attr]
                continue
            newline = data.find(b"\n", start + 2)
            if newline < 0:
                break
            append(b"\r\n" if newline - 1 >= start + 2 and data[newline - 1] == 0x0D else b"\n")
            end = newline + 1
        elif first == 0x24:  # $
            tag = _DOLLAR_TAG.match(data, start)
            if tag is None:
                append(b"$")
                end = start + 1
            else:
                close = data.find(tag.group(0), tag.end())
                end = size if close < 0 else close + len(tag.group(0))
                append(data[start:end])
        else:  # /*
            append(b" ")
            depth, end = 1, start + 2
            while depth:
                inner = _BLOCK_TOKEN.search(data, end)
                if inner is None:
                    end = size
                    break
                depth += 1 if inner.group(0) == b"/*" else -1
                end = inner.end()
        pos = end
    return b"".join(out)


def _quoted_end(pattern: re.Pattern[bytes], data: bytes, pos: int, stop: bytes) -> int:
    """Index just past the closing `stop` of a quoted run whose body starts at `pos` (or len)."""
    while True:
        match = pattern.search(data, pos)
        if match is None:
            return len(data)
        if match.group(0) == stop:
            return match.end()
        pos = match.end()


# Go's unicode.IsSpace, as UTF-8 byte sequences (valid UTF-8 is self-synchronising, so these
# match exactly those code points). Python's str.isspace() would also take U+001C..U+001F.
_WS_RUN = re.compile(
    rb"(?:[\t\n\v\f\r ]|\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80)+")


def collapse_whitespace(text: bytes) -> bytes:
    """Steps B and C: every whitespace run -> one space, then trim.

    Fast path: `bytes.split()` splits on exactly the six ASCII whitespace bytes, in C; the
    regex runs only when a non-ASCII space could be present.
    """
    if (b"\xc2" in text or b"\xe1\x9a" in text or b"\xe2\x80" in text or b"\xe2\x81" in text
            or b"\xe3\x80\x80" in text):
        return _WS_RUN.sub(b" ", text).strip(b" ")
    return b" ".join(text.split())


def normalized_checksum(data: bytes | str) -> str:
    """SHA-256 hex of the normalised text: comments out, case folded, whitespace collapsed."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(collapse_whitespace(remove_comments(data, exact=False))).hexdigest()


def cache_dir_from(environ: Mapping[str, str]) -> Path | None:
    """Where checksum caches live, as `environ` says (the caller's environment, read once by the
    CLI or the MCP server); None: no cache (`PGMI_CACHE_DIR=off`, or no usable home directory)."""
    setting = environ.get("PGMI_CACHE_DIR", "")
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "pgmi"
    return directory if directory.is_absolute() else None


class ChecksumCache:
    """Normalized checksums remembered by raw checksum, per project, across runs.

    A re-deploy's main saving: normalizing is the one CPU-heavy step per file. The key is the
    SHA-256 of the exact bytes, so an entry can never be stale. One file per project root (so
    memory follows the project's size, not the history of every project deployed), holding
    64-byte records (raw digest, normalized digest), rewritten with exactly this run's files.
    Directory: `$PGMI_CACHE_DIR`, else `$XDG_CACHE_HOME/pgmi`, else `~/.cache/pgmi`;
    `PGMI_CACHE_DIR=off` disables it. A missing, unreadable, unwritable or damaged cache only
    costs time.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: dict[bytes, bytes] = {}
        self._used: dict[bytes, bytes] = {}
        self._changed = False
        if path is not None:
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            usable = len(data) - len(data) % 64  # a torn last record is ignored
            self._known = {data[i:i + 32]: data[i + 32:i + 64] for i in range(0, usable, 64)}

    @classmethod
    def for_project(cls, root: Path, directory: Path | None) -> ChecksumCache:
        """The cache of the project at `root` in `directory` (`cache_dir_from`); None: no cache."""
        if directory is None:
            return cls(None)
        key = hashlib.sha256(os.fsencode(os.path.abspath(root))).hexdigest()[:24]
        return cls(directory / f"checksums-{key}.bin")

    def get(self, raw_hex: str) -> str | None:
        key = bytes.fromhex(raw_hex)
        value = self._known.get(key)
        if value is None:
            return None
        self._used[key] = value
        return value.hex()

    def put(self, raw_hex: str, normalized_hex: str) -> None:
        self._used[bytes.fromhex(raw_hex)] = bytes.fromhex(normalized_hex)
        self._changed = True

    def save(self) -> None:
        """Rewrite the file with this run's entries when anything was new; never raises."""
        if self.path is None or not self._changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a cache: losing it to a crash costs a recomputation, so no fsync
            atomic_write(self.path, b"".join(key + value for key, value in self._used.items()), mode=0o600,
                         fsync=False)
        except OSError:
            pass
