"""The two checksums of a project file (raw and normalized) and the per-project cache of the normalized one.

The normalized checksum has its own byte-level tokenizer (comments, quotes, dollar quotes)
rather than using `pgmilib.sqllex`: the spec defines it on bytes with rules of its own (ASCII
dollar tags only, case folding outside quotes, a comment becomes one space, Go's whitespace
set) and publishes vectors for it. It must give exactly those values, while sqllex must
agree with the PostgreSQL server; the two purposes differ, so the rules live apart, here.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

from pgmilib.fileio import atomic_write

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Mapping
    from typing import Any

BOM = b"\xef\xbb\xbf"


#: How many bytes the interpreter's own SHA-256 hashes before hashlib's is loaded (`sha256`).
BUILTIN_SHA256_BYTES = 1 << 20
_builtin_left = BUILTIN_SHA256_BYTES
_hashlib_sha256: Callable[[bytes], Any] | None = None  # once chosen, for good


@functools.cache
def _interpreter_sha256() -> Callable[[bytes], Any] | None:
    """The interpreter's own SHA-256 (`_sha2` from 3.12, `_sha256` before); None in a build
    configured to leave SHA-256 to OpenSSL alone (`--with-builtin-hashlib-hashes` without it)."""
    try:
        return __import__("_sha2" if sys.version_info >= (3, 12) else "_sha256").sha256
    except ImportError:
        return None


def sha256(data: bytes) -> Any:
    """A SHA-256 hash object of `data`; the digest is the same whichever implementation made it.

    hashlib's SHA-256 is OpenSSL's: with the CPU's SHA instructions ~6x faster per byte than the
    interpreter's own, but importing hashlib loads OpenSSL's library, ~4 ms, more than a small
    project spends hashing. So the first BUILTIN_SHA256_BYTES of a run go through the
    interpreter's own module (the most that costs over OpenSSL's is about that import), and
    everything after them, or everything once hashlib is loaded anyway, through hashlib.
    """
    global _builtin_left, _hashlib_sha256
    if _hashlib_sha256 is not None:
        return _hashlib_sha256(data)
    if len(data) <= _builtin_left and "hashlib" not in sys.modules:
        builtin = _interpreter_sha256()
        if builtin is not None:
            _builtin_left -= len(data)  # unlocked: two threads may both spend the rest, no harm
            return builtin(data)
    import hashlib

    _hashlib_sha256 = hashlib.sha256
    return _hashlib_sha256(data)


def raw_checksum(data: bytes) -> str:
    """SHA-256 hex of the exact (BOM-stripped) bytes."""
    return sha256(data).hexdigest()


@functools.cache
def _tokens() -> tuple[re.Pattern[bytes], ...]:
    """The tokenizer's patterns, compiled on first use: a deploy whose normalized checksums all
    come from the cache needs none of them (and they take ~1.5 ms to compile)."""
    return (
        # Plain text up to the next byte that needs a decision, in one match: runs of ordinary bytes,
        # a lone `-` or `/`, a `$` that opens no dollar quote, and quoted tokens that lower() would
        # not change (no A-Z inside, and no backslash, so an E'...' string reads the same as a plain
        # one). Inside such a token `--`, `/*` and `$` are text, as in a quote; `'a''b'` splitting
        # into `'a'` and `'b'` leaves every byte's quoted/unquoted status as it is. Not right after
        # an E or e: that split would lose the E-string's prefix for the token after `''`, where a
        # backslash escapes a quote (`E'''\'x` is one unterminated string); the loop decides there.
        # So most files are a few matches.
        re.compile(rb"""(?:[^-/'"$]+|-(?!-)|/(?!\*)|(?<![Ee])'[^'A-Z\\]*'|"[^"A-Z]*"|\$(?!(?:[A-Za-z_][A-Za-z0-9_]*)?\$))*"""),
        re.compile(rb"'[^']*(?:''[^']*)*'?"),  # a quote
        re.compile(rb"'(?:[^'\\]|\\[\s\S]?|'')*'?"),  # E'...': a backslash escapes the next byte
        re.compile(rb'"[^"]*(?:""[^"]*)*"?'),  # a quoted identifier
        re.compile(rb"/\*|\*/"),  # in a block comment, the next opening or closing
        re.compile(rb"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$"),  # a dollar-quote tag
        re.compile(rb"[A-Za-z0-9_$\x80-\xff]"),  # a byte of an identifier
        # Consecutive line comments with only ASCII whitespace between them: one match, one space.
        re.compile(rb"--[^\n]*(?:\n[\t\n\v\f\r ]*--[^\n]*)*"),
    )


