"""The normalized checksum (pgmilib/project/checksums.py) against the plain transcription of the
spec's rules (tests/checksum_oracle.py), on generated SQL-ish bytes, and the spec's vectors.

The fast implementation consumes whole spans with regular expressions (plain text together with
quoted tokens lower() would not change) and handles whitespace with `bytes.split`; every
shortcut it takes must give exactly the spec's bytes, which is what these properties hold it to.
"""

from __future__ import annotations

import hashlib

import pytest
from checksum_oracle import spec_checksum, spec_collapse, spec_step_a
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pgmilib.project import checksums as PC

# Tokens that steer the state machine (quotes, E'' strings, dollar tags, nested comments, CR/LF,
# identifier bytes before E, non-ASCII letters and spaces) and plain text around them.
PIECES = [
    b"SELECT", b"select", b"Users", b"x", b"E", b"e", b"_", b"9", b"$", b"a$", b" ", b"  ", b"\t", b"\n", b"\r\n",
    b"\r", b"\x0b", b"\x0c", b"\x1c", b"-", b"--", b"/", b"*", b"/*", b"*/", b"'", b"''", b'"', b'""', b"\\",
    b"\\'", b"E'", b"e'", b"$$", b"$a$", b"$A_1$", b"$fn$", b"$1", b"$_$", b";", b",", b"'it''s'", b"'Ab'",
    b"'ab'", b'"Ab"', b'"ab"', b"-- note\n", b"/* c */", b"/* /* nested */ */", b"$$ -- inside $$",
    "é".encode(), "日本".encode(), "Größe".encode(), "🚀".encode(), "\u00a0".encode(), "\u0085".encode(),
    "\u2000".encode(), "\u200a".encode(), "\u200b".encode(), "\u2028".encode(), "\u202f".encode(),
    "\u205f".encode(), "\u3000".encode(), "\u1680".encode(), "\u180e".encode(),
]

sqlish = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(sqlish)
@example(b"E'''\\'SELECT")
def test_the_checksum_equals_the_spec_transcription(data):
    assert PC.normalized_checksum(data) == spec_checksum(data)


@pytest.mark.parametrize("data", [
    b"E'''\\'SELECT",  # E' opens; '' and \' are escaped quotes: SELECT is inside the string
    b"e'''\\'Select' AND X",
    b"E'ab''\\'CD' Z",
    b"xe'''\\'SELECT",  # an identifier ending in e: a plain string, SELECT is outside it
])
def test_a_quote_pair_right_after_an_e_prefix_keeps_the_e_string_rules(data):
    """Found by the property above: the plain-text shortcut took the `''` after E as a whole
    quoted token, and the rest of the E-string was then read as a plain string."""
    assert PC.remove_comments(data) == spec_step_a(data)
    assert PC.normalized_checksum(data) == spec_checksum(data)


@settings(max_examples=1500, deadline=None)
@given(sqlish)
def test_step_a_equals_the_spec_transcription_exactly(data):
    """remove_comments keeps the spec's intermediate bytes (comments -> one space, newlines kept)."""
    assert PC.remove_comments(data) == spec_step_a(data)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join), st.binary(max_size=8))
def test_any_bytes_around_still_agree(data, noise):
    """Bytes that are not UTF-8 or hold a NUL (never in a scanned file, possible through the API)."""
    mixed = noise + data + noise
    assert PC.normalized_checksum(mixed) == spec_checksum(mixed)


@given(st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029"
                                              "\u202f\u205f\u3000\u180eaZé日🚀"))))
def test_whitespace_collapse_equals_the_code_point_rule(text):
    data = text.encode("utf-8")
    assert PC.collapse_whitespace(data) == spec_collapse(data)


def test_the_published_vectors():
    assert PC.normalized_checksum("SELECT * FROM USERS;") == \
        "770ec17e2277e313a56c78ecab71d0ee460922cac72efddf9869ca4194276572"
    assert PC.normalized_checksum(b"select * from users;") == \
        "770ec17e2277e313a56c78ecab71d0ee460922cac72efddf9869ca4194276572"
    assert PC.normalized_checksum(b"") == hashlib.sha256(b"").hexdigest()
    intermediate = {
        b"-- Comment\nSELECT * FROM users;": b" \nSELECT * FROM users;",
        b"SELECT * FROM users; -- Comment": b"SELECT * FROM users;  ",
        b"/* c1 */ SELECT /* c2 */ * FROM users; /* c3 */": b"  SELECT   * FROM users;  ",
    }
    for source, expected in intermediate.items():
        assert PC.remove_comments(source, fold_case=False) == expected
        assert spec_step_a(source).lower() == expected.lower()
