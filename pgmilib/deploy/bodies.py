"""Lines inside PL/pgSQL bodies: `PL/pgSQL function f(integer) line 4 at RETURN` -> a file line.

Line N of a body counts from the line of its opening dollar tag. The functions here find the
bodies (DO blocks of a text, or every definition of a function in the project's texts), the
candidate lines, and where on them the SQL the server ran (its internal query) starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pgmilib.sqllex import mask, source_line

#: A dollar-quote tag as the mask keeps it (the body between two tags is blanked).
DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_DO = re.compile(r"(?<![\w$])DO(?![\w$])", re.IGNORECASE)
# plpgsql statement kinds whose first line names them ("line 4 at RAISE" is on a RAISE line).
_KEYWORDS = frozenset({"RAISE", "EXECUTE", "RETURN", "PERFORM", "CALL", "IF", "FOR", "FOREACH", "WHILE", "CASE",
                       "OPEN", "FETCH", "CLOSE", "ASSERT", "EXIT", "CONTINUE", "GET", "MOVE", "COMMIT", "ROLLBACK"})


def first_column(content: str, line: int) -> int | None:
    text = source_line(content, line)
    return len(text) - len(text.lstrip()) + 1 if text.strip() else None


def line_offset(text: str, line: int) -> int:
    at = 0
    for _ in range(line - 1):
        at = text.find("\n", at) + 1
    return at


def hint_at(content: str, line: int, hint: str) -> tuple[int, int] | None:
    """(offset, characters of the hint not in the file) where the SQL `hint` (the statement the
    server ran) starts on `line`. PL/pgSQL runs `PERFORM x` as `SELECT x`, so the hint is also
    tried without a leading SELECT."""
    start = line_offset(content, line)
    end = content.find("\n", start)
    window = content[start:start + max(len(hint) + 200, 400)]
    tries = [(hint, 0)]
    if hint[:7].upper() == "SELECT ":
        tries.append((hint[7:], 7))
    for core, lost in tries:
        at = window.find(core.strip()) if core.strip() else -1
        if at >= 0 and (end < 0 or start + at <= end):
            return start + at, lost
    return None


def hint_point(content: str, line: int, hint: str, offset: int) -> int | None:
    """Offset in `content` of character `offset` of `hint`, the statement starting on `line`.

    PL/pgSQL hands the server its statement text with parts blanked (`INTO n` and the line
    break after it become spaces), so the text from `offset` on is looked up instead: the
    longest piece of its line (up to 40 characters, at least 3) found after the statement start.
    """
    start = line_offset(content, line)
    window = content[start:start + len(hint) + 400]
    piece = hint[offset:offset + 40].split("\n", 1)[0].rstrip()
    while len(piece) >= 3:
        at = window.find(piece)
        if at >= 0:
            return start + at
        piece = piece[:-1]
    return None


def do_block_lines(text: str, body_line: int, keyword: str) -> list[int]:
    """Lines of `text` that 'PL/pgSQL function inline_code_block line N at KEYWORD' may mean.

    Line N of a DO body counts from the line of its opening dollar tag. With several DO
    blocks in the text the server does not say which one failed, so every block whose line
    N exists is a candidate, narrowed to those whose line shows the statement keyword.
    """
    masked = mask(text)
    lines = []
    for do in _DO.finditer(masked):
        tag = DOLLAR_TAG.search(masked, do.end())
        if tag is not None:
            lines.append(text.count("\n", 0, tag.start()) + body_line)
    return _filter(lines, text, keyword)


def _fits(text: str, line: int, keyword: str) -> bool:
    """Whether `line` exists in `text` and, for a known statement kind, mentions its keyword."""
    if line > text.count("\n") + 1:
        return False
    word = keyword.split(" ", 1)[0].upper()
    if word not in _KEYWORDS:
        return True
    return re.search(rf"(?<![\w$]){word}(?![\w$])", source_line(text, line), re.IGNORECASE) is not None


def _filter(lines: list[int], text: str, keyword: str) -> list[int]:
    """Lines that exist; those whose text shows the statement keyword win when there are any."""
    existing = [n for n in lines if _fits(text, n, "")]
    matching = [n for n in existing if _fits(text, n, keyword)]
    return matching or existing


def function_lines(signature: str, body_line: int, keyword: str,
                    texts: Mapping[str, str]) -> list[tuple[str, str, int]]:
    """Line `body_line` of the body of function `signature` ('s.f(integer)') wherever a text defines it."""
    name = signature.split("(", 1)[0]
    bare = name.rsplit(".", 1)[-1].strip('"')
    pattern = re.compile(
        r"(?<![\w$])(?:FUNCTION|PROCEDURE)\s+(?:[\w\"$]+\s*\.\s*)?\"?" + re.escape(bare) + r"\"?\s*\(",
        re.IGNORECASE,
    )
    candidates: list[tuple[str, str, int]] = []
    for path in texts:
        content = texts[path]
        # Cheap test before any regex: unquoted names are folded to lower case by the server,
        # so the file may spell them in any case; a quoted mixed-case name appears verbatim.
        if bare not in (content.lower() if bare.islower() else content) or pattern.search(content) is None:
            continue
        masked = mask(content)
        for m in pattern.finditer(content):  # raw text: a quoted name is blanked in the mask
            if masked[m.start()] == " ":  # the word FUNCTION sits in a comment or string
                continue
            tag = DOLLAR_TAG.search(masked, m.end())
            if tag is not None:
                line = content.count("\n", 0, tag.start()) + body_line
                if _fits(content, line, ""):
                    candidates.append((path, content, line))
    matching = [c for c in candidates if _fits(c[1], c[2], keyword)]
    return matching or candidates
