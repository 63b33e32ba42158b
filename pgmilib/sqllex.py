"""One SQL lexer for everything that must not look inside strings, comments or dollar quotes.

Macro detection, execution-unit splitting and metadata comment detection all work on the
*mask* of a script: a copy of the same length in which the insides of comments, string
literals, quoted identifiers and dollar-quoted bodies are replaced by a filler, so a plain
left-to-right scan over the mask only ever sees real SQL tokens. Pure standard library.

Mask rules (what the server would not read as code is masked), indexed in code points (mask[i] pairs with text[i]):

* filler is a space `' '`;
* line comment `--…`: both dashes and the body are blanked, up to the end of the line;
* block comment `/* … */`: blanked completely including its delimiters, nesting counted;
* string `'…'`: the quotes stay, the body is blanked, a doubled `''` stays visible; in an
  escape string (`E'`/`e'` whose `E` is not the tail of an identifier) a backslash and the
  character after it are blanked (so `E'\\''` never closes early);
* quoted identifier `"…"`: the quotes stay, the body is blanked, a doubled `""` stays;
* dollar quote `$$…$$` / `$tag$…$tag$` (tag: ASCII letter, `_` or any non-ASCII character, then
  those or ASCII digits, exactly as PostgreSQL's lexer; Go accepted only Unicode letters): the
  tags stay, the body is blanked. `$1` is no tag, and a `$` right after an identifier
  character (`a$b$`) is part of that identifier, as in PostgreSQL's own lexer.

Deliberate difference from the original: carriage returns and newlines are kept everywhere,
including inside strings and comments, so a line number computed on the mask equals the one
in the text. Every consumer treats CR/LF as blank anyway, so no split or macro decision changes.
An unterminated construct runs to the end of the input (see `unterminated()`).
"""

from __future__ import annotations

import functools
import itertools
import re

from pgmilib.records import field, record

# States of the scanner (also used by `unterminated` to describe what was left open).
_CODE, _LINE_COMMENT, _BLOCK_COMMENT, _STRING, _ESTRING, _QIDENT, _DOLLAR = range(7)

_CODE_SPECIAL = re.compile(r"--|/\*|['\"$]")
_BLOCK_TOKEN = re.compile(r"/\*|\*/")
_ESTRING_TOKEN = re.compile(r"['\\]")
# PostgreSQL's scan.l: a tag starts with [A-Za-z_] or any non-ASCII character and goes on with
# those and ASCII digits (so `$€$` is a tag; found by tests/reliability/test_rel_lexer.py).
# Written as negated ASCII sets: the same characters as [A-Za-z_\x80-\U0010ffff], but a class
# spanning the whole non-ASCII range took 10 ms to compile, on every pgmi start-up.
_DOLLAR_TAG_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"  # A-Z a-z _ and every non-ASCII character
_DOLLAR_TAG_CHAR = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # the same and 0-9
_DOLLAR_TAG = re.compile(rf"\$(?:{_DOLLAR_TAG_START}{_DOLLAR_TAG_CHAR}*)?\$")
_NOT_NEWLINE = re.compile(r"[^\r\n]")
# A run of plain code and simple literals (one line, no quote character inside), matched in
# one C-level call; only its literals need masking. Everything else (comments, dollar quotes,
# literals with doubled quotes or line breaks) goes through the careful per-construct path of
# `_scan`. A string is an escape string when an `E` that is no identifier tail precedes it:
# there a backslash pairs with the next character, elsewhere it is an ordinary character.
# Written as "code, then (special token, code)*" with every token starting at a fixed character:
# no possessive quantifier or atomic group (3.11+ only, and wrong in early 3.11 releases), yet
# nothing can backtrack into a different match: each token's body excludes the character that
# ends it, so when a token fails, the run simply ends before it, on every interpreter.
_CODE_RUN = r"""[^'"$/\-]*"""
_EASY_RUN = re.compile(
    _CODE_RUN + r"""(?:(?:"""
    r"""'(?:(?<![Ee]')|(?<=[\w$][Ee]'))[^'\r\n]*'(?!')"""  # 'plain string'
    r"""|'(?<=[Ee]')(?<![\w$][Ee]')[^'\\\r\n]*(?:\\[^'\r\n][^'\\\r\n]*)*'(?!')"""  # E'escape string'
    r"""|"[^"\r\n]*"(?!")"""  # "quoted identifier"
    r"""|/(?!\*)|-(?!-))""" + _CODE_RUN + r""")*"""
)
_EASY_LITERAL = re.compile(r"'[^'\r\n]*'|\"[^\"\r\n]*\"")


