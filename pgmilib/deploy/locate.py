"""Where a failure of deploy.sql happened when the server gave no Position in deploy.sql.

The evidence, surest first (the server's own Position is handled by the caller):

1. the server's internal query and position (syntax and analysis errors inside EXECUTEd
   text or inside a PL/pgSQL statement), mapped to the project file holding that text
   (`textmatch`: verbatim, or by fragments when deploy.sql rewrote it);
2. a `Failed in <file>: ...` message (templates re-raise errors that way): that file;
3. the CONTEXT (`W`) lines, innermost first: `PL/pgSQL function f(...) line N` (the body
   line in the file defining f, or in the DO block that ran), `SQL statement "..."` (the
   text EXECUTE ran, matched back to its file);
4. the failing unit of deploy.sql itself (a runtime error of a top-level statement);

and inside the statement found, the line naming the object of the message (`names`).
Every result says which evidence placed it (`located_by`) and whether the line is certain
(`exact`: printed `FILE:`) or a best guess (`CANDIDATE:` with the reason). Ambiguity is
never settled silently: other places are listed, best first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from pgmilib.deploy.bodies import do_block_lines, first_column, function_lines, hint_at, hint_point, line_offset
from pgmilib.deploy.names import find_mention
from pgmilib.deploy.textmatch import TextMatch, find_text
from pgmilib.errors import PgDiagnostics
from pgmilib.project.scan import Project
from pgmilib.records import field, record
from pgmilib.sqllex import Unit, source_line, statement_spans

SCRIPT_NAME = "deploy.sql"
FAILED_IN = re.compile(r"Failed in (.+?\.sql)(?=[:\s,;)]|$)")
NO_POSITION = "the server gave no position inside it"
#: A text shorter than this (blanks aside), found inside a larger file, is no proof of origin.
SHORT_TEXT = 24


@record
class Location:
    """A place in a project file (or deploy.sql) and how it was found."""

    file: str
    line: int | None
    column: int | None = None
    exact: bool = True
    located_by: str = ""  # position | internal-position | plpgsql-line | statement | unit | name | fragments | message
    reason: str = ""
    source_line: str = ""
    candidates: list[str] = field(default_factory=list)  # every place, best first, when there are several

    @property
    def place(self) -> str:
        return _place(self.file, self.line, self.column)


def _place(path: str, line: int | None, column: int | None) -> str:
    return path + (f":{line}" if line else "") + (f":{column}" if line and column else "")


# ---- the CONTEXT field ------------------------------------------------------------------

_PLPGSQL_LINE = re.compile(r"^PL/pgSQL function (.+?) line (\d+) at (.+)$", re.DOTALL)
_CONTEXT_START = re.compile(
    r"\n(?=PL/pgSQL function |SQL statement \"|SQL function |PL/pgSQL assignment |SQL expression \"|"
    r"PL/Python |PL/Perl |JSON data|COPY |parallel worker|portal )"
)
_DYNAMIC = ("EXECUTE", "FOR over EXECUTE statement", "OPEN", "RETURN QUERY")


def context_items(where: str) -> list[str]:
    """Split a CONTEXT ('W') field into its items, innermost first.

    Items are separated by newlines, but an item quoting SQL ('SQL statement "...') may
    itself contain newlines, so only a newline followed by a known item start splits.
    """
    return _CONTEXT_START.split(where) if where else []


def quoted_statement(item: str) -> str | None:
    prefix = 'SQL statement "'
    if item.startswith(prefix) and item.endswith('"'):
        return item[len(prefix):-1]
    return None


def _frame(item: str) -> tuple[str, int, str] | None:
    m = _PLPGSQL_LINE.match(item)
    return (m.group(1), int(m.group(2)), m.group(3).strip()) if m else None


# ---- the entry point --------------------------------------------------------------------

@record
class Failure:
    """What the locator knows about one failure: the server's fields and where the unit came from."""

    diag: PgDiagnostics
    unit: Unit
    index: int
    total: int
    script: str  # the (expanded) deploy.sql the unit was cut from
    files: Mapping[str, str]

    def __post_init__(self) -> None:
        self._texts = _WithScript(self.files, self.script)

    def texts(self) -> Mapping[str, str]:
        """Project files and deploy.sql: functions and dynamic SQL may live in either."""
        return self._texts


class _WithScript(Mapping[str, str]):
    """The project's texts plus deploy.sql, each read from disk once per failure (the locator
    may pass over the project a few times; the texts are dropped with the report)."""

    def __init__(self, files: Mapping[str, str], script: str) -> None:
        self._files, self._script = files, script
        self._read: dict[str, str] = {}

    def __getitem__(self, path: str) -> str:
        if path == SCRIPT_NAME:
            return self._script
        text = self._read.get(path)
        if text is None:
            text = self._read[path] = self._files[path]
        return text

    def __iter__(self) -> Iterator[str]:
        yield from self._files
        yield SCRIPT_NAME

    def __len__(self) -> int:
        return len(self._files) + 1


