"""The lexer: mask, unterminated constructs, execution units, line/column mapping. No database."""

from __future__ import annotations

import random

import pytest

from pgmilib.sqllex import (
    block_comment_spans,
    is_terminator,
    line_col,
    mask,
    source_line,
    split_units,
    unterminated,
)

# ---- mask ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SELECT 1; -- COMMIT;\nSELECT 2;", "SELECT 1;           \nSELECT 2;"),
        ("a /* x /* nested */ still */ b", "a                            b"),
        ("a /* one\ntwo */ b", "a       \n       b"),
        ("SELECT 1 -- at end of file", "SELECT 1                  "),
        ("SELECT 1 --", "SELECT 1   "),
        ("x E'\\'' y", "x E'  ' y"),
        ("x e'a\\\\' y", "x e'   ' y"),
        ("x 'it''s' y", "x '  '' ' y"),
        ("x 'a\\' y", "x '  ' y"),  # standard string: backslash is ordinary, quote closes
        ("date'a\\' x", "date'  ' x"),  # the E rule needs E not to end an identifier
        ("name'a\\' x", "name'  ' x"),
        ("$fn$ a $$ b $x$ c $fn$ d", "$fn$" + " " * 14 + "$fn$ d"),
        ("$$ $fn$ $$ e", "$$      $$ e"),
        ("$_t1$ x $_t1$", "$_t1$   $_t1$"),
        ("SELECT a$b$c, x$$ FROM t", "SELECT a$b$c, x$$ FROM t"),
        ("SELECT $1, $2$", "SELECT $1, $2$"),
        ('SELECT "a;""b" x', 'SELECT "  "" " x'),
        ("SELECT 'a\nb'", "SELECT ' \n '"),
        ("SELECT 'a\r\nb'", "SELECT ' \r\n '"),
        ("-- c\r\nx", "    \r\nx"),
        ("SELECT 'café'", "SELECT '    '"),
    ],
)
def test_mask_examples(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_mask_property_same_length_code_kept_newlines_kept() -> None:
    """Over random texts built from SQL-ish pieces: same length, newlines in place, only blanking."""
    pieces = ["SELECT", " ", "\n", "\r\n", ";", "'", "''", '"', "$$", "$f$", "$1", "--", "/*", "*/", "E'",
              "\\", "a$b", "(", ")", "é", "x", "COMMIT"]
    rng = random.Random(20261127)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        masked = mask(text)
        assert len(masked) == len(text)
        for a, b in zip(text, masked):
            assert b == a or b == " "
            if a in "\r\n":
                assert b == a


def test_block_comment_spans() -> None:
    text = "x /* a /* b */ */ y /* open"
    assert block_comment_spans(text) == [(2, 17), (20, len(text))]


# ---- unterminated -----------------------------------------------------------------------


def test_unterminated_cases_name_construct_and_line() -> None:
    assert unterminated("SELECT 1;\nSELECT 'x';\n") is None
    assert unterminated("SELECT 1; -- trailing comment") is None
    assert unterminated("SELECT 1;\n\nDO $body$\nBEGIN\n") == "unterminated dollar-quoted string $body$ starting at line 3"
    assert unterminated("SELECT 1;\n/* a /* b */\n") == "unterminated block comment starting at line 2"
    assert unterminated("x;\ny;\nSELECT 'abc;\n") == "unterminated quoted string starting at line 3"
    assert unterminated("SELECT E'abc\\'") == "unterminated escape string (E'...') starting at line 1"
    assert unterminated('\nSELECT "abc') == "unterminated quoted identifier starting at line 2"


# ---- terminator test and split ------------------------------------------------------------


@pytest.mark.parametrize(
    "stmt", ["COMMIT", "commit", "END", "END TRANSACTION", "COMMIT WORK", "COMMIT AND CHAIN", "ROLLBACK",
             "ROLLBACK AND NO CHAIN", "ABORT", "\n  Commit  "],
)
def test_terminators(stmt: str) -> None:
    assert is_terminator(stmt)


@pytest.mark.parametrize(
    "stmt", ["ROLLBACK TO s", "ROLLBACK TO SAVEPOINT s", "ROLLBACK TRANSACTION TO SAVEPOINT s", "ROLLBACK WORK TO s",
             "ABORT TRANSACTION TO SAVEPOINT s", "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'", "SELECT 1", "",
             "COMMITTED", "END_X"],
)
def test_non_terminators(stmt: str) -> None:
    assert not is_terminator(mask(stmt))


def _trimmed(text: str) -> list[str]:
    return [u.text.strip() for u in split_units(text)]


PINNED = [
    ("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n", 1),
    ("BEGIN;\nCREATE TABLE t (id int);\n", 1),
    ("BEGIN;\nSELECT 1;\nCOMMIT;\n-- done\n/* all done */\n", 1),
    ("CREATE RULE r AS ON DELETE TO t DO (SELECT 1; SELECT 2);\nCOMMIT;\nSELECT 3;\n", 2),
    ("SELECT 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id)", 2),
    ("DO $$ BEGIN EXECUTE 'COMMIT;'; END $$;\nSELECT 'COMMIT; SELECT 2;';\n", 1),
    ("-- COMMIT;\n/* COMMIT; */\nSELECT 1;\n", 1),
    ('SELECT 1 AS "note; COMMIT";\nSELECT 2;\n', 1),
    ("UPDATE t SET note = E'legacy\\'; COMMIT; keep' WHERE id = 1;\nSELECT 1;\n", 1),
    ("SELECT 'a\\';\nCOMMIT;\nSELECT 2;\n", 2),
    ("SELECT date'a\\';\nCOMMIT;\nSELECT 2;\n", 2),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nCREATE TABLE t (id int);\n", 1),
    (("SELECT 1;\nCOMMIT;\nCREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 "
      "ELSE 2 END; END;\nANALYZE t;\n"), 3),
    ("CREATE PROCEDURE p() LANGUAGE SQL BEGIN ATOMIC END;\nSELECT 1;\nCOMMIT;\nSELECT 2;\n", 2),
    ("SELECT begin, atomic FROM t;\nCOMMIT;\nSELECT 2;\n", 2),
    ("SELECT CASE WHEN x THEN 1 END FROM t;\nEND;\nSELECT 2;\n", 2),
    ("SELECT 1;\nCOMMIT;\n;\n", 2),
]


@pytest.mark.parametrize("text, count", PINNED)
def test_pinned_unit_counts(text: str, count: int) -> None:
    assert len(split_units(text)) == count
    assert len(split_units(text.replace("\n", "\r\n"))) == count


def test_single_unit_is_text_unchanged() -> None:
    text = "BEGIN;\nSELECT 1;\nCOMMIT;\n-- done\n"
    assert [u.text for u in split_units(text)] == [text]


def test_head_then_tail_statements() -> None:
    text = "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\nANALYZE t;\n"
    assert _trimmed(text) == ["BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;", "CREATE INDEX CONCURRENTLY i ON t (id);",
                              "ANALYZE t;"]
    assert [u.ordinal for u in split_units(text)] == [0, 1, 2]
    assert [u.start_line for u in split_units(text)] == [1, 4, 5]


def test_first_terminator_anchors() -> None:
    text = ("ALTER TABLE t ADD c int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i1 ON t (c);\nBEGIN;\nUPDATE t SET c = 1;\n"
            "COMMIT;\nCREATE INDEX CONCURRENTLY i2 ON t (c);\n")
    assert _trimmed(text) == ["ALTER TABLE t ADD c int;\nCOMMIT;", "CREATE INDEX CONCURRENTLY i1 ON t (c);", "BEGIN;",
                              "UPDATE t SET c = 1;", "COMMIT;", "CREATE INDEX CONCURRENTLY i2 ON t (c);"]
    assert _trimmed("SELECT 1;\nCOMMIT AND CHAIN;\nSELECT 2;\nCOMMIT;\n") == [
        "SELECT 1;\nCOMMIT AND CHAIN;", "SELECT 2;", "COMMIT;"]
    assert _trimmed("COMMIT;\nSELECT 1;\n") == ["COMMIT;", "SELECT 1;"]


def test_commit_inside_strings_comments_dollar_bodies_does_not_count() -> None:
    text = ("DO $x$ BEGIN PERFORM 1; COMMIT; END $x$;\nSELECT 'COMMIT;';\n-- COMMIT;\n"
            "SELECT \"COMMIT;\";\nSELECT E'\\';COMMIT;';\nCOMMIT;\nSELECT 9;\n")
    units = _trimmed(text)
    assert len(units) == 2 and units[1] == "SELECT 9;"


def test_begin_atomic_function_is_one_tail_unit() -> None:
    body = "CREATE FUNCTION g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 1 END;\nEND;"
    units = _trimmed("SELECT 1;\nCOMMIT;\n" + body + "\nANALYZE t;\n")
    assert units == ["SELECT 1;\nCOMMIT;", body, "ANALYZE t;"]


def test_units_are_spans_that_keep_line_and_column() -> None:
    """Property: units are consecutive slices of the script; a position in a unit maps to the script."""
    rng = random.Random(7)
    stmts = ["SELECT 1;", "SELECT 'a;\nb';", "/* c\n */ SELECT 2;", "  CREATE INDEX CONCURRENTLY i ON t (id);",
             "SELECT é;", "\n\n  SELECT\n 3;", "COMMIT;", "BEGIN;", "\r\nSELECT 4;"]
    for _ in range(300):
        text = "".join(rng.choice(stmts) + rng.choice(["", " ", "\n", "\n\n", " -- x\n"]) for _ in range(8))
        units = split_units(text)
        if len(units) == 1:
            assert units[0].text == text
            continue
        joined = "".join(u.text for u in units)
        assert text.startswith(joined) and mask(text[len(joined):]).strip() == ""
        for unit in units:
            assert text[unit.start_offset:unit.start_offset + len(unit.text)] == unit.text
            for k in range(len(unit.text)):
                assert line_col(text, unit.script_position(k + 1)) == line_col(text, unit.start_offset + k + 1)
            first = len(unit.text) - len(unit.text.lstrip())
            if first < len(unit.text) and not unit.text.lstrip().startswith(("--", "/*")):
                assert unit.start_line == line_col(text, unit.start_offset + first + 1)[0]
        assert units[1].script_position(0) is None and units[1].script_position(len(units[1].text) + 2) is None


# ---- line_col ------------------------------------------------------------------------------


def test_line_col_examples() -> None:
    assert line_col("abc", 1) == (1, 1)
    assert line_col("ab\ncd", 4) == (2, 1)
    assert line_col("ab\ncd", 6) == (2, 3)  # one past the end is allowed
    assert line_col("ab\ncd", 7) is None
    assert line_col("ab", 0) is None


def test_line_col_property_maps_back() -> None:
    rng = random.Random(42)
    alphabet = "ab é\n\r;$'"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        position = rng.randint(1, len(text))
        line, column = line_col(text, position)
        row = text.split("\n")[line - 1]
        if text[position - 1] == "\n":
            assert column == len(row) + 1
            continue
        assert row[column - 1] == text[position - 1]
        if text[position - 1] != "\r":
            assert source_line(text, line)[column - 1] == text[position - 1]


@pytest.mark.parametrize("window", [1 << 20, 1, 7])
def test_fast_scan_equals_careful_scan(monkeypatch, window: int) -> None:
    """Property: the C-level shortcut for easy runs (in windows of any size) masks like the careful path."""
    from pgmilib import sqllex
    from pgmilib.sqllex import _scan

    monkeypatch.setattr(sqllex, "_EASY_WINDOW", window)
    rng = random.Random(11)
    parts = ["SELECT ", "'a'", "'a''b'", "E'x\\\\y'", "E'\\''", "e'q\\'r'", "date'a\\'", "x'", "'", '"q"', '"a""b"',
             '"', "$$ d $$", "$t$ ' $t$", "$1", "a$b$", "-- c '\n", "/* ' /* n */ */", "/*", "-", "/", "\n", ";",
             "(", ")", "E", "e", "'multi\nline'", "é'", "\\", "'no end", "--", "'abc'"]
    for _ in range(3000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 12)))
        fast, careful = _scan(text), _scan(text, fast=False)
        assert (fast.mask, fast.open_state, fast.open_at, fast.block_comments) == (
            careful.mask, careful.open_state, careful.open_at, careful.block_comments), text


