"""project.py: checksums, paths, the scanner's rules, test directories.

All offline: no server is needed, and one test checks the scanner never imports pg8000.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from checksum_oracle import spec_collapse, spec_step_a
from projects import write_project

from pgmilib.errors import ConfigError, DeploySqlMissing, Exit, PgmiError, exit_code
from pgmilib.project import checksums as PC
from pgmilib.project import paths as PP
from pgmilib.project import root as PR
from pgmilib.project import scan as P

REPO = Path(__file__).resolve().parent.parent
META = """/*
<pgmi-meta id="{id}" idempotent="true">
  <description>d</description>
  <sortKeys><key>001/000</key></sortKeys>
</pgmi-meta>
*/
SELECT 1;
"""


def make(root: Path, files: dict[str, str | bytes], deploy: bool = True) -> Path:
    """Write a project: {relative path: text or bytes}; deploy.sql added unless told not to."""
    return write_project(root, files, "SELECT 1;\n" if deploy else None)


# ---- checksums -----------------------------------------------------------------------------

def test_raw_checksum_vectors():
    assert PC.raw_checksum(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert PC.raw_checksum(b"SELECT * FROM users;") == (
        "d1ec24bdafb79996d598fd0707064fc6766042c1054c8ca379da5fc6a3a03e5a")


def test_normalized_checksum_vector_and_case_folding():
    expected = "770ec17e2277e313a56c78ecab71d0ee460922cac72efddf9869ca4194276572"
    assert PC.normalized_checksum("SELECT * FROM USERS;") == expected
    assert PC.normalized_checksum("select * from users;") == expected
    assert PC.normalized_checksum(b"select * from users;") == expected


def test_remove_comments_intermediate_vectors():
    rc = lambda s: PC.remove_comments(s.encode(), fold_case=False).decode()
    assert rc("-- Comment\nSELECT * FROM users;") == " \nSELECT * FROM users;"
    assert rc("SELECT * FROM users; -- Comment") == "SELECT * FROM users;  "
    assert rc("/* c1 */ SELECT /* c2 */ * FROM users; /* c3 */") == "  SELECT   * FROM users;  "
    assert rc("a -- c\r\nb") == "a  \r\nb"
    assert rc("a --\r\r\nb") == "a  \r\nb"
    assert rc("x /* a /* nested */ still */ y") == "x   y"


@pytest.mark.parametrize("left,right", [
    ("SELECT 1;\r\nSELECT 2;\r\n", "SELECT 1;\nSELECT 2;\n"),
    ("SELECT 1;", "    SELECT    1;   "),
    ("-- leading\nSELECT 1;", "SELECT 1;"),
    ("SELECT 1; -- trailing", "SELECT 1;"),
    ("SELECT /* a /* nested */ b */ 1;", "SELECT 1;"),
    ("SELECT E'a\\'b';", "SELECT E'a\\'b'; -- trailing"),
])
def test_normalized_checksum_equal(left, right):
    assert PC.normalized_checksum(left) == PC.normalized_checksum(right)


@pytest.mark.parametrize("left,right", [
    ('SELECT "Users";', 'SELECT "users";'),
    ("SELECT 'Production';", "SELECT 'production';"),
    ("DO $$ BEGIN RAISE NOTICE 'Xy'; END $$;", "DO $$ BEGIN RAISE NOTICE 'xy'; END $$;"),
    ("SELECT $$ -- inside $$;", "SELECT $$  $$;"),
    ("SELECT E'a\\'-- keep this' , 1", "SELECT E'a\\'-- keep this' , 2"),
    ('SELECT "a--b" , 1', 'SELECT "a--b" , 2'),
    ('SELECT "a/*x*/b" , 1', 'SELECT "a/*x*/b" , 2'),
    ('SELECT "a""--b" , 1', 'SELECT "a""--b" , 2'),
    ("a/*x*/b", "ab"),
    ("SELECT $tag$ A $tag$", "SELECT $tag$ a $tag$"),
])
def test_normalized_checksum_different(left, right):
    assert PC.normalized_checksum(left) != PC.normalized_checksum(right)


def test_escape_string_rule_needs_a_word_boundary():
    # In `abcE'...'` the E is part of an identifier: an ordinary literal where \' does not escape,
    # so `-- x` after the first quote pair is a comment there but text inside a real E'' string.
    plain = PC.remove_comments(b"abcE'a\\' -- x", fold_case=False)
    escaped = PC.remove_comments(b"abc E'a\\' -- x", fold_case=False)
    assert plain == b"abcE'a\\'  "
    assert escaped == b"abc E'a\\' -- x"
    assert PC.remove_comments(b"E'\\'' -- c", fold_case=False) == b"E'\\''  "


def test_whitespace_is_go_unicode_isspace_not_python():
    # U+00A0 and U+3000 collapse like spaces; U+001F is not whitespace in Go.
    assert PC.normalized_checksum("SELECT\u00a0\u30001;") == PC.normalized_checksum("SELECT 1;")
    assert PC.normalized_checksum("SELECT\x1f1;") != PC.normalized_checksum("SELECT 1;")
    assert PC.normalized_checksum("\u2028SELECT 1;\u0085") == PC.normalized_checksum("SELECT 1;")


def test_comment_detection_agrees_with_the_preprocessor():
    """Property: for inputs without `--`, the checksum and sqllex see the same block comments.

    Dollar tags are always preceded by a space here: sqllex follows PostgreSQL in reading `a$$`
    as part of an identifier, while the checksum keeps the original's byte rule, which
    must not change (recorded checksums would all look modified).
    """
    from pgmilib import sqllex

    pieces = ["/*", "*/", "'", '"', " $$", " $a$", "E", "e", "\\", "x", " ", "\n", "/", "*", "''", "1"]
    rng = random.Random(20261127)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        if "--" in text:
            continue
        expected, last = [], 0
        for start, end in sqllex.block_comment_spans(text):
            expected.append(text[last:start] + " ")
            last = end
        expected.append(text[last:])
        got = PC.remove_comments(text.encode(), fold_case=False).decode()
        assert got == "".join(expected), text


def test_checksums_property_crlf_and_indentation():
    rng = random.Random(7)
    words = ["SELECT", "from", "t", "1", ";", "(", ")", "'Ab'", '"Q"', "-- c", "/* k */"]
    for _ in range(300):
        tokens = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        lf = "\n".join(tokens) + "\n"
        crlf = "\r\n".join("  " + t for t in tokens) + "\r\n"
        assert PC.normalized_checksum(lf) == PC.normalized_checksum(crlf), tokens


# ---- paths ---------------------------------------------------------------------------------

def test_generic_id_vectors():
    assert str(PP.generic_id("./migrations/001_users.sql")) == "8cb96d1a-b6fc-e524-d4f0-95b95baba1da"
    assert str(PP.generic_id("./migrations/café.sql")) == "9bbc3810-8180-8c39-61fd-68b968fbc799"


@pytest.mark.parametrize("raw,normal", [
    ("migrations/001.sql", "./migrations/001.sql"),
    ("./a.sql", "./a.sql"),
    ("  ./a.sql  ", "./a.sql"),
    ("a\\b\\c.sql", "./a/b/c.sql"),
    ("/abs//x.sql", "./abs/x.sql"),
    ("././a.sql", "././a.sql"),
    (".//a///b.sql", "./a/b.sql"),
])
def test_normalise_path(raw, normal):
    assert PP.normalise_path(raw) == normal


@pytest.mark.parametrize("name,ext", [
    ("notes.txt", ".txt"), ("notes.txt~", ""), ("notes.", ""), (".env-local", ""),
    ("archive.tar.gz", ".gz"), ("Makefile", ""),
])
def test_extension_examples(name, ext):
    assert PP.path_columns("./d/" + name).extension == ext


def test_path_columns():
    cols = PP.path_columns("./a/b/c.sql")
    assert (cols.name, cols.directory, cols.depth, cols.parts, cols.parent_folder_name) == (
        "c.sql", "./a/b/", 2, (".", "a", "b", "c.sql"), "b")
    root = PP.path_columns("./x.sql")
    assert (root.directory, root.depth, root.parent_folder_name) == ("./", 0, None)


SQL_NAME_CASES = {
    "x.sql": True, "x.SQL": True, "x.PlPgSql": True, "x.ddl": True, "x.dml": True, "x.dql": True,
    "x.dcl": True, "x.psql": True, "x.pgsql": True, "x.plpgsql": True, "a.b.sql": True, "x.Sql": True,
    "001.sql": True, "x.sql.bak": False, "x.sql~": False, "x.sql.orig": False, "x.sqlx": False,
    "x.bak": False, "x": False, "001.sql.bak": False, "sql": False, "x.txt": False, "x.sq": False,
    "README.md": False, "x.ps": False, "x.pl": False,
}


def test_is_sql_name_cases():
    assert len(SQL_NAME_CASES) == 26
    for name, expected in SQL_NAME_CASES.items():
        assert PP.is_sql_name(name) is expected, name


def test_fixture_names():
    for name in ("_setup.sql", "_Setup.SQL", "_SETUP.PSQL", "_setup.psql"):
        assert PP.is_fixture_name(name)
    for name in ("_setup.pgsql", "setup.sql", "_setup.sql.bak", "_setup", "_teardown.sql"):
        assert not PP.is_fixture_name(name)


def test_directory_rows_parents_and_depths():
    rows = PP.directory_rows_of_tests([
        "./__test__/_setup.sql", "./__test__/sub/deep/test_b.sql", "./__test__/auth/oauth/google/t.sql",
        "./src/__test__/unit/t.sql", "./__test__/nested/__test__/t.sql", "./a/__test__/x.sql",
        "./b/__tests__/x/y/z.sql", "./__test__/README.md",
    ])
    assert rows == [
        ("./__test__/", None, 0),
        ("./__test__/auth/oauth/google/", "./__test__/", 3),
        ("./__test__/nested/__test__/", "./__test__/", 2),
        ("./__test__/sub/deep/", "./__test__/", 2),
        ("./a/__test__/", None, 0),
        ("./b/__tests__/x/y/", None, 2),
        ("./src/__test__/unit/", None, 1),
    ]


# ---- the scanner ---------------------------------------------------------------------------

def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(ConfigError) as info:
        P.scan(tmp_path / "nope")
    assert str(info.value) == ConfigError.PREFIX + f'project path "{tmp_path / "nope"}" does not exist'
    assert exit_code(info.value) == Exit.CONFIG
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file; pass the project directory"):
        P.scan(tmp_path / "f")


def test_deploy_sql_missing_and_directory(tmp_path):
    with pytest.raises(DeploySqlMissing) as info:
        P.scan(tmp_path)
    assert str(info.value) == f"deploy.sql not found in {tmp_path}"
    assert exit_code(info.value) == Exit.DEPLOY_SQL_MISSING
    assert info.value.trailer and "pgmi init" in info.value.trailer[0]
    (tmp_path / "deploy.sql").mkdir()
    with pytest.raises(PgmiError, match="is a directory, expected a regular file") as info:
        P.scan(tmp_path)
    assert exit_code(info.value) == Exit.GENERAL


def test_scan_basic_layout_sorted_and_routed(tmp_path):
    make(tmp_path, {
        "migrations/002_b.sql": "SELECT 2;", "migrations/001_a.sql": "SELECT 1;", "README.md": "# hi",
        "__test__/test_x.sql": "SELECT 3;", "api/__tests__/notes.txt": "n", "examples/deploy.sql": "SELECT 4;",
    })
    project = P.scan(tmp_path)
    assert [f.path for f in project.files] == [
        "./README.md", "./__test__/test_x.sql", "./api/__tests__/notes.txt", "./examples/deploy.sql",
        "./migrations/001_a.sql", "./migrations/002_b.sql",
    ]
    assert [f.path for f in project.test_files()] == ["./__test__/test_x.sql", "./api/__tests__/notes.txt"]
    nested = next(f for f in project.files if f.path == "./examples/deploy.sql")
    assert nested.is_sql and not nested.is_test
    assert next(f for f in project.files if f.path == "./README.md").is_sql is False
    assert project.files[4].content == "SELECT 1;"
    assert project.deploy_sql == tmp_path / "deploy.sql"


def test_root_deploy_sql_excluded_case_insensitively(tmp_path):
    make(tmp_path, {"DEPLOY.SQL": "x", "Deploy.Sql": "y", "a.sql": "z"})
    if len(list(tmp_path.iterdir())) < 4:
        pytest.skip("case-insensitive file system")
    assert [f.path for f in P.scan(tmp_path).files] == ["./a.sql"]


def test_hidden_and_vendored_locations_skipped(tmp_path):
    make(tmp_path, {
        ".git/config": b"\x00binary", ".venv/lib/x.py": "x", ".env": "A=1", "sub/.hidden.sql": "x",
        "node_modules/p/index.js": "x", "src/__pycache__/m.pyc": b"\x00\xff", "src/node_modules/x": "x",
        "keep.sql": "SELECT 1;",
    })
    os.symlink("/etc/passwd", tmp_path / ".git" / "link")
    assert [f.path for f in P.scan(tmp_path).files] == ["./keep.sql"]


def test_binary_file_rejected_naming_it(tmp_path):
    make(tmp_path, {"data/blob.bin": b"abc\x00def"})
    with pytest.raises(PgmiError) as info:
        P.scan(tmp_path)
    assert str(info.value).startswith("file ./data/blob.bin contains a NUL byte;")
    assert str(info.value).count("./data/blob.bin") == 1
    assert exit_code(info.value) == Exit.GENERAL


def test_invalid_utf8_rejected_before_any_connection(tmp_path):
    """The scan is offline: run it in a fresh interpreter and check pg8000 was never imported."""
    make(tmp_path, {"latin.sql": "SELECT 'café';".encode("latin-1")})
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pgmilib.project.scan import scan\n"
        "try:\n    scan(sys.argv[2])\nexcept Exception as e:\n    print(e)\n"
        "print('pg8000' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(REPO), str(tmp_path)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        "file ./latin.sql is not valid UTF-8; pgmi loads project files as text", "False"]


def test_unknown_dunder_directory(tmp_path):
    make(tmp_path, {"__fixtures__/a.sql": "SELECT 1;"})
    with pytest.raises(ConfigError) as info:
        P.scan(tmp_path)
    assert str(info.value) == ConfigError.PREFIX + (
        'unsupported directory "__fixtures__" in path "./__fixtures__/a.sql"; only __test__ and __tests__ are allowed')
    assert exit_code(info.value) == Exit.CONFIG


def test_dunder_file_names_are_fine(tmp_path):
    make(tmp_path, {"__init__.sql": "SELECT 1;", "__tests__/a.sql": "SELECT 1;"})
    assert len(P.scan(tmp_path).files) == 2


def test_unicode_paths(tmp_path):
    make(tmp_path, {"migrations/café.sql": "SELECT 'é';", "миграции/001.sql": "SELECT 1;", "日本/x.sql": "--"})
    paths = [f.path for f in P.scan(tmp_path).files]
    assert paths == sorted(["./migrations/café.sql", "./миграции/001.sql", "./日本/x.sql"])


def test_bom_stripped_with_equal_checksums(tmp_path):
    make(tmp_path, {"a.sql": b"\xef\xbb\xbfSELECT 1;\n", "b.sql": b"SELECT 1;\n"})
    a, b = P.scan(tmp_path).files
    assert a.content == b.content == "SELECT 1;\n"
    assert (a.checksum, a.pgmi_checksum) == (b.checksum, b.pgmi_checksum)
    assert a.checksum == PC.raw_checksum(b"SELECT 1;\n")
    assert a.size == 10


def test_symlinks_refused(tmp_path):
    make(tmp_path, {"real.sql": "SELECT 1;"})
    os.symlink(tmp_path / "real.sql", tmp_path / "link.sql")
    with pytest.raises(PgmiError) as info:
        P.scan(tmp_path)
    assert str(info.value) == (
        "refusing to read symlink ./link.sql (symlinks are rejected by the scanner to avoid path-escape)")
    assert exit_code(info.value) == Exit.GENERAL
    os.unlink(tmp_path / "link.sql")
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "dir", tmp_path / "dirlink")
    with pytest.raises(PgmiError, match=r"refusing to read symlink ./dirlink "):
        P.scan(tmp_path)


def test_size_cap(tmp_path, monkeypatch):
    make(tmp_path, {"big.csv": b"x" * (20 * 1024 * 1024)})
    monkeypatch.setenv("PGMI_MAX_FILE_SIZE", str(30 * 1024 * 1024))  # the scanner never reads the process's
    with pytest.raises(PgmiError) as info:
        P.scan(tmp_path)
    assert str(info.value) == (
        f"file ./big.csv is {20 * 1024 * 1024} bytes, exceeds 10485760-byte cap (override via PGMI_MAX_FILE_SIZE)")
    assert exit_code(info.value) == Exit.GENERAL
    cap = PR.max_file_size_from({"PGMI_MAX_FILE_SIZE": str(30 * 1024 * 1024)})
    assert P.scan(tmp_path, max_file_size=cap).files[0].size == 20 * 1024 * 1024
    assert PR.max_file_size_from({"PGMI_MAX_FILE_SIZE": "-5"}) == PR.DEFAULT_MAX_FILE_SIZE  # ignored: the default
    assert PR.max_file_size_from({"PGMI_MAX_FILE_SIZE": "ten"}) == PR.DEFAULT_MAX_FILE_SIZE
    with pytest.raises(PgmiError, match="exceeds 100-byte cap"):
        P.scan(tmp_path, max_file_size=100)


def test_metadata_parsed_only_for_source_sql(tmp_path):
    ident = uuid.uuid4()
    make(tmp_path, {
        "m.sql": META.format(id=ident), "notes.txt": META.format(id=uuid.uuid4()),
        "__test__/t.sql": "/* <pgmi-meta broken */ SELECT 1;",
    })
    files = {f.path: f for f in P.scan(tmp_path).files}
    assert files["./m.sql"].metadata.id == ident
    assert files["./m.sql"].metadata.sort_keys == ("001/000",)
    assert files["./notes.txt"].metadata is None
    assert files["./__test__/t.sql"].metadata is None


def test_duplicate_metadata_ids_name_both_files(tmp_path):
    ident = uuid.uuid4()
    make(tmp_path, {"b/two.sql": META.format(id=ident), "a/one.sql": META.format(id=ident)})
    with pytest.raises(ConfigError) as info:
        P.scan(tmp_path)
    assert str(info.value) == ConfigError.PREFIX + (
        f"duplicate <pgmi-meta id> across files; each script must have a unique id: {ident}: ./a/one.sql, ./b/two.sql")
    assert exit_code(info.value) == Exit.CONFIG


def test_bad_metadata_block_is_config_error(tmp_path):
    make(tmp_path, {"m.sql": '/* <pgmi-meta id="nope" idempotent="true"></pgmi-meta> */'})
    with pytest.raises(ConfigError, match=r"\./m\.sql"):
        P.scan(tmp_path)


def test_file_changed_after_scan_is_detected(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HELD_BYTES", 0)  # the re-read path: files too big to keep
    make(tmp_path, {"a.sql": "SELECT 1;"})
    item = P.scan(tmp_path).files[0]
    (tmp_path / "a.sql").write_text("SELECT 2;")
    with pytest.raises(PgmiError, match=r"file \./a\.sql changed"):
        item.read_bytes()


def test_read_deploy_sql(tmp_path):
    (tmp_path / "deploy.sql").write_bytes(b"\xef\xbb\xbfSELECT 1;")
    assert P.read_deploy_sql(P.scan(tmp_path)) == "SELECT 1;"
    (tmp_path / "deploy.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(PgmiError, match="deploy.sql is not valid UTF-8"):
        P.read_deploy_sql(P.scan(tmp_path))


def test_collapse_whitespace_matches_a_code_point_reference():
    """Property: both paths of collapse_whitespace equal a plain per-code-point loop over Go's set."""

    pieces = ["a", "Z", " ", "\t", "\r\n", "\x0b", "\x1c", "\x1f", "\x85", "\xa0", "\u2000", "\u200a", "\u200b",
              "\u3000", "\u2028", "é", "日", "🎉", "\u205f", "\u180e", "\x00"]
    rng = random.Random(3)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert PC.collapse_whitespace(text.encode()) == spec_collapse(text.encode()), repr(text)