def locate_failure(failure: Failure) -> Location | None:
    """The best-supported place of a failure without a Position in deploy.sql, or None."""
    diag = failure.diag
    items = context_items(diag.where)
    if diag.internal_query:
        found = _internal(failure, items)
        if found:
            return found
    failed = FAILED_IN.search(diag.message)
    if failed and failed.group(1) in failure.files:
        return _named_file(failed.group(1), diag, failure.files[failed.group(1)], failed.end())
    for k in range(len(items)):
        found = _from_item(failure, items, k)
        if found:
            return found
    if not items:
        return _failing_unit(failure)
    return None


def locate_text(project: Project | Mapping[str, str], text: str, offset: int | None = None) -> Location | None:
    """Where `text` (SQL the server ran or quoted, e.g. pg_stat_activity.query) comes from in the
    project (a scanned Project, or path -> text); `offset` (0-based) names a character of it,
    else the start of its first statement. For other reports than a failure (the rehearsal's
    lock report names the file and line of the statement that took a lock)."""
    files = project.contents() if isinstance(project, Project) else project
    match = find_text(files, text)
    if match is None:
        return None
    return _in_text(match, text, offset, diag=None, what="the text")


# ---- evidence ---------------------------------------------------------------------------

def _internal(failure: Failure, items: list[str]) -> Location | None:
    diag = failure.diag
    query, offset = diag.internal_query, (diag.internal_position or 1) - 1
    frame = _frame(items[0]) if items else None
    if frame and frame[2] not in _DYNAMIC:  # a statement written in a PL/pgSQL body
        return _plpgsql(failure, items, 0, hint=query, hint_offset=offset)
    match = find_text(failure.texts(), query)
    if match is None:
        return None
    return _in_text(match, query, offset if diag.internal_position else None, diag=diag,
                    what="the text", located_by="internal-position")


def _from_item(failure: Failure, items: list[str], k: int) -> Location | None:
    item = items[k]
    if _frame(item):
        return _plpgsql(failure, items, k)
    text = quoted_statement(item)
    if text is None:
        return None
    outer = _frame(items[k + 1]) if k + 1 < len(items) else None
    if outer and outer[2] not in _DYNAMIC:
        return _plpgsql(failure, items, k + 1, hint=text)
    match = find_text(failure.texts(), text)
    if match is None:
        return None
    return _in_text(match, text, None, diag=failure.diag, what="the EXECUTEd text")


def _in_text(match: TextMatch, text: str, offset: int | None, *, diag: PgDiagnostics | None, what: str,
             located_by: str = "statement") -> Location | None:
    """A place inside `text`, which `match` found in a file: at `offset`, or at the failing statement."""
    if offset is not None:
        return _at(match, text, offset, located_by, "")
    spans = statement_spans(text)
    mention = find_mention(diag.message, text, spans, diag.sqlstate) if diag else None
    if mention is not None and len(spans) == 1 and text.count("\n", spans[0][0], mention.offset) == 0:
        mention = None  # the one statement's first line: the start of the text is certain enough
    if mention is not None:
        start = match.place(text, mention.statement[0])
        first = start[0] if start else None
        line = match.place(text, mention.offset)
        reason = mention.name.describe()
        if first and line and first != line[0]:
            reason += f", in the failing statement at line {first}"
        found = _at(match, text, mention.offset, "name", reason)
        if found is not None:
            found.exact = False
            return found
    if len(spans) == 1:
        return _at(match, text, spans[0][0], "statement", f"start of {what}; {NO_POSITION}")
    others = sorted({m.file for m in match.others} - {match.file})
    return Location(match.file, None, None, False, "statement",
                    f"the server gave no position inside {what}, which holds {len(spans)} statements", candidates=others)


def _at(match: TextMatch, text: str, offset: int, located_by: str, reason: str) -> Location | None:
    """The place of character `offset` of `text`; with several verbatim copies, all of them."""
    where = match.place(text, offset)
    if where is None:
        return None
    line, column, exact = where
    if match.verbatim and not match.whole and len(text.strip()) < SHORT_TEXT:
        exact = False  # a short text found inside a file may as well be built by deploy.sql
        reason = reason or "a short text found in this file; deploy.sql may have built it"
    if not match.verbatim:
        located_by = "fragments"
        reason = ("deploy.sql changed the text before running it; "
                  + ("this line is unchanged" if exact else "placed by the text around it")
                  + (f"; {reason}" if reason else ""))
    loc = _location(match.file, match.content, line, column, exact, located_by, reason)
    if match.others:
        places = [loc.place]
        for other in match.others:
            spot = other.place(text, offset)
            if spot is not None:
                places.append(_place(other.file, spot[0], spot[1]))
        loc.exact = False
        count = f"at least {len(places)}" if match.more else str(len(places))
        loc.reason = f"the same text is in {count} places" + (f"; {reason}" if reason else "")
        loc.candidates = places
    return loc


def _location(path: str, content: str, line: int, column: int | None, exact: bool, located_by: str,
              reason: str) -> Location:
    return Location(path, line, column, exact, located_by, reason, source_line(content, line))


