"""The SQL lexer against the server: what pgmi calls one statement, PostgreSQL parses as one.

Scripts are generated from the pieces that hide semicolons: plain strings (backslashes are
literal there), E'' strings with escapes, dollar quotes with tags (ASCII, Unicode letters
and other non-ASCII characters, which PostgreSQL allows in tags), quoted identifiers,
identifiers containing `$`, line comments, nested block comments, parentheses and DO bodies.
Each script is checked three ways:

1. the server runs the whole script and reports one CommandComplete per generated
   statement (so the generator itself is right);
2. `split_units` (after a leading `ROLLBACK;`, which makes every later statement its own
   unit) yields exactly as many units;
3. the server runs each unit alone and reports exactly one statement for it.

A pure-Python property (no server) adds many more random texts: the mask keeps the length
and every newline, units never raise, and each tail unit is padding plus its own slice of
the script (so server positions map back to the script's line and column).
"""

from __future__ import annotations

import random
import time

import pg8000.native
import pytest
from harness import FIGURES, PER_EXAMPLE, SEED, batched, hypothesis_settings, scale
from hypothesis import given, seed
from hypothesis import strategies as st

from pgmilib import sqllex

SERVER_CASES = scale(100, 4000)
PURE_CASES = scale(500, 30000)


class CountingConnection(pg8000.native.Connection):
    """pg8000's connection counting the CommandComplete messages of each simple query."""

    completed = 0

    def handle_COMMAND_COMPLETE(self, data, context):
        self.completed += 1
        super().handle_COMMAND_COMPLETE(data, context)

    def statements(self, sql: str) -> int:
        self.completed = 0
        self.run(sql)
        return self.completed


@pytest.fixture(scope="module")
def counting(rel_server):
    conn = CountingConnection(**rel_server.cluster.conn_kwargs())
    yield conn
    conn.close()


# ---- the pieces ---------------------------------------------------------------------------
# Hypothesis draws one integer per case, the seed of a random.Random and the script is built from it: building
# through nested strategies cost ~100 ms per case, this costs ~0.1 ms (the 100k-case budget).

_TRICKY = [";", "'", "''", '"', "--", "/*", "*/", "$", "$$", "$a$", "\\", "\n", "\r\n", "\t", " ", "x", "é", "€",
           "BEGIN", "COMMIT", "END", "(", ")"]
_E_PARTS = [";", "\\'", "\\\\", "''", "\\n", "\\t", "\\;", '"', "--", "/*", "$$", "x", " ", "\n"]
_TAGS = ["", "a", "_x1", "tag", "é", "Ωmega", "€", "t€", "_€9", "ß_2", "\u00a0"]  # any non-ASCII char may be in a tag
_ALIASES = ["c", "semi", "a$b", "q$$", "x$1$", "t$€", "é$", "col$$x", "x€$$", "€$a$", "π$$", "a€"]


def _body(r: random.Random, exclude: tuple[str, ...] = ()) -> str:
    return "".join(r.choice([t for t in _TRICKY if t not in exclude]) for _ in range(r.randrange(9)))


def _plain_string(r: random.Random) -> str:
    return "'" + _body(r).replace("'", "''") + "'"  # backslashes are ordinary characters here


def _e_string(r: random.Random) -> str:
    return r.choice("Ee") + "'" + "".join(r.choice(_E_PARTS) for _ in range(r.randrange(9))) + "'"


def _dollar_string(r: random.Random) -> str:
    tag = "$" + r.choice(_TAGS) + "$"
    other = "$" + r.choice([t for t in _TAGS if "$" + t + "$" != tag]) + "$"
    body = "".join(r.choice([t for t in _TRICKY if t != "$"] + [other]) for _ in range(r.randrange(9)))
    if tag in body + tag[:-1] or body.endswith("$"):
        body = "x"
    return tag + body + tag


def _quoted_ident(r: random.Random) -> str:
    return '"' + (_body(r).replace('"', '""') or "q") + '"'


def _block_comment(r: random.Random, depth: int = 0) -> str:
    parts = [r.choice([t for t in _TRICKY if t not in ("/*", "*/", "$", "*")]) for _ in range(r.randrange(6))]
    if depth < 3 and r.random() < 0.4:
        parts.insert(r.randrange(len(parts) + 1), _block_comment(r, depth + 1))
    return "/*" + "".join(parts) + "*/"


def _gap(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(1, 3)):
        kind = r.randrange(4)
        if kind == 0:
            out.append(" -- " + _body(r, ("\n", "\r\n")) + "\n")
        elif kind == 1:
            out.append(" " + _block_comment(r) + " ")
        else:
            out.append(r.choice([" ", "\n", "\t", "\r\n "]))
    return " " + "".join(out) + " "