# The regex engine keeps a backtracking record per token of a run: 64 KB windows bound its memory and
# keep it in cache (as fast as a possessive pattern; 1 MB windows were twice as slow).
_EASY_WINDOW = 1 << 16
_SAFE_BOUNDARY = re.compile(r"[^/\-'\"\\]")


def _window_end(text: str, pos: int) -> int:
    """End of the next easy-run window: `_EASY_WINDOW` on, just after a character that needs no lookahead.

    Bounds the memory of masking one run; since the character before the boundary is no `/`,
    `-`, quote or backslash, no token decided by what follows can end at the boundary.
    """
    if len(text) - pos <= _EASY_WINDOW:
        return len(text)
    m = _SAFE_BOUNDARY.search(text, pos + _EASY_WINDOW)
    return m.end() if m else len(text)


def _blank_literal(m: re.Match) -> str:
    literal = m.group()
    return literal[0] + " " * (len(literal) - 2) + literal[0]


def _mask_easy(chunk: str) -> str:
    """Mask an easy run without a Python step per character (and mostly none per literal).

    Its literals hold no quote character of their own kind, so splitting at `'` puts string
    bodies at the odd places, unless a quoted identifier holds a `'` (then some code piece
    has an odd number of `"`, and the regex path decides).
    """
    if "'" not in chunk:
        return _split_blank(chunk, '"') if '"' in chunk else chunk
    parts = chunk.split("'")
    if '"' in chunk:
        codes = parts[0::2]
        if any(code.count('"') % 2 for code in codes):
            return _EASY_LITERAL.sub(_blank_literal, chunk)
        parts[0::2] = [_split_blank(code, '"') if '"' in code else code for code in codes]
    parts[1::2] = [" " * len(body) for body in parts[1::2]]
    return "'".join(parts)


def _split_blank(code: str, quote: str) -> str:
    pieces = code.split(quote)
    pieces[1::2] = [" " * len(body) for body in pieces[1::2]]
    return quote.join(pieces)


def _is_ident_char(ch: str) -> bool:
    """Characters that continue an identifier (so `e'` after `dat` is no escape string)."""
    return ch in "_$" or ord(ch) >= 0x80 or (ch.isascii() and ch.isalnum())  # as PostgreSQL's ident_cont


def _blank(segment: str) -> str:
    if "\n" not in segment and "\r" not in segment:
        return " " * len(segment)
    return _NOT_NEWLINE.sub(" ", segment)


@record
class _Scan:
    """What one pass over a script found: its mask and the construct left open at the end."""

    mask: str
    open_state: int = _CODE
    open_at: int = -1  # offset where the construct left open began
    open_tag: str = ""
    block_comments: list[tuple[int, int]] = field(default_factory=list)
    line_comments: list[tuple[int, int]] = field(default_factory=list)


