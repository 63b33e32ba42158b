"""Comments explain in place: every document a comment names is a file of this repository.

Comments and docstrings in pgmilib/, tests/, sql/, bench/, build.py, pgmi.py and the Makefile
are scanned. A reference to a Markdown file must name a file the repository has (a path, or the
tail of one: `docs/LOCKS.md`, `overview.md`); a quoted heading after it (`docs/X.md "Title"`)
must be a heading of that file. Section signs, numbered sections and issue numbers point at
text a reader of this repository cannot open, so they are refused outright. File names that
pgmi writes into a user's project (CLAUDE.md, AGENTS.md ...) are names, not references.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECTION_SIGN = "\u00a7"  # written escaped so this file does not trip its own rule

#: Files pgmi reads or writes in a user's project (`pgmi ai setup`, `pgmi init`): names, not references.
USER_PROJECT_FILES = {"CLAUDE.md", "AGENTS.md", "GEMINI.md", "SKILL.md", "copilot-instructions.md", "pgmi.md",
                      "README.md", "ARCHITECTURE.md"}
#: Where the benchmarks write their reports (git-ignored): a report's future path, not a reference.
GENERATED = ("bench/out/",)

_MD = re.compile(r"(?<![\w./<>{}*$-])([\w./-]*\w\.md)\b(?:,? \"([^\"]+)\")?")
_NUMBERED_SECTION = re.compile(r"\b(?:sec\.|section) ?\d", re.IGNORECASE)
_RFC_SECTION = re.compile(r"RFC \d+ section \d")
_ISSUE = re.compile(r"\bissues? #?\d+", re.IGNORECASE)


def _tracked_files() -> list[str]:
    """The repository's files, without descending into skipped directories (bench/work holds the
    benchmarks' projects, which a running `make bench` creates and removes while this walks)."""
    skip = {".git", ".venv", "node_modules", "dist", "build", "__pycache__", ".pytest_cache", "out", "work"}
    found = []
    for top, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        rel = Path(top).relative_to(REPO)
        found.extend((rel / name).as_posix() for name in sorted(files) if os.path.isfile(os.path.join(top, name)))
    return found


def _headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")]


def problems(text: str, files: list[str]) -> list[str]:
    """What is wrong with the references in one comment (empty when nothing is)."""
    found = []
    if SECTION_SIGN in text:
        found.append(f"a section sign ({SECTION_SIGN}) points at a document this repository does not have")
    for match in _NUMBERED_SECTION.finditer(text):
        if not _RFC_SECTION.search(text[max(0, match.start() - 12):match.end()]):
            found.append(f"numbered section {text[match.start():match.end() + 6]!r}: say the rule in place")
    for match in _ISSUE.finditer(text):
        found.append(f"{match.group(0)!r}: an issue number is not an explanation; say the rule in place")
    for match in _MD.finditer(text):
        name, heading = match.group(1), match.group(2)
        base = name.rsplit("/", 1)[-1]
        hits = [f for f in files if f == name or f.endswith("/" + name)]
        if not hits:
            if base not in USER_PROJECT_FILES and not name.startswith(GENERATED):
                found.append(f"{name}: no such file in this repository")
            continue
        if heading and not any(h.startswith(heading) for hit in hits for h in _headings(REPO / hit)):
            found.append(f"{name}: no heading starting with {heading!r}")
    return found


def _python_comments(path: Path) -> list[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    found = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                found.append((node.body[0].lineno, doc))
    return found


def _line_comments(path: Path, marker: str) -> list[tuple[int, str]]:
    return [(n, line[line.index(marker):]) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if marker in line]


def _sources() -> list[Path]:
    here = Path(__file__).resolve()
    paths = [REPO / "build.py", REPO / "pgmi.py", REPO / "Makefile"]
    for folder, pattern in (("pgmilib", "*.py"), ("tests", "*.py"), ("sql", "*.sql"), ("bench", "*.py")):
        paths += sorted((REPO / folder).rglob(pattern))
    generated = (REPO / "bench" / "work", REPO / "bench" / "out")  # git-ignored: what the benchmarks unpack and write
    return [p for p in paths if p.is_file() and p != here and "__pycache__" not in p.parts
            and not any(g in p.parents for g in generated)]


def test_comments_name_only_documents_the_repository_has():
    files = _tracked_files()
    report = []
    for path in _sources():
        if path.suffix == ".py":
            comments = _python_comments(path)
        else:
            comments = _line_comments(path, "--" if path.suffix == ".sql" else "#")
        for line, text in comments:
            report += [f"{path.relative_to(REPO)}:{line}: {p}" for p in problems(text, files)]
    assert not report, "comments that point at documents this repository does not have:\n" + "\n".join(report)


@pytest.mark.parametrize(("comment", "expected"), [
    ("the steps, in cli.md " + SECTION_SIGN + "5 order", ["section sign", "cli.md: no such file"]),
    ("(session-api.md sec. 10.2)", ["numbered section", "session-api.md: no such file"]),
    ("rehearsals (issue 15)", ["issue number"]),
    ("see notes/feasibility.md", ["notes/feasibility.md: no such file"]),
    ('docs/RELIABILITY.md "No such heading"', ["no heading starting with"]),
])
def test_the_scan_refuses_references_a_reader_cannot_open(comment, expected):
    found = problems(comment, _tracked_files())
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found)), found


@pytest.mark.parametrize("comment", [
    "the lock report (docs/LOCKS.md)", 'docs/RELIABILITY.md "Mutation testing" has the last score',
    'a CLAUDE.md that is a symbolic link', "RFC 8017 section 8.2", "read_doc(\"client/go.md\")",
    "skills/<name>.md and skills/{stem}.md",
])
def test_the_scan_accepts_references_that_resolve(comment):
    assert problems(comment, _tracked_files()) == []
