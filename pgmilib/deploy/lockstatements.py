"""Which statement of the project took a lock: the text side of the rehearsal's lock report.

The server says *what* the rehearsal locked and rewrote (pg_locks, pg_class); it cannot say
*which file* did it when deploy.sql EXECUTEs every file from one DO loop (one statement, as
far as the server knows). This module answers that from the text: it finds the statements
that take a table lock stronger than ROW EXCLUSIVE (ALTER TABLE, CREATE INDEX, LOCK,
TRUNCATE, DROP, REFRESH MATERIALIZED VIEW, REINDEX, CLUSTER, CREATE TRIGGER, REFERENCES ...),
the relations they name and the mode PostgreSQL documents for them, and `locate()` picks,
for a relation the server reported, the statement that explains the reported lock.

Limits, stated where they are reported (docs/LOCKS.md): names built at run time
(`format('%I', ...)`) cannot be found; a name is matched by its last part and, when the
statement qualifies it, its schema, not through the search_path; when several files name
the relation, the first in plan order whose statement takes the reported mode wins.
Statements inside dollar-quoted bodies (DO blocks, EXECUTE strings) are searched too;
comments are not. `locate()` is the seam a finer locator can replace.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

from pgmilib.records import field, record
from pgmilib.sqllex import mask

#: PostgreSQL's table lock modes, weakest first (pg_locks spelling): the rank is the index + 1.
MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, \
    ACCESS_EXCLUSIVE = MODES

#: The documentation's conflict table ("Table-Level Lock Modes"): mode -> the modes it conflicts with.
CONFLICTS: dict[str, frozenset[str]] = {
    ACCESS_SHARE: frozenset({ACCESS_EXCLUSIVE}),
    ROW_SHARE: frozenset({EXCLUSIVE, ACCESS_EXCLUSIVE}),
    ROW_EXCLUSIVE: frozenset({SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}),
    SHARE_UPDATE_EXCLUSIVE: frozenset({SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                                       ACCESS_EXCLUSIVE}),
    SHARE: frozenset({ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}),
    SHARE_ROW_EXCLUSIVE: frozenset({ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                                    ACCESS_EXCLUSIVE}),
    EXCLUSIVE: frozenset({ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                          ACCESS_EXCLUSIVE}),
    ACCESS_EXCLUSIVE: frozenset(MODES),
}


def rank(mode: str) -> int:
    """1 (AccessShareLock) .. 8 (AccessExclusiveLock); 0 for a name that is no table lock mode."""
    return MODES.index(mode) + 1 if mode in MODES else 0


def conflicts(wanted: str, held: str) -> bool:
    """Whether a lock `held` by another session makes a request for `wanted` wait."""
    return held in CONFLICTS.get(wanted, frozenset())


# ---- finding the statements -----------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}}"
_NAMES = rf"{_NAME}(?:\s*,\s*(?:ONLY\s+)?{_NAME})*"
_ONLY = r"(?:ONLY\s+)?"
_IF_EXISTS = r"(?:IF\s+EXISTS\s+)?"
_LOCK_MODE_WORDS = {
    "ACCESS SHARE": ACCESS_SHARE, "ROW SHARE": ROW_SHARE, "ROW EXCLUSIVE": ROW_EXCLUSIVE,
    "SHARE UPDATE EXCLUSIVE": SHARE_UPDATE_EXCLUSIVE, "SHARE": SHARE, "SHARE ROW EXCLUSIVE": SHARE_ROW_EXCLUSIVE,
    "EXCLUSIVE": EXCLUSIVE, "ACCESS EXCLUSIVE": ACCESS_EXCLUSIVE,
}

#: (kind, pattern with a group `names`, the mode, or None when the statement decides it).
_PATTERNS: tuple[tuple[str, re.Pattern[str], str | None], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE | re.DOTALL), mode) for kind, pattern, mode in (
        ("alter table", rf"\bALTER\s+(?:TABLE|FOREIGN\s+TABLE)\s+{_IF_EXISTS}{_ONLY}(?P<names>{_NAME})", None),
        ("alter", rf"\bALTER\s+(?:MATERIALIZED\s+VIEW|INDEX|SEQUENCE|VIEW)\s+{_IF_EXISTS}(?P<names>{_NAME})",
         ACCESS_EXCLUSIVE),
        ("create index", (rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
                          rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:{_IDENT}\s+)?ON\s+{_ONLY}(?P<names>{_NAME})"), None),
        ("create trigger", (rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+{_IDENT}\s+"
                            rf"(?:[^;]{{0,400}}?)\bON\s+(?P<names>{_NAME})"), SHARE_ROW_EXCLUSIVE),
        ("policy", rf"\b(?:CREATE|ALTER|DROP)\s+POLICY\s+{_IF_EXISTS}{_IDENT}\s+ON\s+(?P<names>{_NAME})",
         ACCESS_EXCLUSIVE),
        ("lock", rf"\bLOCK\s+(?:TABLE\s+)?{_ONLY}(?P<names>{_NAMES})(?:\s+IN\s+(?P<lockmode>[A-Z\s]+?)\s+MODE)?",
         None),
        ("truncate", rf"\bTRUNCATE\s+(?:TABLE\s+)?{_ONLY}(?P<names>{_NAMES})", ACCESS_EXCLUSIVE),
        ("drop", (rf"\bDROP\s+(?:TABLE|INDEX|MATERIALIZED\s+VIEW|VIEW|SEQUENCE|FOREIGN\s+TABLE)\s+"
                  rf"{_IF_EXISTS}(?P<names>{_NAMES})"), ACCESS_EXCLUSIVE),
        ("refresh", rf"\bREFRESH\s+MATERIALIZED\s+VIEW\s+(?P<concurrently>CONCURRENTLY\s+)?(?P<names>{_NAME})",
         None),
        ("reindex", rf"\bREINDEX\s+(?:\([^)]*\)\s+)?(?:TABLE|INDEX)\s+(?P<names>{_NAME})", SHARE),
        ("cluster", rf"\bCLUSTER\s+(?:VERBOSE\s+)?(?P<names>{_NAME})", ACCESS_EXCLUSIVE),
        ("references", rf"\bREFERENCES\s+(?P<names>{_NAME})", SHARE_ROW_EXCLUSIVE),
        ("comment", rf"\bCOMMENT\s+ON\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)\s+(?P<names>{_NAME})",
         SHARE_UPDATE_EXCLUSIVE),
        ("analyze", rf"\bANALYZE\s+(?:VERBOSE\s+)?(?P<names>{_NAME})", SHARE_UPDATE_EXCLUSIVE),
    )
)
_SPLIT_NAMES = re.compile(r"\s*,\s*(?:ONLY\s+)?", re.IGNORECASE)
_SPLIT_PARTS = re.compile(rf"({_IDENT})")
_NOT_NAMES = frozenset({"only", "if", "table", "in", "nowait", "cascade", "restrict", "on"})

# ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE (PostgreSQL's ALTER TABLE page),
# recognised when they are the statement's only subcommand.
_ALTER_LIGHT = (
    (re.compile(r"^\s*(?:VALIDATE\s+CONSTRAINT|ALTER\s+(?:COLUMN\s+)?\S+\s+SET\s+STATISTICS|CLUSTER\s+ON|"
                r"SET\s+WITHOUT\s+CLUSTER|ATTACH\s+PARTITION|DETACH\s+PARTITION\s[^;]*CONCURRENTLY)\b",
                re.IGNORECASE), SHARE_UPDATE_EXCLUSIVE),
    (re.compile(r"^\s*(?:ADD\s+(?:CONSTRAINT\s+\S+\s+)?FOREIGN\s+KEY|(?:ENABLE|DISABLE)\s+(?:ALWAYS\s+|REPLICA\s+)?"
                r"TRIGGER)\b", re.IGNORECASE), SHARE_ROW_EXCLUSIVE),
)
# What an ALTER TABLE does, for the advice lines (searched in the statement's own text).
_ADD_WITH_DEFAULT = re.compile(r"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?" + _IDENT +
                               r"\s[^,;]*?\b(?:DEFAULT|GENERATED\s+ALWAYS\s+AS\s*\()", re.IGNORECASE)
_TYPE_CHANGE = re.compile(r"\bALTER\s+(?:COLUMN\s+)?" + _IDENT + r"\s+(?:SET\s+DATA\s+)?TYPE\b", re.IGNORECASE)
_SET_NOT_NULL = re.compile(r"\bALTER\s+(?:COLUMN\s+)?" + _IDENT + r"\s+SET\s+NOT\s+NULL\b", re.IGNORECASE)

_BLANK_RUN = re.compile(r"[ \t\r\n]+")
STATEMENT_LIMIT = 4000  # characters of a statement kept for the advice checks (a 50 MB file is not copied)


@record(frozen=True)
class Statement:
    """One lock-taking statement found in a file."""

    path: str
    line: int
    kind: str  # "alter table", "create index", "lock", ...
    mode: str  # the table lock mode it takes on `names`
    names: tuple[tuple[str | None, str], ...]  # (schema or None, relation name), as the server folds them
    text: str = field(repr=False, default="")  # the statement from its keyword (at most STATEMENT_LIMIT)

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def may_rewrite(self) -> bool:
        """A statement that can give a table a new file (the server says whether it did)."""
        return self.kind in ("alter table", "cluster", "truncate", "refresh", "reindex")

    def adds_column_with_default(self) -> bool:
        return self.kind == "alter table" and _ADD_WITH_DEFAULT.search(self.text) is not None

    def changes_type(self) -> bool:
        return self.kind == "alter table" and _TYPE_CHANGE.search(self.text) is not None

    def sets_not_null(self) -> bool:
        return self.kind == "alter table" and _SET_NOT_NULL.search(self.text) is not None

    def builds_index(self) -> bool:
        return self.kind == "create index" and self.mode == SHARE


def fold(identifier: str) -> str:
    """An identifier as the server stores it: quoted verbatim, unquoted in lower case."""
    if identifier.startswith('"') and identifier.endswith('"') and len(identifier) >= 2:
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def split_name(name: str) -> tuple[str | None, str]:
    """`"My Schema".orders` -> ("My Schema", "orders"); a bare name has no schema."""
    parts = [fold(p) for p in _SPLIT_PARTS.findall(name)]
    if not parts:
        return None, fold(name)
    return (parts[-2] if len(parts) >= 2 else None), parts[-1]


class _Blanks:
    """Tells SQL code and literals (EXECUTE strings, DO bodies) from comments in one file.

    The mask blanks both comments and literal contents, but keeps a literal's quotes: the last
    character the mask kept before a blanked offset is a quote for a literal, anything else
    for a comment. Runs of blanks are found once per file; each question is a bisection.
    """

    def __init__(self, text: str, masked: str) -> None:
        self._text = text
        self._masked = masked
        self._runs: list[tuple[int, int]] | None = None
        self._starts: list[int] = []

    def in_code_or_literal(self, at: int) -> bool:
        if self._masked[at] == self._text[at]:
            return True
        if self._runs is None:
            self._runs = [(m.start(), m.end()) for m in _BLANK_RUN.finditer(self._masked)]
            self._starts = [start for start, _ in self._runs]
        i = bisect.bisect_right(self._starts, at) - 1
        if i < 0 or self._runs[i][1] <= at:
            return True
        before = self._runs[i][0] - 1
        return before >= 0 and self._masked[before] in "'$\""


def _statement_text(text: str, start: int) -> str:
    end = text.find(";", start, start + STATEMENT_LIMIT)
    return text[start:end if end >= 0 else start + STATEMENT_LIMIT]


def _mode_of(kind: str, match: re.Match[str], statement: str, fixed: str | None) -> str:
    if fixed is not None:
        return fixed
    if kind == "create index":
        return SHARE_UPDATE_EXCLUSIVE if match.group("concurrently") else SHARE
    if kind == "refresh":
        return EXCLUSIVE if match.group("concurrently") else ACCESS_EXCLUSIVE
    if kind == "lock":
        words = " ".join((match.group("lockmode") or "ACCESS EXCLUSIVE").upper().split())
        return _LOCK_MODE_WORDS.get(words, ACCESS_EXCLUSIVE)
    # ALTER TABLE: ACCESS EXCLUSIVE unless its only subcommand is a lighter one.
    rest = statement[match.end() - match.start():]
    if "," not in rest:
        for pattern, mode in _ALTER_LIGHT:
            if pattern.search(rest):
                return mode
    return ACCESS_EXCLUSIVE


def statements(path: str, text: str) -> list[Statement]:
    """The lock-taking statements of one file, in text order."""
    if not text:
        return []
    blanks = _Blanks(text, mask(text))
    found: list[tuple[int, Statement]] = []
    for kind, pattern, fixed in _PATTERNS:
        for match in pattern.finditer(text):
            start = match.start()
            if not blanks.in_code_or_literal(start):
                continue
            names = tuple(split_name(n) for n in _SPLIT_NAMES.split(match.group("names").strip()) if n)
            names = tuple(n for n in names if n[1] not in _NOT_NAMES)
            if not names:
                continue
            statement = _statement_text(text, start)
            line = text.count("\n", 0, start) + 1
            found.append((start, Statement(path, line, kind, _mode_of(kind, match, statement, fixed), names,
                                           statement)))
    found.sort(key=lambda item: item[0])
    return [s for _, s in found]


def index(sources: Iterable[tuple[str, str]]) -> list[Statement]:
    """Every lock-taking statement of `sources` ((path, text) in the order they run)."""
    result: list[Statement] = []
    for path, text in sources:
        result.extend(statements(path, text))
    return result


def names_relation(statement: Statement, schema: str, name: str) -> bool:
    return any(n == name and (s is None or s == schema) for s, n in statement.names)


def locate(found: Sequence[Statement], schema: str, name: str, mode: str, rewritten: bool) -> Statement | None:
    """The statement that best explains a lock the server reported on `schema.name`.

    Among the statements naming the relation with a mode stronger than ROW EXCLUSIVE, in
    run order: one that can rewrite (if the server says the relation got a new file), else
    one taking exactly the reported mode, else the first. None when no statement names it.
    """
    candidates = [s for s in found if rank(s.mode) > rank(ROW_EXCLUSIVE) and names_relation(s, schema, name)]
    if not candidates:
        return None
    tiers = []
    if rewritten:
        tiers.append([s for s in candidates if s.may_rewrite and s.mode == mode])
        tiers.append([s for s in candidates if s.may_rewrite])
    tiers.append([s for s in candidates if s.mode == mode])
    for tier in tiers:
        if tier:
            return tier[0]
    return candidates[0]