def remove_comments(data: bytes, *, fold_case: bool = True, exact: bool = True) -> bytes:
    """Step A of the normalised checksum: comments -> one space, ASCII case folded outside quotes.

    `fold_case=False` gives the comment removal alone (the spec's intermediate vectors).
    `exact=False` is for the checksum only: a run of line comments separated by whitespace
    becomes one space (identical after step B collapses whitespace), so a header block of
    comment lines is one step of the loop instead of one per line.
    The bulk of a file is consumed by regular expressions (the first of `_tokens()`) and copied
    in C; the state machine only runs at comments, dollar quotes and quoted tokens that hold A-Z
    or a backslash. `bytes.lower()` folds exactly ASCII A-Z and keeps the length, so normal text
    is sliced from a lowered copy.
    """
    plain_run, quote, escape_quote, quoted_ident, block_token, dollar_tag, ident_byte, line_comment_run = _tokens()
    low = data.lower() if fold_case else data
    out: list[bytes] = []
    append = out.append
    plain = plain_run.match
    pos = 0
    size = len(data)
    while True:
        start = plain(data, pos).end()  # type: ignore[union-attr]  # matches the empty string too
        append(low[pos:start])
        if start >= size:
            break
        first = data[start]
        if first == 0x27:  # '
            escape = (start >= 1 and data[start - 1] in b"Ee"
                      and (start == 1 or not ident_byte.match(data, start - 2)))
            end = (escape_quote if escape else quote).match(data, start).end()  # type: ignore[union-attr]
            append(data[start:end])
        elif first == 0x22:  # "
            end = quoted_ident.match(data, start).end()  # type: ignore[union-attr]
            append(data[start:end])
        elif first == 0x2D:  # --
            append(b" ")
            if not exact:
                pos = line_comment_run.match(data, start).end()  # type: ignore[union-attr]
                continue
            newline = data.find(b"\n", start + 2)
            if newline < 0:
                break
            append(b"\r\n" if newline - 1 >= start + 2 and data[newline - 1] == 0x0D else b"\n")
            end = newline + 1
        elif first == 0x24:  # $ opening a dollar quote (any other $ is plain text)
            tag = dollar_tag.match(data, start).group(0)  # type: ignore[union-attr]
            close = data.find(tag, start + len(tag))
            end = size if close < 0 else close + len(tag)
            append(data[start:end])
        else:  # /*
            append(b" ")
            depth, end = 1, start + 2
            while depth:
                inner = block_token.search(data, end)
                if inner is None:
                    end = size
                    break
                depth += 1 if inner.group(0) == b"/*" else -1
                end = inner.end()
        pos = end
    return b"".join(out)


# Go's unicode.IsSpace beyond ASCII, as UTF-8 byte sequences. None of them can overlap another
# or start inside one (each starts with a lead byte, continues with 0x80-0xBF), so replacing
# each by one space and then collapsing ASCII whitespace runs gives exactly the runs of the
# spec's code-point set. Python's str.isspace() would also take U+001C..U+001F.
@functools.cache
def _wide_space() -> re.Pattern[bytes]:
    """Compiled on first use: only a text with non-ASCII bytes needs it."""
    return re.compile(rb"\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80")


def collapse_whitespace(text: bytes) -> bytes:
    """Steps B and C: every whitespace run -> one space, then trim.

    `bytes.split()` splits on exactly the six ASCII whitespace bytes, in C; the non-ASCII spaces
    become an ASCII space first, only in text that has non-ASCII bytes at all.
    """
    if not text.isascii():
        text = _wide_space().sub(b" ", text)
    return b" ".join(text.split())


def normalized_checksum(data: bytes | str) -> str:
    """SHA-256 hex of the normalised text: comments out, case folded, whitespace collapsed."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return normalized_digest(data).hex()


def normalized_digest(data: bytes) -> bytes:
    """The normalized checksum as the 32 bytes of the SHA-256 digest."""
    return sha256(collapse_whitespace(remove_comments(data, exact=False))).digest()


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

    #: Part of the file name: raised whenever the normalization could have given another value
    #: for some bytes, so entries written by an earlier pgmi are never read (2: an E-string
    #: whose rest followed `''` could be read as a plain string). Files of older generations are
    #: removed when this one is written.
    GENERATION = 2

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
        """The cache of the project at `root` in `directory` (`pgmilib.project.root.cache_dir_from`); None: no cache."""
        if directory is None:
            return cls(None)
        key = sha256(os.fsencode(os.path.abspath(root))).hexdigest()[:24]
        return cls(directory / f"checksums-{key}{cls._suffix(cls.GENERATION)}")

    @staticmethod
    def _suffix(generation: int) -> str:
        return ".bin" if generation == 1 else f".v{generation}.bin"

    @property
    def known(self) -> Mapping[bytes, bytes]:
        """Raw digest -> normalized digest, as read from the file (for the checksum helper)."""
        return self._known

    def has(self, raw_hex: str) -> bool:
        """Whether a normalized checksum is known for these bytes (without counting it as used)."""
        return bool(self._known) and bytes.fromhex(raw_hex) in self._known

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
            return
        stem = self.path.name[:-len(self._suffix(self.GENERATION))]
        for generation in range(1, self.GENERATION):
            try:
                self.path.with_name(stem + self._suffix(generation)).unlink()
            except OSError:
                pass  # not there (the usual case), or not ours to remove
