"""The names an error message is about, and the line of a statement that mentions them.

`relation "app_flowz" does not exist`, `function convert_tz(text) does not exist`,
`column "nme" of relation "users" does not exist`: when the server gives no position, the
line that names the object is the best guess inside the failing statement (a 31-line
CREATE TABLE with the misspelled name on line 21 points at line 21). Names are matched as
words, case-insensitively unless quoted with capitals, outside comments; quoted and unquoted
spellings both count; a function name followed by `(` counts more than a bare mention.
"""

from __future__ import annotations

import re

from pgmilib.deploy.bodies import DOLLAR_TAG
from pgmilib.records import record
from pgmilib.sqllex import comment_spans, mask, statement_spans

_QUOTED = re.compile(r'"((?:[^"]|"")+)"')
# Unquoted object names the server prints with an argument list: function f(text) does not exist.
_ROUTINE = re.compile(r"\b(?:function|procedure|aggregate|routine)\s+([\w$.\"]+)\(([^()]*)\)")
_DEFINES = re.compile(r"\s*CREATE\b[\w\s]*$", re.IGNORECASE)
_DML = re.compile(r"\s*(?:WITH|INSERT|UPDATE|DELETE|MERGE|SELECT|COPY|VALUES|CALL|DO)\b", re.IGNORECASE)
#: SQLSTATEs whose message names no object, and the operator the failing statement must use.
_OPERATORS = {"22012": r"(?<![-/*])/(?![*/])|%|\b(?:div|mod)\s*\("}
_ALREADY = ("already exists", "is not unique", "specified more than once", "duplicate")
# Words of the message that are never object names even when quoted (`at or near "("`).
_NOT_NAMES = frozenset({"(", ")", ",", ";"})


@record
class Name:
    """One object the message names: `parts` of a qualified name, `routine` when it had arguments."""

    parts: list[str]
    routine: bool = False
    operator: bool = False  # parts[0] is a regular expression of an operator, not a name

    @property
    def text(self) -> str:
        return ".".join(self.parts)

    def describe(self) -> str:
        """Why a line was chosen, for the report: `names "app_flowz" from the error`."""
        return "the first division in the failing text" if self.operator else f'names "{self.text}" from the error'


def names_in(message: str) -> list[Name]:
    """The names a message is about, most specific first (as the server orders them)."""
    found: list[tuple[int, Name]] = []
    for m in _ROUTINE.finditer(message):
        parts = [p.strip('"') for p in m.group(1).split(".") if p.strip('"')]
        if parts:
            found.append((m.start(), Name(parts, routine=True)))
    for m in _QUOTED.finditer(message):
        raw = m.group(1).replace('""', '"')
        if raw in _NOT_NAMES or not raw.strip():
            continue
        raw = raw.rsplit("/", 1)[-1].removesuffix(".control")  # extension control file paths
        paren = raw.find("(")
        routine = paren > 0
        parts = [p.strip('"') for p in raw[:paren if routine else len(raw)].split(".") if p.strip('"')]
        if parts and any(ch.isalnum() or ch == "_" for ch in parts[-1]):
            found.append((m.start(), Name(parts, routine=routine)))
    found.sort(key=lambda item: item[0])
    return [name for _, name in found]


def _word(name: str) -> re.Pattern[str]:
    escaped = re.escape(name)
    flags = 0 if name != name.lower() else re.IGNORECASE  # a quoted mixed-case name appears verbatim
    return re.compile(r'(?<![\w$])"?' + escaped + r'"?(?![\w$])', flags)


def comment_free(text: str, depth: int = 0) -> str:
    """`text` with comments blanked (same length), strings and dollar bodies kept: names inside
    function bodies and dynamic SQL count, names in comments do not (also comments inside bodies)."""
    out = list(text)
    for start, end in comment_spans(text):
        out[start:end] = _blank(text[start:end])
    if depth < 3 and "$" in text:
        tags = list(DOLLAR_TAG.finditer(mask(text)))
        for opening, closing in zip(tags[0::2], tags[1::2]):
            body = text[opening.end():closing.start()]
            if "--" in body or "/*" in body:
                out[opening.end():closing.start()] = comment_free(body, depth + 1)
    return "".join(out)


def _blank(segment: str) -> list[str]:
    return [ch if ch in "\r\n" else " " for ch in segment]


@record
class Mention:
    """Where a statement names the object: offset into the text, and which name it was."""

    offset: int
    name: Name
    statement: tuple[int, int]


def find_mention(message: str, text: str, spans: list[tuple[int, int]] | None = None,
                 sqlstate: str = "") -> Mention | None:
    """The mention of the message's object that most likely failed, in `text`'s statements.

    Execution stops at the first failure, so the earliest statement naming the object wins;
    for `already exists` it is a statement that creates it (the second one when the text
    creates it twice), otherwise one that uses it rather than creates it. Data and integrity
    errors (SQLSTATE classes 22, 23) come from statements that change or read rows, so those
    win over DDL that names the same column; a division by zero names nothing, so the first
    statement that divides is the guess.
    """
    names = names_in(message)
    clean = comment_free(text) if names or sqlstate in _OPERATORS else ""
    spans = spans if spans is not None else statement_spans(text)
    if sqlstate in _OPERATORS:
        names.append(Name([_OPERATORS[sqlstate]], operator=True))
    already = any(word in message for word in _ALREADY)
    rows = sqlstate[:2] in ("22", "23")
    fallback: Mention | None = None
    for name in names:
        hits = _mentions(name, clean, spans)
        if rows and hits:
            dml = [h for h in hits if _DML.match(clean, h[1][0])]
            if not dml:  # only DDL names it: another name of the message may name the statement
                fallback = fallback or Mention(hits[0][0], name, hits[0][1])
                continue
            hits = dml
        if not hits:
            continue
        defining = [h for h in hits if h[2]]
        using = [h for h in hits if not h[2]]
        if already:
            pick = defining[1] if len(defining) > 1 else (defining or using)[0]
        else:
            pick = (using or defining)[0]
        return Mention(pick[0], name, pick[1])
    return fallback


def _mentions(name: Name, clean: str, spans: list[tuple[int, int]]) -> list[tuple[int, tuple[int, int], bool]]:
    """(offset, statement span, defines) of each mention, best spelling first within a statement."""
    bare = re.compile(name.parts[0]) if name.operator else _word(name.parts[-1])
    hits = []
    for start, end in spans:
        best = None
        for m in bare.finditer(clean, start, end):
            at = m.start() + (1 if clean[m.start()] == '"' else 0)
            score = 0
            if len(name.parts) > 1 and _qualified(clean, m.start(), name.parts[-2]):
                score += 2
            if name.routine and clean[m.end():m.end() + 20].lstrip().startswith("("):
                score += 1
            if best is None or score > best[0]:
                best = (score, at)
        if best is not None:
            defines = _DEFINES.match(clean, start, best[1]) is not None
            hits.append((best[1], (start, end), defines))
    return hits


def _qualified(clean: str, at: int, schema: str) -> bool:
    before = clean[max(0, at - len(schema) - 4):at].rstrip()
    return before.endswith(".") and schema.lower() in before.lower()