@pytest.mark.parametrize("text", ["SELECT 1;\nCOMMIT;\n/* never closed\n", "SELECT 1;\nCOMMIT;\nSELECT 2;\n/* open",
                                  "COMMIT;\nSELECT $x$ open;\n"])
def test_construct_left_open_after_the_head_is_sent_not_dropped(text: str) -> None:
    units = split_units(text)
    assert len(units) >= 2
    assert "".join(u.text for u in units) == text


def test_dollar_tag_classes_are_postgres_identifier_characters():
    """The negated ASCII sets behind _DOLLAR_TAG mean exactly scan.l's classes: [A-Za-z_] or any
    non-ASCII character to start, plus ASCII digits after (checked on every ASCII character and
    on non-ASCII ones from each Unicode plane)."""
    import re

    from pgmilib import sqllex

    start, char = re.compile(sqllex._DOLLAR_TAG_START), re.compile(sqllex._DOLLAR_TAG_CHAR)
    samples = list(range(0x80)) + [0x80, 0xFF, 0x100, 0x20AC, 0xD800, 0xFFFF, 0x10000, 0x1F389, 0x10FFFF]
    for cp in samples:
        ch = chr(cp)
        is_start = ch.isascii() and (ch.isalpha() or ch == "_") or not ch.isascii()
        assert bool(start.fullmatch(ch)) == is_start, hex(cp)
        assert bool(char.fullmatch(ch)) == (is_start or ch in "0123456789"), hex(cp)
    assert sqllex._DOLLAR_TAG.fullmatch("$€1$") and sqllex._DOLLAR_TAG.fullmatch("$$")
    assert not sqllex._DOLLAR_TAG.fullmatch("$1a$")


@pytest.mark.parametrize(("text", "expected"), [
    ('SELECT "x""y;z" FROM t', 'SELECT " ""   " FROM t'),
    ("SELECT E'a\\';b', 'c'';d'", "SELECT E'     ', ' ''  '"),
    ('SELECT "a;b", "c""";', 'SELECT "   ", " """;'),
])
def test_quotes_doubled_or_escaped_hide_semicolons_on_every_interpreter(text: str, expected: str) -> None:
    """Debian 12's own Python 3.11.2 got the first one wrong while the lexer used possessive
    quantifiers (the `;` stayed visible, so a statement could be split inside an identifier)."""
    from pgmilib.sqllex import _scan

    assert mask(text) == expected
    assert _scan(text, fast=False).mask == expected
