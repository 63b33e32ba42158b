"""What keeps pgmi running on every supported CPython (docs/PORTABILITY.md), checked on each.

`make test-pythons` runs the whole suite on every interpreter of the machine; these tests guard the
rules that a single interpreter cannot see break: no regular expression feature that only newer (or
only some) `re` versions have, one supported range stated everywhere, and one clear line, never a
traceback, on an interpreter below it.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from pgmilib.python_floor import MINIMUM, NEWER_PYTHON

REPO = Path(__file__).resolve().parent.parent


def possessive_or_atomic(pattern: str) -> list[int]:
    """Offsets of possessive quantifiers (`*+`, `++`, `?+`, `{m,n}+`) and atomic groups `(?>` in a regex.

    Python 3.11 added both, and early 3.11 patch releases (Debian 12's 3.11.2 among them) give wrong
    results for some of them: a pattern using them fails on 3.9/3.10 and can silently differ on 3.11.
    Escaped characters and character classes are skipped (`\\++` and `[*]+` are ordinary).
    """
    hits: list[int] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)  # a leading `]` is a member
            continue
        if pattern.startswith("(?>", i):
            hits.append(i)
        following_plus = pattern.startswith("+", i + 1)
        if following_plus and c in "*+?" and not (c == "?" and pattern[i - 1:i] == "("):
            hits.append(i)
        if following_plus and c == "}":
            counts = pattern[pattern.rfind("{", 0, i) + 1:i]
            if counts and re.fullmatch(r"\d*,?\d*", counts):
                hits.append(i)
        i += 1
    return hits


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, source text) of every string literal of a Python file, f-strings whole on 3.12+ too."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    found, fstring_starts = [], []
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING:
            found.append((token.start[0], token.string))
        elif token.type == fstring_start:
            fstring_starts.append(token.start)
        elif token.type == fstring_end:
            (row, col), (end_row, end_col) = fstring_starts.pop(), token.end
            found.append((row, source[offsets[row - 1] + col:offsets[end_row - 1] + end_col]))
    return found


def python_sources() -> list[Path]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "*.py"], capture_output=True, text=True,
                            check=False).stdout.split()
    paths = [REPO / name for name in listed] or sorted(REPO.glob("**/*.py"))
    this = Path(__file__).resolve()  # its examples are the forms it looks for
    return [p for p in paths if p.is_file() and not any(part.startswith(".venv") for part in p.parts)
            and p.resolve() != this]


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"a*+b", [1]), (r"[^x]++", [4]), (r"a?+", [1]), (r"a{2,3}+", [5]), (r"(?>ab)", [0]),
    (r"a*b+", []), (r"\++", []), (r"[*+]+", []), (r"[]+]+", []), (r"(?:a)+", []), (r"a{x}+", []),
    (r"\\++", [2]), ("rf\"{_WS}+\"", []),
])
def test_the_scanner_finds_each_form(pattern: str, expected: list[int]) -> None:
    assert possessive_or_atomic(pattern) == expected


def test_no_possessive_quantifier_or_atomic_group_in_any_source() -> None:
    """Every string literal of every Python file (pgmilib, build.py, pgmi.py, tests, bench)."""
    offenders = [f"{path.relative_to(REPO)}:{line}: {text[:60]}"
                 for path in python_sources() for line, text in string_literals(path) if possessive_or_atomic(text)]
    assert python_sources(), "no Python sources found"
    assert not offenders, "possessive quantifier or atomic group (Python 3.11+ only):\n" + "\n".join(offenders)


def test_the_supported_range_is_stated_the_same_everywhere() -> None:
    floor = f"{MINIMUM[0]}.{MINIMUM[1]}"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(rf'^requires-python = ">={re.escape(floor)}"', pyproject, flags=re.MULTILINE)
    assert re.search(rf'^target-version = "py{MINIMUM[0]}{MINIMUM[1]}"', pyproject, flags=re.MULTILINE)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"Python {floor} or newer" in readme
    portability = (REPO / "docs" / "PORTABILITY.md").read_text(encoding="utf-8")
    assert f"CPython {floor}" in portability
    assert f"pgmi needs Python {floor}" not in readme  # no stale floor in another wording
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "pgmilib/python_floor.py" in makefile  # the Makefile asks the same module


def _as_if(version: tuple[int, int, int], script: str, *args: str) -> subprocess.CompletedProcess:
    """Run `script` (pgmi.py, python_floor.py) with this interpreter pretending to be `version`."""
    pretend = (f"import runpy, sys; sys.version_info = {(*version, 'final', 0)!r}; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    return subprocess.run([sys.executable, "-c", pretend, str(REPO / script), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)


def test_an_older_python_gets_one_line_naming_it_and_what_to_do() -> None:
    result = _as_if((3, 8, 10), "pgmi.py", "version")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"pgmi: error: Python {MINIMUM[0]}.{MINIMUM[1]} or newer is required, but "
                             f"{sys.executable} is Python 3.8.10; run pgmi.py with a newer python3 "
                             f"({NEWER_PYTHON})\n")


def test_the_floor_itself_passes_on_this_interpreter() -> None:
    result = _as_if(tuple(sys.version_info[:3]), "pgmilib/python_floor.py", "advice")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    at_floor = _as_if((*MINIMUM, 0), "pgmilib/python_floor.py", "advice")
    assert (at_floor.returncode, at_floor.stderr) == (0, "")
    below = _as_if((MINIMUM[0], MINIMUM[1] - 1, 99), "pgmilib/python_floor.py", "make PYTHON=python3.11")
    assert below.returncode == 1 and "; make PYTHON=python3.11 (" in below.stderr