_STEP_A_PIECES = [b"a", b"Q", b"E", b"e", b"x_", b"9", b"\xc3\xa9", b"\xe6\x97\xa5", b" ", b"\t", b"\n", b"\r\n", b"\r",
                  b"\xc2\xa0", b"\xe3\x80\x80", b"-", b"--", b"/", b"*", b"/*", b"*/", b"'", b"''", b'"', b'""', b"\\",
                  b"$", b"$$", b"$a$", b"$A_1$", b"$1", b"$\xc3\xa9$", b";", b"E'", b"e'\\'", b"\x00"]


def test_step_a_and_the_checksum_match_the_spec_transcription():
    """Property: remove_comments (regex-driven) equals a byte-by-byte transcription of the spec's
    table, and normalized_checksum equals the checksum of that transcription."""
    rng = random.Random(10)
    for _ in range(20000):
        data = b"".join(rng.choice(_STEP_A_PIECES) for _ in range(rng.randint(0, 16)))
        expected = spec_step_a(data)
        assert PC.remove_comments(data) == expected, data
        assert PC.normalized_checksum(data) == hashlib.sha256(PC.collapse_whitespace(expected)).hexdigest(), data


def test_offline_switches_for_metadata_commands(tmp_path):
    ident = uuid.uuid4()
    make(tmp_path, {"a.sql": META.format(id=ident), "b.sql": META.format(id=ident)}, deploy=False)
    with pytest.raises(DeploySqlMissing):
        P.scan(tmp_path)
    with pytest.raises(ConfigError, match="duplicate"):
        P.scan(tmp_path, require_deploy_sql=False)
    project = P.scan(tmp_path, require_deploy_sql=False, check_duplicates=False)
    assert [f.metadata.id for f in project.files] == [ident, ident]


