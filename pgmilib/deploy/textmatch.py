"""Find where a text the server ran came from in the project, even after deploy.sql changed it.

deploy.sql usually EXECUTEs a file's content as it is, but many rewrite it first:
`regexp_replace(content, 'CONCURRENTLY', '', 'g')`, `format(content, schema)`, placeholder
substitution, trimming. The server then quotes (or points into) the rewritten text. Two ways
to map it back, cheapest and surest first:

* verbatim: the text (or the text without surrounding blanks) occurs in a file; every
  character maps exactly;
* fragments: the text's longer lines are looked up in a hash set per file (one pass over the
  project, linear in its size), the file sharing the most distinctive lines wins, and the
  lines are aligned with anchors (lines unique on both sides, kept in order: patience
  alignment, O(n log n)). A line deploy.sql left as it was maps exactly; a changed line
  is placed between its anchors and reported as a candidate.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping

from pgmilib.records import field, record

#: A line must carry this many characters (blanks excluded) to count as a fragment: `);`,
#: `BEGIN` or `END;` are everywhere and identify nothing.
MIN_FRAGMENT = 8
#: Places of a text listed at most (a longer list says "at least").
MAX_PLACES = 20
#: Above this many project files holding a line, it is boilerplate, not evidence.
MAX_SPREAD = 50


@record
class TextMatch:
    """Where text of the server came from: `place(offset)` maps an offset of that text."""

    file: str
    content: str
    verbatim: bool
    start: int = 0  # verbatim: where the text starts in the file
    shift: int = 0  # verbatim: characters of the text's own leading blanks missing from the file
    others: list[TextMatch] = field(default_factory=list)  # other places holding the same text
    more: bool = False  # there are more places than MAX_PLACES
    whole: bool = False  # verbatim: the text is the whole file
    _anchors: list[tuple[int, int]] = field(default_factory=list)  # fragments: (text line, file line), 0-based
    _text_lines: list[str] = field(default_factory=list)
    _file_lines: list[str] = field(default_factory=list)

    def place(self, text: str, offset: int) -> tuple[int, int | None, bool] | None:
        """(1-based line, column or None, exact) in the file for 0-based `offset` of `text`."""
        if self.verbatim:
            at = self.start + max(offset - self.shift, 0)
            line = self.content.count("\n", 0, at) + 1
            return line, at - (self.content.rfind("\n", 0, at) + 1) + 1, True
        index = text.count("\n", 0, offset)
        column = offset - (text.rfind("\n", 0, offset) + 1)
        return self._line_for(index, column)

    def _line_for(self, index: int, column: int) -> tuple[int, int | None, bool] | None:
        anchors = self._anchors
        if not anchors:
            return None
        at = bisect.bisect_right(anchors, (index, len(self._file_lines) + 1)) - 1
        text_line = self._text_lines[index] if index < len(self._text_lines) else ""
        if at >= 0 and anchors[at][0] == index:
            guess = anchors[at][1]
            file_line = self._file_lines[guess]
            if file_line == text_line:
                return guess + 1, column + 1, True
            return guess + 1, _map_column(text_line, file_line, column), False
        before = anchors[at] if at >= 0 else (-1, -1)
        after = anchors[at + 1] if at + 1 < len(anchors) else (len(self._text_lines), len(self._file_lines))
        guess = before[1] + (index - before[0])
        same_gap = after[0] - before[0] == after[1] - before[1]
        if not before[1] < guess < after[1]:  # lines were added or removed: the most similar line
            guess = _most_similar(text_line, self._file_lines, before[1] + 1, after[1])
            if guess is None:
                return None
        file_line = self._file_lines[guess]
        exact = same_gap and file_line == text_line
        return guess + 1, (column + 1 if exact else _map_column(text_line, file_line, column)), exact


def _map_column(text_line: str, file_line: str, column: int) -> int | None:
    """1-based column in `file_line` of 0-based `column` of the changed `text_line`: inside the
    unchanged start, inside a word both lines hold, or inside the unchanged end; else None."""
    if column <= _common_prefix(text_line, file_line):
        return column + 1
    for m in _WORDS.finditer(text_line):
        if m.start() <= column < m.end():
            at = file_line.find(m.group())
            if at >= 0:
                return at + column - m.start() + 1
            break
    back = len(text_line) - column
    if back <= _common_prefix(text_line[::-1], file_line[::-1]):
        return len(file_line) - back + 1
    return None


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _most_similar(line: str, lines: list[str], start: int, end: int, window: int = 400) -> int | None:
    """Index in lines[start:end] sharing the most words with `line` (a bounded window)."""
    words = set(line.split())
    best, best_score = None, 0
    for i in range(start, min(end, start + window)):
        score = len(words & set(lines[i].split()))
        if score > best_score:
            best, best_score = i, score
    return best


def find_text(files: Mapping[str, str], text: str) -> TextMatch | None:
    """The project file `text` came from (verbatim first, then by fragments), or None."""
    if not text.strip():
        return None
    found = _verbatim(files, text)
    if found is None:
        found = _by_fragments(files, text)
    return found


def _occurrences(files: Mapping[str, str], needle: str) -> list[tuple[str, int]]:
    """(path, offset) of `needle`: whole-file matches if any, else its occurrences (at most
    MAX_PLACES + 1: a text found everywhere identifies nothing, and counting costs)."""
    contents = [path for path in files if needle in files[path]]
    exact = [(path, 0) for path in contents if len(files[path]) == len(needle)]
    if exact:
        return exact
    hits = []
    for path in contents:
        content = files[path]
        at = content.find(needle)
        while at >= 0 and len(hits) <= MAX_PLACES:
            hits.append((path, at))
            at = content.find(needle, at + 1)
    return hits


def verbatim_places(files: Mapping[str, str], text: str) -> list[tuple[str, int, int]]:
    """Every (path, start, shift) where `text`, or `text` without its surrounding blanks, occurs."""
    hits = _occurrences(files, text)
    shift = 0
    if not hits:  # a template may have trimmed the file text before EXECUTE
        stripped = text.strip()
        if not stripped:
            return []
        shift = len(text) - len(text.lstrip())
        hits = _occurrences(files, stripped)
    return sorted((path, at, shift) for path, at in hits)


def _verbatim(files: Mapping[str, str], text: str) -> TextMatch | None:
    places = verbatim_places(files, text)
    if not places:
        return None
    found = [TextMatch(path, files[path], True, at, shift, whole=files[path].strip() == text.strip())
             for path, at, shift in places[:MAX_PLACES]]
    found[0].others = found[1:]
    found[0].more = len(places) > MAX_PLACES
    return found[0]


def _by_fragments(files: Mapping[str, str], text: str) -> TextMatch | None:
    """The file sharing the most distinctive lines with `text`, else the most rare words
    (when deploy.sql changed every line, e.g. a schema placeholder in each); aligned by lines
    unique on both sides, else by words unique on both sides."""
    text_lines = text.split("\n")
    path = _source_by_lines(files, text_lines) or _source_by_words(files, text)
    if path is None:
        return None
    file_lines = files[path].split("\n")
    anchors = _anchors(text_lines, file_lines) or _word_anchors(text_lines, file_lines)
    if not anchors:
        return None
    return TextMatch(path, files[path], False, _anchors=anchors, _text_lines=text_lines, _file_lines=file_lines)


def _clear_winner(scores: list[tuple[float, float, str]]) -> str | None:
    """The best of (unique evidence, shared evidence, path) when it clearly beats the second."""
    scores.sort(reverse=True)
    if not scores or scores[0][1] <= 0:
        return None
    if len(scores) > 1:
        (unique, weighted, _), (unique2, weighted2, _) = scores[0], scores[1]
        if (unique2 * 2 > unique) if unique else (weighted2 * 2 > weighted):
            return None  # no clear source: better no file than a wrong one
    return scores[0][2]


def _source_by_lines(files: Mapping[str, str], text_lines: list[str]) -> str | None:
    wanted = {line for line in text_lines if len(line.strip()) >= MIN_FRAGMENT}
    if not wanted:
        return None
    shared: dict[str, set[str]] = {}
    spread: dict[str, int] = {}
    for path in files:
        common = wanted.intersection(files[path].split("\n"))
        if common:
            shared[path] = common
            for line in common:
                spread[line] = spread.get(line, 0) + 1
    # Lines no other file holds decide first; lines shared by a few files count a share each.
    return _clear_winner([(sum(len(line.strip()) for line in common if spread[line] == 1),
                           sum(len(line.strip()) / spread[line] for line in common if spread[line] <= MAX_SPREAD), path)
                          for path, common in shared.items()])


_WORDS = re.compile(r"[^\W\d][\w$]{3,}")
#: Words of the text looked up in every file, longest first; the lookups stop after this many
#: rare ones were found (or RARE_WORDS * 5 were tried): each is one C-speed pass over the project.
RARE_WORDS = 8


def _source_by_words(files: Mapping[str, str], text: str) -> str | None:
    words = sorted(set(_WORDS.findall(text)), key=lambda w: (-len(w), w))
    holders: dict[str, list[str]] = {}
    for word in words[:RARE_WORDS * 5]:
        found = [path for path in files if word in files[path]]
        if 0 < len(found) <= MAX_SPREAD:
            holders[word] = found
            if len(holders) >= RARE_WORDS:
                break
    unique: dict[str, float] = {}
    weighted: dict[str, float] = {}
    for word, found in holders.items():
        for path in found:
            weighted[path] = weighted.get(path, 0) + len(word) / len(found)
            if len(found) == 1:
                unique[path] = unique.get(path, 0) + len(word)
    return _clear_winner([(unique.get(path, 0), score, path) for path, score in weighted.items()])


def _word_anchors(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """Line pairs sharing a word that occurs once in each text, kept in order (patience)."""
    def once(lines: list[str]) -> dict[str, int]:
        seen: dict[str, int] = {}
        for i, line in enumerate(lines):
            for word in set(_WORDS.findall(line)):
                seen[word] = -1 if word in seen else i
        return seen

    ua, ub = once(a), once(b)
    first: dict[int, int] = {}
    for word, i in ua.items():
        j = ub.get(word, -1)
        if i >= 0 and j >= 0:
            first.setdefault(i, j)
    return _increasing(sorted(first.items()))


def _anchors(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """Patience alignment: lines unique in both lists, the longest run kept in the same order."""
    def unique(lines: list[str]) -> dict[str, int]:
        seen: dict[str, int] = {}
        for i, line in enumerate(lines):
            if len(line.strip()) >= MIN_FRAGMENT // 2:
                seen[line] = -1 if line in seen else i
        return {line: i for line, i in seen.items() if i >= 0}

    ua, ub = unique(a), unique(b)
    return _increasing(sorted((i, ub[line]) for line, i in ua.items() if line in ub))


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of (text line, file line) pairs increasing in both (patience sorting)."""
    tails: list[int] = []
    tail_at: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect.bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[pos] = j
            tail_at[pos] = k
        back[k] = tail_at[pos - 1] if pos > 0 else -1
    chain: list[tuple[int, int]] = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        chain.append(pairs[k])
        k = back[k]
    return chain[::-1]