def _scan(text: str, fast: bool = True) -> _Scan:
    """Single linear pass: jumps between interesting characters with compiled regexes.

    Runs of code with simple literals are matched whole in C, so a 50 MB INSERT of millions of
    literals costs one `re.sub` callback per literal and no Python step per character.
    `fast=False` skips that shortcut (tests compare both paths).
    """
    out: list[str] = []
    append = out.append
    comments: list[tuple[int, int]] = []
    line_comments: list[tuple[int, int]] = []
    n = len(text)
    pos = 0
    special = _CODE_SPECIAL.search
    easy = _EASY_RUN.match
    while pos < n:
        run = easy(text, pos, _window_end(text, pos)) if fast else None
        if run is not None and run.end() > pos:
            chunk = run.group()
            append(_mask_easy(chunk))
            pos = run.end()
            if pos >= n:
                break
        m = special(text, pos)
        if m is None:
            append(text[pos:])
            break
        start = m.start()
        append(text[pos:start])
        token = m.group()
        if token == "'":
            escape = (
                start > 0
                and text[start - 1] in "Ee"
                and (start < 2 or not _is_ident_char(text[start - 2]))
            )
            end = _string_end(text, start, escape, out)
            if end < 0:
                return _Scan("".join(out), _ESTRING if escape else _STRING, start, "", comments, line_comments)
            pos = end
        elif token == '"':
            end = _quoted_end(text, start, '"', out)
            if end < 0:
                return _Scan("".join(out), _QIDENT, start, "", comments, line_comments)
            pos = end
        elif token == "--":
            end = text.find("\n", start)
            end = n if end < 0 else end
            append(_blank(text[start:end]))
            line_comments.append((start, end))
            pos = end
        elif token == "/*":
            depth, cur = 0, start
            while True:
                t = _BLOCK_TOKEN.search(text, cur)
                if t is None:
                    append(_blank(text[start:]))
                    comments.append((start, n))
                    return _Scan("".join(out), _BLOCK_COMMENT, start, "", comments, line_comments)
                depth += 1 if t.group() == "/*" else -1
                cur = t.end()
                if depth == 0:
                    break
            append(_blank(text[start:cur]))
            comments.append((start, cur))
            pos = cur
        else:  # "$"
            tag = _DOLLAR_TAG.match(text, start)
            if tag is None or (start > 0 and _is_ident_char(text[start - 1])):
                append("$")
                pos = start + 1
                continue
            tag_text = tag.group()
            close = text.find(tag_text, tag.end())
            append(tag_text)
            if close < 0:
                append(_blank(text[tag.end():]))
                return _Scan("".join(out), _DOLLAR, start, tag_text, comments, line_comments)
            append(_blank(text[tag.end():close]))
            append(tag_text)
            pos = close + len(tag_text)
    return _Scan("".join(out), _CODE, -1, "", comments, line_comments)


def _quoted_end(text: str, start: int, quote: str, out: list[str]) -> int:
    """Body of a `'…'` or `"…"` without backslash escapes; returns the offset after the close, or -1."""
    out.append(quote)
    cur = start + 1
    n = len(text)
    while True:
        close = text.find(quote, cur)
        if close < 0:
            out.append(_blank(text[cur:]))
            return -1
        out.append(_blank(text[cur:close]))
        if close + 1 < n and text[close + 1] == quote:  # doubled quote stays visible
            out.append(quote + quote)
            cur = close + 2
            continue
        out.append(quote)
        return close + 1


def _string_end(text: str, start: int, escape: bool, out: list[str]) -> int:
    """A string literal starting at `start`; escape strings also honour backslashes."""
    if not escape:
        return _quoted_end(text, start, "'", out)
    out.append("'")
    cur = start + 1
    n = len(text)
    while True:
        t = _ESTRING_TOKEN.search(text, cur)
        if t is None:
            out.append(_blank(text[cur:]))
            return -1
        at = t.start()
        out.append(_blank(text[cur:at]))
        if t.group() == "\\":
            out.append(_blank(text[at:at + 2]))
            cur = at + 2
            if cur > n:
                return -1
            continue
        if at + 1 < n and text[at + 1] == "'":
            out.append("''")
            cur = at + 2
            continue
        out.append("'")
        return at + 1


_last_scan: tuple[str, _Scan] | None = None


def _scan_cached(text: str) -> _Scan:
    """`_scan`, remembering the last script: the macro finder and the splitter mask the same text."""
    global _last_scan
    last = _last_scan
    if last is not None and last[0] is text:
        return last[1]
    scan = _scan(text)
    if len(text) >= _EASY_WINDOW:  # only worth keeping for big scripts
        _last_scan = (text, scan)
    return scan


def mask(text: str) -> str:
    """The same-length masked copy of `text` (rules in the module docstring)."""
    return _scan_cached(text).mask


def block_comment_spans(text: str) -> list[tuple[int, int]]:
    """Top-level `/* … */` spans as (start, end) offsets, end just past `*/` (or len(text))."""
    return _scan(text).block_comments