def test_lazy_contents_mapping(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HELD_BYTES", 0)  # the re-read path: files too big to keep
    make(tmp_path, {"a.sql": "SELECT 1;", "__test__/t.sql": "SELECT 2;"})
    contents = P.scan(tmp_path).contents()
    assert dict(contents) == {"./__test__/t.sql": "SELECT 2;", "./a.sql": "SELECT 1;"}
    (tmp_path / "a.sql").write_text("changed")
    assert contents["./a.sql"] == ""  # best effort: a changed file is not used to locate errors
    with pytest.raises(KeyError):
        contents["./missing.sql"]


def test_backslash_names_normalise_and_collisions_are_refused(tmp_path):
    make(tmp_path, {"x\\y.sql": "SELECT 1;"})
    item = P.scan(tmp_path).files[0]
    assert (item.path, item.content) == ("./x/y.sql", "SELECT 1;")
    make(tmp_path, {"x/y.sql": "SELECT 2;"})
    with pytest.raises(PgmiError, match=r"both load as \./x/y\.sql"):
        P.scan(tmp_path)


def test_checksum_cache_remembers_by_content(tmp_path):
    where = PR.cache_dir_from({"PGMI_CACHE_DIR": str(tmp_path / "cache")})
    data = b"SELECT 1 -- why\n"
    item = P.ProjectFile(path="./a.sql", checksum=PC.raw_checksum(data), is_sql=True, is_test=False)
    first = PC.ChecksumCache.for_project(tmp_path / "proj", where)
    assert item.normalized_from(data, first) == PC.normalized_checksum(data)
    first.save()
    second = PC.ChecksumCache.for_project(tmp_path / "proj", where)
    assert second.get(item.checksum) == PC.normalized_checksum(data)  # read back from disk
    # A hit is taken as is: the key is the content's own SHA-256, so it cannot be stale.
    other = P.ProjectFile(path="./b.sql", checksum=item.checksum, is_sql=True, is_test=False)
    assert other.normalized_from(b"ignored", second) == PC.normalized_checksum(data)


def test_checksum_cache_survives_damage_and_can_be_off(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    assert PR.cache_dir_from({"PGMI_CACHE_DIR": str(cache_dir)}) == cache_dir
    PC.ChecksumCache.for_project(tmp_path, cache_dir).path.write_bytes(b"\x00" * 70)  # one record plus a torn one
    assert PC.ChecksumCache.for_project(tmp_path, cache_dir).get("ab" * 32) is None
    assert (PC.ChecksumCache.for_project(tmp_path / "other", cache_dir).path
            != PC.ChecksumCache.for_project(tmp_path, cache_dir).path)
    assert PR.cache_dir_from({"PGMI_CACHE_DIR": "off"}) is None
    assert PR.cache_dir_from({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "pgmi"
    assert PR.cache_dir_from({"XDG_CACHE_HOME": "relative"}) is None  # no usable place: no cache
    off = PC.ChecksumCache.for_project(tmp_path, None)
    off.put("ab" * 32, "cd" * 32)
    off.save()  # nothing to write to, and no error
    assert off.path is None


def test_small_projects_keep_the_scanned_bytes(tmp_path):
    """Within HELD_BYTES the loader gets exactly the validated bytes, without a second read."""
    make(tmp_path, {"a.sql": "SELECT 1;\n"})
    project = P.scan(tmp_path)
    (tmp_path / "a.sql").write_text("SELECT 2;\n")  # a later change cannot reach the load
    assert project.files[0].read_bytes() == b"SELECT 1;\n"


def test_checksum_cache_of_an_earlier_generation_is_never_read_and_is_removed(tmp_path):
    """An earlier pgmi may have cached another normalized value for some bytes: its file (its
    generation in the name) is not read, and goes once this generation's file is written."""
    where = tmp_path / "cache"
    data = b"SELECT 1;\n"
    current = PC.ChecksumCache.for_project(tmp_path / "proj", where)
    stem = current.path.name[:-len(f".v{PC.ChecksumCache.GENERATION}.bin")]
    old = where / f"{stem}.bin"  # generation 1's name
    where.mkdir()
    old.write_bytes(bytes.fromhex(PC.raw_checksum(data)) + b"\x11" * 32)  # a wrong value, as if from a bug
    cache = PC.ChecksumCache.for_project(tmp_path / "proj", where)
    assert cache.get(PC.raw_checksum(data)) is None
    cache.put(PC.raw_checksum(data), PC.normalized_checksum(data))
    cache.save()
    assert not old.exists()
    assert PC.ChecksumCache.for_project(tmp_path / "proj", where).get(PC.raw_checksum(data)) == \
        PC.normalized_checksum(data)