def _literal(r: random.Random) -> str:
    return r.choice([_plain_string, _e_string, _dollar_string, lambda r: str(r.randint(0, 99))])(r)


def _item(r: random.Random) -> str:
    value = _literal(r)
    if r.random() < 0.3:
        value = f"(SELECT{_gap(r)}{value})"
    if r.random() < 0.5:
        alias = _quoted_ident(r) if r.random() < 0.5 else r.choice(_ALIASES)
        value = f"{value}{_gap(r)}AS {alias}"
    return value


def _statement(r: random.Random) -> str:
    if r.random() < 0.15:
        tag = "$" + r.choice(_TAGS) + "$"
        inner = next(s for s in iter(lambda: r.choice([_plain_string, _e_string])(r), None) if tag not in s)
        inner_gap = next(g for g in iter(lambda: _gap(r), None) if tag not in g)
        return f"DO {tag}BEGIN PERFORM {inner};{inner_gap}PERFORM 1; END{tag}"
    return "SELECT" + _gap(r) + ("," + _gap(r)).join(_item(r) for _ in range(r.randint(1, 3)))


def make_script(r: random.Random) -> tuple[str, int]:
    """A script of 1-4 statements and its true statement count."""
    count = r.randint(1, 4)
    text = r.choice(["", "\n", " -- lead\n", "/* lead */"])
    for i in range(count):
        text += _statement(r) + r.choice(["", " "]) + ";"
        if i + 1 < count or r.random() < 0.5:
            text += _gap(r)
    return text, count


@seed(SEED)
@hypothesis_settings(SERVER_CASES)
@given(st.integers(0, 2**63))
def test_lexer_statement_boundaries_agree_with_the_server(counting, case_seed):
    text, expected = make_script(random.Random(case_seed))
    FIGURES["lexer cases checked on the server"] += 1
    FIGURES["hostile cases tried"] += 1
    assert counting.statements(text) == expected, f"generator check: the server disagrees with {text!r}"
    units = sqllex.split_units("ROLLBACK;\n" + text)[1:]
    assert len(units) == expected, f"lexer found {len(units)} statements, server {expected}: {text!r}"
    for unit in units:
        try:
            one = counting.statements(unit.text)
        except pg8000.exceptions.DatabaseError as error:
            raise AssertionError(f"unit {unit.text!r} of {text!r} is not a whole statement: {error}") from None
        assert one == 1, f"unit {unit.text!r} holds {one} statements"


# ---- pure properties, no server -----------------------------------------------------------

_NOISE = list("';\"$-/*\\Ee \n\r\tab()x€é_1") + ["$$", "$a$", "/*", "*/", "--", "COMMIT", "BEGIN ATOMIC", "END"]


@seed(SEED)
@hypothesis_settings(PURE_CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_mask_and_units_keep_the_script(case_seed):
    rnd = random.Random(case_seed)
    text = "".join(rnd.choice(_NOISE) for _ in range(rnd.randrange(200)))
    FIGURES["hostile cases tried"] += 1
    masked = sqllex.mask(text)
    assert len(masked) == len(text)
    assert [i for i, c in enumerate(masked) if c == "\n"] == [i for i, c in enumerate(text) if c == "\n"]
    units = sqllex.split_units(text)
    assert units and units[0].start_offset == 0
    bounds = [u.start_offset for u in units[1:]] + [None]
    if len(units) == 1:
        assert units[0].text == text
        return
    assert units[0].text == text[:units[1].start_offset]
    for unit, end in zip(units[1:], bounds[1:]):
        # a unit is a span of the script (no padding copies): its text is exactly what stands there
        assert text.startswith(unit.text, unit.start_offset)
        if end is not None:
            assert unit.start_offset + len(unit.text) <= end


@pytest.mark.parametrize("bomb", [
    "$a$" * 20000, "/*" * 30000, "'" * 60001, "E'\\" * 20000, "(" * 50000 + ";" * 1000,
    "BEGIN ATOMIC " * 10000 + ";" * 1000, "--\n" * 30000,
], ids=["tags", "open-comments", "quotes", "e-escapes", "parens", "atomic", "line-comments"])
def test_lexer_stays_linear_on_adversarial_input(bomb):
    started = time.monotonic()
    sqllex.split_units("COMMIT;" + bomb)
    sqllex.mask(bomb)
    assert time.monotonic() - started < 2.0