def comment_spans(text: str) -> list[tuple[int, int]]:
    """Top-level comments (`--` to the end of the line, `/* … */`) as (start, end) offsets, in order."""
    scan = _scan(text)
    return sorted(scan.block_comments + scan.line_comments)


def unterminated(text: str) -> str | None:
    """Describe a dollar quote, block comment, string or quoted identifier left open at end of text.

    PostgreSQL would only say "unterminated ... at or near" for the whole unit; naming the
    construct and the line it starts on points the user at the real mistake.
    """
    scan = _scan_cached(text)
    if scan.open_state == _CODE:
        return None
    line = text.count("\n", 0, scan.open_at) + 1
    what = {
        _BLOCK_COMMENT: "block comment",
        _STRING: "quoted string",
        _ESTRING: "escape string (E'...')",
        _QIDENT: "quoted identifier",
        _DOLLAR: f"dollar-quoted string {scan.open_tag}",
    }[scan.open_state]
    return f"unterminated {what} starting at line {line}"


def line_col(text: str, position: int) -> tuple[int, int] | None:
    """1-based character `position` -> 1-based (line, column); None when outside 1..len+1.

    This is how PostgreSQL's Position field is turned into a place in the script: walk the
    first position-1 characters, count newlines, then characters since the last newline.
    """
    if position < 1 or position > len(text) + 1:
        return None
    index = position - 1
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def source_line(text: str, line: int) -> str:
    """The 1-based `line` of `text` without its line ending ('' when out of range)."""
    lines = text.split("\n")
    if 1 <= line <= len(lines):
        return lines[line - 1].rstrip("\r")
    return ""


# ---- execution units ------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z]+")
_TERMINATORS = frozenset({"COMMIT", "END", "ROLLBACK", "ABORT"})
_BLANK_CHARS = " \t\r\n"


@record
class Unit:
    """One message sent with the simple query protocol: a span of the script, not a copy of it padded.

    `text` is the unit's own text, `start_offset` where it begins in the script, so a server
    Position p in it is script offset `start_offset + p - 1` (`script_position`). Earlier
    versions padded each tail unit with the newlines before it, which made memory quadratic in
    the number of tail statements. `ordinal` is 0-based (unit 0 = atomic head); `start_line`
    is the script line of the unit's first non-blank character.
    """

    text: str
    ordinal: int
    start_line: int
    start_offset: int = 0

    def __init__(self, text: str, ordinal: int, start_line: int, start_offset: int = 0) -> None:
        # Written out (records keeps it): a script of 20,000 statements makes 20,000 units.
        self.text = text
        self.ordinal = ordinal
        self.start_line = start_line
        self.start_offset = start_offset

    def script_position(self, position: int) -> int | None:
        """The 1-based script position of 1-based `position` in this unit (None when outside it)."""
        if position < 1 or position > len(self.text) + 1:
            return None
        return self.start_offset + position


def _words(masked: str) -> list[str]:
    return [w.upper() for w in _WORD.findall(masked)]


def is_terminator(masked_statement: str) -> bool:
    """COMMIT/END/ROLLBACK/ABORT [WORK|TRANSACTION] [AND [NO] CHAIN]; not TO SAVEPOINT / PREPARED.

    Only the first three words matter, so a 50 MB statement is not split into words.
    """
    words = [m.group().upper() for m in itertools.islice(_WORD.finditer(masked_statement), 3)]
    if not words or words[0] not in _TERMINATORS:
        return False
    rest = words[1:]
    if rest and rest[0] in ("WORK", "TRANSACTION"):
        rest = rest[1:]
    return not rest or rest[0] == "AND"


@functools.cache
def _begin_atomic() -> re.Pattern[str]:
    """Compiled on first use: only a chunk that says "atomic" needs it (and it takes ~1 ms to compile)."""
    return re.compile(r"(?<![A-Za-z])BEGIN[ \t\r\n]+ATOMIC(?![A-Za-z])", re.IGNORECASE)


