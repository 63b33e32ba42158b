"""Invariants of the normalized checksum (project/checksums.py), on generated SQL.

A script is a list of tokens (keywords, identifiers, operators, numbers, plain strings,
E'' strings, dollar quotes, quoted identifiers) joined by whitespace runs. Then:

* kept: any whitespace run replaced by another (an ASCII one right before E'...': a non-ASCII
  byte there makes the E the tail of a name, for the normalizer as for PostgreSQL) (incl. CRLF, tabs, the Unicode spaces Go's
  unicode.IsSpace knows), leading/trailing whitespace, a run replaced by a (nested) block
  comment or a line comment, ASCII case flips outside quotes, whitespace changes inside a
  literal (the collapse deliberately runs over literals too);
* changed: one token swapped for one with a different normal form, a token dropped, a case
  flip inside a quoted token.
"""

from __future__ import annotations

import random

from harness import FIGURES, PER_EXAMPLE, SEED, batched, hypothesis_settings, scale
from hypothesis import given, seed
from hypothesis import strategies as st

from pgmilib.project.checksums import normalized_checksum

CASES = scale(400, 30000)  # per property (two)

_UNQUOTED = ["SELECT", "from", "Users", "insert", "INTO", "t1", "x_y", "42", "3.5", "+", "-", "*", "/", "<", "=",
             ";", "(", ")", ",", "e", "E", "$1", "::", "tExt"]
_QUOTED = ["'a b'", "'X'", "'x'", "'it''s'", "'--no'", "'/*no*/'", "E'a\\'b'", "e'\\\\'", "$$ body; $$", "$t$ 'q' $t$",
           '"Users"', '"users"', '"a--b"', '"a/*x*/b"', '"a""b"', "'Production'", "$$ -- kept $$"]
_WS = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085", " \n\t "]


def _norm(token: str) -> str:
    """What the checksum sees of one token alone: case folded outside quotes, whitespace collapsed."""
    quoted = token[0] in "'\"$" or token[:2].lower() == "e'"
    return " ".join(token.split()) if quoted else token.lower()


def _ws(r: random.Random) -> str:
    return "".join(r.choice(_WS) for _ in range(r.randint(1, 3)))


def _comment(r: random.Random, depth: int = 0) -> str:
    if depth == 0 and r.random() < 0.4:
        return " --" + r.choice(["", " note; 'x", " /* not a block", " $$"]) + "\n"
    inner = r.choice(["", " c ", " ; 'x' ", ' "q" ', " -- inside ", " $$ "])
    if depth < 3 and r.random() < 0.4:
        inner += _comment(r, depth + 1)
    return "/*" + inner + "*/"


def _tokens(r: random.Random) -> list[str]:
    return [r.choice(_UNQUOTED if r.random() < 0.6 else _QUOTED) for _ in range(r.randint(1, 12))]


def _join(r: random.Random, tokens: list[str]) -> str:
    return r.choice(["", " ", "\n"]) + "".join(t + " " for t in tokens[:-1]) + tokens[-1]


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_comment_and_whitespace_changes_keep_the_checksum(case_seed):
    FIGURES["hostile cases tried"] += 1
    r = random.Random(case_seed)
    tokens = _tokens(r)
    base = normalized_checksum(" ".join(tokens))
    variant = r.choice(["", " ", "\r\n"]) + tokens[0]
    for token in tokens[1:]:
        choice = r.randrange(3)
        gap = _ws(r) if choice == 0 else _comment(r) if choice == 1 else _ws(r) + _comment(r) + _ws(r)
        if token[:2].lower() == "e'" and not gap.endswith((" ", "\t", "\n", "/")):
            gap += " "  # a non-ASCII byte right before E'...' makes the E part of a name (as on the server)
        variant += gap + (token if token[0] in "'\"$" or token[:2].lower() == "e'" else _flip_case(r, token))
    variant += _ws(r) if r.random() < 0.5 else ""
    if r.random() < 0.3:
        variant += " " + _comment(r).rstrip("\n") + (" " if r.random() < 0.5 else "")
    assert normalized_checksum(variant) == base, f"{' '.join(tokens)!r} vs {variant!r}"
    literal = next((t for t in tokens if t.startswith("'a b'")), None)
    if literal:  # whitespace inside a literal collapses too (documented)
        assert normalized_checksum(" ".join(tokens).replace("'a b'", "'a \t\n b'")) == base


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_token_changes_change_the_checksum(case_seed):
    FIGURES["hostile cases tried"] += 1
    r = random.Random(case_seed)
    tokens = _tokens(r)
    base = normalized_checksum(_join(r, tokens))
    i = r.randrange(len(tokens))
    replacement = r.choice([t for t in _UNQUOTED + _QUOTED if _norm(t) != _norm(tokens[i])])
    changed = tokens[:i] + [replacement] + tokens[i + 1:]
    assert normalized_checksum(_join(r, changed)) != base, f"{tokens} -> {changed}"
    if len(tokens) > 1:
        assert normalized_checksum(_join(r, tokens[:i] + tokens[i + 1:])) != base
    quoted = [j for j, t in enumerate(tokens) if t[0] in "'\"" and any(c.isalpha() for c in t)]
    if quoted:
        j = r.choice(quoted)
        flipped = tokens[:j] + [tokens[j].swapcase()] + tokens[j + 1:]
        assert normalized_checksum(_join(r, flipped)) != base, f"case inside {tokens[j]} must count"


def _flip_case(r: random.Random, token: str) -> str:
    return "".join(c.swapcase() if r.random() < 0.5 else c for c in token)