def _named_file(path: str, diag: PgDiagnostics, content: str, after: int) -> Location:
    """`Failed in ./x.sql: relation "t" does not exist`: the file is named; the line is the mention."""
    mention = find_mention(diag.message[after:], content, sqlstate=diag.sqlstate)
    if mention is None:
        return Location(path, None, None, False, "message", f"named by the error message; {NO_POSITION}")
    line = content.count("\n", 0, mention.offset) + 1
    column = mention.offset - (content.rfind("\n", 0, mention.offset) + 1) + 1
    return _location(path, content, line, column, False, "name",
                     f"the error message names the file; {mention.name.describe()}")


def _failing_unit(failure: Failure) -> Location | None:
    """A top-level statement of deploy.sql failed at run time: the failing unit is known."""
    unit, script = failure.unit, failure.script
    spans = [(s + unit.start_offset, e + unit.start_offset) for s, e in statement_spans(unit.text)]
    if not spans:
        return None
    of = f"unit {failure.index + 1} of {failure.total}" if failure.total > 1 else "the failing statement"
    mention = find_mention(failure.diag.message, script, spans, failure.diag.sqlstate)
    if len(spans) == 1:
        line = script.count("\n", 0, spans[0][0]) + 1
        column = spans[0][0] - (script.rfind("\n", 0, spans[0][0]) + 1) + 1
        return _location(SCRIPT_NAME, script, line, column, True, "unit", f"{of}; {NO_POSITION}")
    if mention is not None:
        line = script.count("\n", 0, mention.offset) + 1
        column = mention.offset - (script.rfind("\n", 0, mention.offset) + 1) + 1
        return _location(SCRIPT_NAME, script, line, column, False, "name",
                         f"{of}: {mention.name.describe()}; {NO_POSITION}")
    last = script.count("\n", 0, spans[-1][0]) + 1
    return Location(SCRIPT_NAME, unit.start_line, None, False, "unit",
                    f"{of} (lines {unit.start_line}-{last}) failed; the server named no statement of it",
                    source_line(script, unit.start_line))


# ---- PL/pgSQL bodies --------------------------------------------------------------------

def _plpgsql(failure: Failure, items: list[str], k: int, *, hint: str | None = None,
             hint_offset: int | None = None) -> Location | None:
    """Line N of the PL/pgSQL body item k names; `hint` is the SQL the failing statement ran."""
    frame = _frame(items[k])
    assert frame is not None
    name, body_line, keyword = frame
    places: list[tuple[str, str, int]] = []  # (path, content, line)
    by = "plpgsql-line"
    if name == "inline_code_block":
        outer = quoted_statement(items[k + 1]) if k + 1 < len(items) else None
        if outer is not None:  # the DO block was EXECUTEd text
            match = find_text(failure.texts(), outer)
            if match is None:
                return None
            for line in do_block_lines(outer, body_line, keyword):
                offset = line_offset(outer, line)
                where = match.place(outer, offset)
                if where is not None:
                    places.append((match.file, match.content, where[0]))
            if not match.verbatim:
                by = "fragments"
        elif k == len(items) - 1:  # the DO block is a statement of the failing unit
            unit, script = failure.unit, failure.script
            base = script.count("\n", 0, unit.start_offset)
            places = [(SCRIPT_NAME, script, base + n) for n in do_block_lines(unit.text, body_line, keyword)]
    else:
        places = function_lines(name, body_line, keyword, failure.texts())
    places = [p for p in places if p[2] <= p[1].count("\n") + 1]
    if not places:
        return None
    if hint and len(places) > 1:
        confirmed = [p for p in places if hint_at(p[1], p[2], hint) is not None]
        places = confirmed or places
    places.sort(key=lambda p: (p[0] != SCRIPT_NAME if name == "inline_code_block" else False, p[0], p[2]))
    path, content, line = places[0]
    column = None
    point = hint_point(content, line, hint, hint_offset) if hint and hint_offset is not None else None
    if point is None and hint:
        found = hint_at(content, line, hint)
        point = found[0] if found else None
    if point is not None:
        line = content.count("\n", 0, point) + 1
        column = point - (content.rfind("\n", 0, point) + 1) + 1
    if column is None:
        text = source_line(content, line)
        column = len(text) - len(text.lstrip()) + 1 if text.strip() else None
    exact = len(places) == 1
    reason = "" if exact else f"{len(places)} bodies fit line {body_line} of {name}"
    if keyword in _DYNAMIC and (k > 0 or failure.diag.internal_query):
        # The failing text was EXECUTEd here, but pgmi could not trace it to a project file.
        exact, by = False, "executing-line"
        reason = "the EXECUTE that ran the failing text; that text was not found in the project"
    loc = _location(path, content, line, column, exact, by, reason)
    if len(places) > 1:
        loc.candidates = [loc.place] + [_place(p, n, first_column(c, n)) for p, c, n in places[1:]]
    return loc