class _AtomicTracker:
    """Knows whether a `;` is inside a SQL-standard `BEGIN ATOMIC … END` function body."""

    def __init__(self) -> None:
        self.open = False

    def ends_statement(self, chunk: str) -> bool:
        """Feed the masked chunk since the previous depth-0 `;`; True if the statement ends there."""
        if self.open:
            m = _WORD.search(chunk)
            if m is not None and m.group().upper() == "END":
                self.open = False
                return True
            return False
        m = _begin_atomic().search(chunk) if "atomic" in chunk.lower() else None  # lower(): fast pre-check
        if m is None:
            return True
        balance = 0
        for word in _words(chunk[m.end():]):
            if word == "CASE":
                balance += 1
            elif word == "END":
                balance -= 1
                if balance < 0:
                    return True  # BEGIN ATOMIC … END closed within this chunk
        self.open = True
        return False


def _statement_ends(masked: str, start: int):
    """Yield offsets just past each top-level statement-ending `;` of masked[start:].

    Jumps from `;` to `;` and gets the parenthesis depth from C-level counts, so the
    millions of parentheses of a huge INSERT cost nothing per parenthesis in Python.
    """
    depth = 0
    tracker = _AtomicTracker()
    chunk_start = start
    scanned = start
    find, count = masked.find, masked.count
    while True:
        semi = find(";", scanned)
        if semi < 0:
            return
        depth += count("(", scanned, semi) - count(")", scanned, semi)
        scanned = semi + 1
        if depth == 0:
            chunk = masked[chunk_start:semi]
            chunk_start = semi + 1
            if tracker.ends_statement(chunk):
                yield semi + 1


def _head_end(masked: str) -> int | None:
    """Offset just past the first top-level transaction terminator, or None."""
    previous = 0
    for end in _statement_ends(masked, 0):
        if is_terminator(masked[previous:end - 1]):
            return end
        previous = end
    if is_terminator(masked[previous:]):
        return len(masked)
    return None


def _is_blank(masked: str, start: int = 0) -> bool:
    return _NON_BLANK.search(masked, start) is None


_NON_BLANK = re.compile(r"[^ \t\r\n]")


def split_units(text: str) -> list[Unit]:
    """Cut `text` into the atomic head and the psql-style tail.

    The head runs up to and including the first top-level COMMIT/END/ROLLBACK/ABORT and is
    sent as one message (one implicit transaction); every later top-level statement is its
    own unit, so `CREATE INDEX CONCURRENTLY` and `VACUUM` can follow a committed head.
    Linear in time and memory: units are slices of the script plus their offset.
    """
    scan = _scan_cached(text)
    masked = scan.mask
    # A construct left open at the end (an unterminated `/*`) masks to blanks but is not
    # nothing: it is sent, so the server rejects it as it would in the head.
    left_open = scan.open_state != _CODE
    head_end = _head_end(masked)
    if head_end is None or (_is_blank(masked, head_end) and not (left_open and head_end < len(text))):
        return [Unit(text, 0, _first_line(text, masked, 0), 0)]
    units = [Unit(text[:head_end], 0, _first_line(text, masked, 0), 0)]
    line = text.count("\n", 0, head_end) + 1  # line of offset `previous`
    previous = head_end

    def add(end: int) -> None:
        nonlocal previous, line
        first = _first_code(masked, previous, end)
        units.append(Unit(text[previous:end], len(units), line + text.count("\n", previous, first), previous))
        line += text.count("\n", previous, end)
        previous = end

    for end in _statement_ends(masked, head_end):
        add(end)
    if not _is_blank(masked, previous) or (left_open and previous < len(text)):
        add(len(text))
    return units


def _first_code(masked: str, start: int, end: int) -> int:
    """Offset of the first non-blank mask character in [start, end) (end if none)."""
    m = _NON_BLANK.search(masked, start, end)
    return m.start() if m else end


def _first_line(text: str, masked: str, start: int) -> int:
    return text.count("\n", 0, _first_code(masked, start, len(masked))) + 1


def statement_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank top-level statement: start at its first code character,
    end just past its `;` (or the end of the text). Comments between statements are skipped."""
    masked = mask(text)
    spans: list[tuple[int, int]] = []
    previous = 0
    for end in _statement_ends(masked, 0):
        first = _first_code(masked, previous, end - 1)
        if first < end - 1:
            spans.append((first, end))
        previous = end
    first = _first_code(masked, previous, len(masked))
    if first < len(masked):
        spans.append((first, len(masked)))
    return spans
