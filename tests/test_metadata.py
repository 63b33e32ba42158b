"""`<pgmi-meta>` parsing, identity and the offline plan: fast unit tests, no server, no scanner."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace

import pytest
from projects import run_cli

from pgmilib.errors import ConfigError, Exit, exit_code
from pgmilib.project.metadata import (
    MAX_BLOCK_BYTES,
    ScriptMeta,
    check_duplicate_ids,
    dot_path,
    fallback_id,
    file_summary,
    parse_block,
    parse_uuid,
    plan,
    scaffold_block,
)

UID = "550e8400-e29b-41d4-a716-446655440000"


def block(attrs: str = f'id="{UID}" idempotent="true"', body: str = "", before: str = "", after: str = "") -> str:
    return f"{before}/*\n<pgmi-meta {attrs}>{body}</pgmi-meta>\n*/{after}"


def error_of(content: str, path: str = "./f.sql") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_block(content, path)
    assert exit_code(info.value) == Exit.CONFIG
    assert str(info.value).count(dot_path(path)) == 1, "the file is named exactly once"
    return info.value


# ---- where the block lives -------------------------------------------------------------


def test_full_block_decodes_every_field():
    content = (
        "SELECT 1;\n/*\n"
        f'<pgmi-meta id="{UID}" idempotent="false">\n'
        "  <description>Creates users</description>\n"
        "  <sortKeys>\n    <key>10-utils/0010</key>\n    <key>90-cleanup/9999</key> <!-- fine -->\n  </sortKeys>\n"
        "</pgmi-meta>\n*/\nSELECT 2;\n"
    )
    meta = parse_block(content, "./x.sql")
    assert meta == ScriptMeta(uuid.UUID(UID), False, "Creates users", ("10-utils/0010", "90-cleanup/9999"))


@pytest.mark.parametrize(
    "content",
    [
        "SELECT 1;",
        f'-- <pgmi-meta id="{UID}" idempotent="true"></pgmi-meta>\n',
        f"SELECT '/* <pgmi-meta id=\"{UID}\" idempotent=\"true\"></pgmi-meta> */';",
        f'SELECT $$ /* <pgmi-meta id="{UID}" idempotent="true"></pgmi-meta> */ $$;',
        'SELECT "/* <pgmi-meta id=x> */";',
        block().replace("pgmi-meta", "PGMI-META"),  # case-sensitive detector
        "/* <pgmi-meta/> */",  # self-closing without a space is not detected
        "/* a plain comment */",
        "/*",
        "/*x",
    ],
)
def test_no_metadata(content):
    assert parse_block(content, "./f.sql") is None


def test_block_may_follow_sql_and_other_comments():
    content = "CREATE TABLE t();\n/* just a note */\n" + block(body="<sortKeys><key>k</key></sortKeys>")
    assert parse_block(content, "./f.sql").sort_keys == ("k",)


def test_nested_comment_pairs_inside_description_belong_to_the_block():
    meta = parse_block(block(body="<description>a /* b */ c</description>"), "./f.sql")
    assert meta.description == "a /* b */ c"


def test_unterminated_comment_drops_two_characters():
    ok = f'/* <pgmi-meta id="{UID}" idempotent="true"></pgmi-meta>  '
    assert parse_block(ok, "./f.sql").id == uuid.UUID(UID)
    broken = f'/* <pgmi-meta id="{UID}" idempotent="true"></pgmi-meta>\n'
    assert "XML syntax error" in str(error_of(broken))


def test_old_namespaced_format_is_rejected():
    err = error_of('SELECT 1;\n\n/* <pgmi:meta xmlns:pgmi="x" id="a"></pgmi:meta> */')
    assert "old metadata format" in str(err) and "(line 3)" in str(err)
    assert any("rename <pgmi:meta>" in line for line in err.trailer)


def test_two_metadata_comments_are_rejected():
    err = error_of(block() + "\nSELECT 1;\n" + block())
    assert "Multiple metadata blocks found" in str(err)
    assert "(line 6)" in str(err)


def test_two_elements_in_one_comment_only_the_first_counts():
    other = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    content = f'/* <pgmi-meta id="{UID}" idempotent="true"/> <pgmi-meta id="{other}" idempotent="x"/> */'
    assert parse_block(content, "./f.sql").id == uuid.UUID(UID)


def test_prose_before_the_element_is_skipped_but_must_be_xml_text():
    assert parse_block(block(before="", body="").replace("/*\n", "/* Owner: team A\n"), "./f.sql")
    err = error_of(block().replace("/*\n", "/* a < b\n"))
    assert "XML syntax error" in str(err)
    error_of(block().replace("/*\n", "/* R&D\n"))


def test_leading_xml_declaration_is_accepted():
    content = block().replace("/*\n", '/*\n<?xml version="1.0" encoding="UTF-8"?>\n')
    assert parse_block(content, "./f.sql").id == uuid.UUID(UID)


def test_anything_after_the_element_is_ignored():
    content = block().replace("</pgmi-meta>", "</pgmi-meta> trailing < junk & </unclosed>")
    assert parse_block(content, "./f.sql") is not None


def test_first_element_must_be_pgmi_meta():
    err = error_of(f'/* <note>x</note> <pgmi-meta id="{UID}" idempotent="true"/> */')
    assert "expected element type <pgmi-meta> but have <note>" in str(err)


# ---- size limit -----------------------------------------------------------------------


def _sized(total_bytes: int) -> str:
    """A block whose trimmed comment content is exactly `total_bytes` UTF-8 bytes (2-byte filler)."""
    head = f'<pgmi-meta id="{UID}" idempotent="true"><description>'
    tail = "</description></pgmi-meta>"
    room = total_bytes - len(head) - len(tail)
    filler = "é" * (room // 2) + "x" * (room % 2)
    text = head + filler + tail
    assert len(text.encode()) == total_bytes
    return f"/*\n{text}\n*/"


def test_size_limit_counts_utf8_bytes():
    assert parse_block(_sized(MAX_BLOCK_BYTES), "./f.sql") is not None
    err = error_of(_sized(MAX_BLOCK_BYTES + 1))
    assert f"exceeds maximum size of 10240 bytes (got {MAX_BLOCK_BYTES + 1} bytes)" in str(err)


# ---- attributes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [UID, UID.upper(), "{" + UID + "}", "urn:uuid:" + UID, "URN:UUID:" + UID, UID.replace("-", "")],
)
def test_accepted_id_spellings(spelling):
    assert parse_block(block(f'id="{spelling}" idempotent="true"'), "./f.sql").id == uuid.UUID(UID)


def test_any_hex_uuid_is_accepted_regardless_of_version_bits():
    odd = "ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert parse_block(block(f'id="{odd}" idempotent="1"'), "./f.sql").id == uuid.UUID(odd)


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        ("", "invalid UUID length: 0"),
        (" " + UID, "invalid UUID length: 37"),
        ("not-a-uuid", "invalid UUID length: 10"),
        (UID.replace("-", "_"), "invalid UUID format"),
        (UID[:-1] + "g", "invalid UUID format"),
        ("(" + UID + ")", "invalid UUID format"),
        ("g" * 32, "invalid UUID format"),
    ],
)
def test_invalid_ids(spelling, message):
    err = error_of(block(f'id="{spelling}" idempotent="true"'))
    assert message in str(err) and "[field: id]" in str(err)


def test_parse_uuid_rejects_misplaced_hyphens():
    with pytest.raises(ValueError):
        parse_uuid("550e8400e-29b-41d4-a716-446655440000")


def test_missing_and_nil_id_fail_validation():
    for attrs in ('idempotent="true"', 'id="00000000-0000-0000-0000-000000000000" idempotent="true"'):
        err = error_of(block(attrs))
        assert "invalid PGMI metadata in ./f.sql" in str(err)
        assert "1. id attribute is required and cannot be the nil UUID" in str(err)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("TRUE", True), ("t", True), ("T", True), ("1", True), (" true ", True),
     ("false", False), ("False", False), ("FALSE", False), ("f", False), ("F", False), ("0", False), ("", False)],
)
def test_idempotent_spellings(value, expected):
    assert parse_block(block(f'id="{UID}" idempotent="{value}"'), "./f.sql").idempotent is expected


def test_bad_and_missing_idempotent():
    assert "[field: idempotent]" in str(error_of(block(f'id="{UID}" idempotent="yes"')))
    err = error_of(block(f'id="{UID}"'))
    assert "idempotent attribute is required" in str(err)


def test_unquoted_attribute_is_a_syntax_error():
    assert "XML syntax error" in str(error_of(block(f"id={UID} idempotent=true")))


def test_unknown_attributes_and_elements_are_ignored():
    meta = parse_block(
        block(f'id="{UID}" idempotent="true" sortKey="zzz" owner="me"',
              "<owner>x</owner><sortKeys><other>q</other><key>a</key></sortKeys><Description>no</Description>"),
        "./f.sql",
    )
    assert meta.sort_keys == ("a",) and meta.description == ""


# ---- text content -------------------------------------------------------------------------


def test_description_and_keys_are_verbatim():
    meta = parse_block(
        block(body="<description>\n  two\n  lines\n</description><sortKeys><key> 001 </key></sortKeys>"),
        "./f.sql",
    )
    assert meta.description == "\n  two\n  lines\n"
    assert meta.sort_keys == (" 001 ",)


def test_entities_cdata_and_comments():
    meta = parse_block(
        block(body="<description>a &lt;b&gt; &amp; &#233;<![CDATA[ <raw> ]]><!-- c -->z</description>"
                   "<sortKeys><key>x&#x2F;y</key></sortKeys>"),
        "./f.sql",
    )
    assert meta.description == "a <b> & é <raw> z"
    assert meta.sort_keys == ("x/y",)


def test_undefined_entity_is_an_error():
    assert "XML syntax error" in str(error_of(block(body="<description>&nbsp;</description>")))


def test_repeated_description_last_wins_and_sort_keys_concatenate():
    meta = parse_block(
        block(body="<description>one</description><sortKeys><key>a</key></sortKeys>"
                   "<description>two</description><sortKeys><key>b</key><key>c</key></sortKeys>"),
        "./f.sql",
    )
    assert meta.description == "two" and meta.sort_keys == ("a", "b", "c")


def test_only_direct_text_of_description_counts():
    meta = parse_block(block(body="<description>a<b>inner</b>c</description>"), "./f.sql")
    assert meta.description == "ac"


def test_empty_sort_keys_are_valid():
    assert parse_block(block(body="<sortKeys></sortKeys>"), "./f.sql").sort_keys == ()


def test_all_validation_failures_are_numbered_together():
    err = error_of(block('idempotent="true"', "<description>  </description><sortKeys><key>a</key><key> </key>"
                                              "</sortKeys>"))
    text = str(err)
    assert "1. id attribute is required" in text
    assert "2. sortKeys[1] cannot be empty or whitespace-only." in text
    assert "3. description element contains only whitespace." in text
    assert any("pgmi metadata scaffold" in line for line in err.trailer)


def test_syntax_error_line_is_the_file_line():
    content = "SELECT 1;\nSELECT 2;\n/*\n<pgmi-meta id=\"" + UID + "\" idempotent=\"true\">\n<description>\n" \
              "</sortKeys>\n</pgmi-meta>\n*/\n"
    err = error_of(content, "migrations/001.sql")
    assert "metadata error in ./migrations/001.sql (line 6): XML syntax error" in str(err)
    assert err.details["line"] == 6


def test_validation_error_points_at_the_element_line():
    content = "\n\n/*\n\n<pgmi-meta idempotent=\"true\"/>\n*/"
    assert "(line 5)" in str(error_of(content))


# ---- identity -----------------------------------------------------------------------------


def test_fallback_id_matches_the_session_generic_id_vectors():
    assert str(fallback_id("./migrations/001_users.sql")) == "8cb96d1a-b6fc-e524-d4f0-95b95baba1da"
    assert str(fallback_id("./migrations/café.sql")) == "9bbc3810-8180-8c39-61fd-68b968fbc799"
    assert fallback_id("migrations/001_users.sql") == fallback_id("./migrations/001_users.sql")


def test_dot_path_normalization():
    assert dot_path("a\\b.sql") == "./a/b.sql"
    assert dot_path("/a//b.sql") == "./a/b.sql"
    assert dot_path("././x.sql") == "././x.sql"  # as the server: an existing ./ prefix is kept
    assert dot_path(".//x.sql") == "./x.sql"
    assert dot_path("./x.sql") == "./x.sql"


@pytest.mark.parametrize("name", ["001_users.sql", "a&b <c>.sql", "café.sql"])
def test_scaffold_block_round_trips_with_the_generic_id(name):
    path = f"./migrations/{name}"
    for idem in (True, False):
        meta = parse_block(scaffold_block(path, idem) + "SELECT 1;\n", path)
        assert meta.id == fallback_id(path)
        assert meta.idempotent is idem
        assert meta.sort_keys == (f"generated/{name}",)
        assert meta.description == f"\n    Auto-generated metadata for {name}\n  "


# ---- duplicates -----------------------------------------------------------------------------


def f(path, meta=None, *, sql=True, test=False):
    return SimpleNamespace(path=path, metadata=meta, is_sql=sql, is_test=test)


def meta(*keys, ident=UID, idem=True, desc=""):
    return ScriptMeta(uuid.UUID(ident), idem, desc, tuple(keys))


def test_duplicate_ids_across_files():
    files = [f("./b.sql", meta()), f("./a.sql", meta()), f("./c.sql"), f("./d.sql", meta(ident=str(uuid.uuid4())))]
    with pytest.raises(ConfigError) as info:
        check_duplicate_ids(files)
    assert str(info.value).endswith(
        f"duplicate <pgmi-meta id> across files; each script must have a unique id: {UID}: ./a.sql, ./b.sql"
    )
    check_duplicate_ids(files[1:])  # no duplicates, no error


# ---- plan ---------------------------------------------------------------------------------


def test_plan_pinned_order_path_keys_before_digit_keys():
    files = [
        f("./last.sql", meta("999/last", ident=str(uuid.uuid4()))),
        f("./first.sql", meta("001/000", ident=str(uuid.uuid4()))),
        f("./setup/functions.sql"),
        f("./fallback_a.sql"),
        f("./migrations/002_data.sql"),
        f("./fallback-b.sql"),
    ]
    assert [e.path for e in plan(files)] == [
        "./fallback-b.sql", "./fallback_a.sql", "./migrations/002_data.sql", "./setup/functions.sql",
        "./first.sql", "./last.sql",
    ]


def test_plan_multi_key_files_non_sql_files_and_tests():
    smoke = meta("150/000", "400/000", ident=str(uuid.uuid4()), idem=False, desc="smoke")
    files = [
        f("./checks/smoke.sql", smoke),
        f("./schema/010.sql", meta("100/010")),
        f("./README.md", sql=False),
        f("./__test__/test_x.sql", test=True),
        f("./nokeys.sql", meta(ident=str(uuid.uuid4()))),
    ]
    rows = plan(files)
    assert [(r.execution_order, r.sort_key, r.path) for r in rows] == [
        (1, "./README.md", "./README.md"),
        (2, "./nokeys.sql", "./nokeys.sql"),
        (3, "100/010", "./schema/010.sql"),
        (4, "150/000", "./checks/smoke.sql"),
        (5, "400/000", "./checks/smoke.sql"),
    ]
    readme = rows[0]
    assert readme.id is None and readme.idempotent is True and readme.description == ""
    assert readme.generic_id == fallback_id("./README.md")
    assert rows[3].id == smoke.id and rows[3].idempotent is False and rows[3].description == "smoke"


def test_plan_ties_break_by_path_bytewise():
    files = [f("./b.sql", meta("k", ident=str(uuid.uuid4()))), f("./B.sql", meta("k", ident=str(uuid.uuid4()))),
             f("./a.sql", meta("k", ident=str(uuid.uuid4())))]
    assert [e.path for e in plan(files)] == ["./B.sql", "./a.sql", "./b.sql"]


def test_plan_property_random_projects():
    alphabet = ["0", "1", "9", "10", "a", "A", "_", "-", "/", ".", " ", "é", "ß", "Z", "ё", "😀"]
    for seed in range(200):
        rng = random.Random(seed)
        files = []
        for i in range(rng.randint(0, 12)):
            path = "./" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) + f"{i}.sql"
            keys = tuple("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
                         for _ in range(rng.choice([0, 1, 1, 2, 3])))
            files.append(f(path, meta(*keys, ident=str(uuid.UUID(int=rng.getrandbits(128)))) if rng.random() < .7
                           else None))
        rows = plan(files)
        assert [r.execution_order for r in rows] == list(range(1, len(rows) + 1))
        expected = sorted(
            ((k, x.path) for x in files for k in ((x.metadata.sort_keys or (x.path,)) if x.metadata else (x.path,))),
            key=lambda kp: (kp[0].encode(), kp[1].encode()),
        )
        assert [(r.sort_key, r.path) for r in rows] == expected


# ---- file summary (pgmi metadata plan) -----------------------------------------------------


def test_file_summary_orders_by_smallest_key_then_full_path():
    files = [
        f("./b/001_first.sql"),
        f("./a/002_second.sql"),
        f("./z.sql", meta("000/b", "zzz", ident=str(uuid.uuid4()))),
        f("./nokeys.sql", meta(ident=str(uuid.uuid4()), idem=False, desc="d")),
        f("./notes.txt", sql=False),
        f("./__test__/test_a.sql", test=True),
    ]
    entries = file_summary(files)
    assert [e["path"] for e in entries] == ["./a/002_second.sql", "./b/001_first.sql", "./nokeys.sql", "./z.sql"]
    assert entries[0] == {"path": "./a/002_second.sql", "id": str(fallback_id("./a/002_second.sql")),
                          "idempotent": True, "sort_keys": ["./a/002_second.sql"],
                          "description": "No metadata (fallback)"}
    assert entries[2]["sort_keys"] == [] and entries[2]["idempotent"] is False


# ---- property tests of the parser ----------------------------------------------------------

_TEXT_CHARS = ["a", "Z", "0", " ", "\n", "\t", "é", "ж", "😀", "<", ">", "&", "'", '"', "/", "-", "_", "*", "$"]
_XML_ESCAPES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;"}


def _rand_text(rng: random.Random, nonblank: bool) -> str:
    while True:
        text = "".join(rng.choice(_TEXT_CHARS) for _ in range(rng.randint(0, 12)))
        text = text.replace("*/", "* /").replace("/*", "/ *").replace("\r", "")
        if not nonblank or text.strip():
            return text


def _xml_text(rng: random.Random, text: str) -> str:
    """Escape `text` as XML character data, sometimes as CDATA or character references."""
    if "]]>" not in text and rng.random() < 0.2:
        return f"<![CDATA[{text}]]>"
    return "".join(_XML_ESCAPES.get(c, f"&#{ord(c)};" if rng.random() < 0.1 else c) for c in text)


def _uuid_spelling(rng: random.Random, ident: uuid.UUID) -> str:
    s = str(ident)
    s = s.upper() if rng.random() < 0.3 else s
    return rng.choice([s, "{" + s + "}", "urn:uuid:" + s, s.replace("-", "")])


def test_property_random_valid_blocks_round_trip():
    for seed in range(300):
        rng = random.Random(seed)
        ident = uuid.UUID(int=rng.getrandbits(128) | 1)
        idem = rng.random() < 0.5
        idem_text = rng.choice(["true", "True", "TRUE", "t", "1"] if idem else ["false", "False", "f", "0", ""])
        keys = tuple(_rand_text(rng, True) for _ in range(rng.randint(0, 4)))
        desc = _rand_text(rng, False)
        while desc and not desc.strip():
            desc = _rand_text(rng, False)
        body = ""
        if desc or rng.random() < 0.5:
            body += f"\n  <description>{_xml_text(rng, desc)}</description>"
        if keys or rng.random() < 0.5:
            body += "\n  <sortKeys>" + "".join(f"<key>{_xml_text(rng, k)}</key><!-- c -->" for k in keys)
            body += "</sortKeys>"
        attrs = [f'id="{_uuid_spelling(rng, ident)}"', f'idempotent="{idem_text}"']
        rng.shuffle(attrs)
        sql_before = rng.choice(["", "SELECT 1;\n", "-- note\n", "SELECT '/* not me */';\n", "/* plain */\n"])
        content = f"{sql_before}/* prose\n<pgmi-meta {' '.join(attrs)}>{body}\n</pgmi-meta>\n*/\nSELECT 2;\n"
        meta_ = parse_block(content, f"./p{seed}.sql")
        assert meta_ == ScriptMeta(ident, idem, desc, keys), (seed, content)


_GARBAGE = ["/*", "*/", "<pgmi-meta ", "<pgmi-meta>", "</pgmi-meta>", "<pgmi:meta ", ">", "<", "&", "&amp;",
            'id="', UID, '"', "'", 'idempotent="', "true", "yes", "<sortKeys>", "</sortKeys>", "<key>", "</key>",
            "<description>", "</description>", "$$", "--", "\n", " ", "<!--", "-->", "<![CDATA[", "]]>", "é", "\x00"]


def test_property_garbage_never_crashes_with_anything_but_config_error():
    for seed in range(2000):
        rng = random.Random(seed)
        content = "".join(rng.choice(_GARBAGE) for _ in range(rng.randint(0, 40)))
        try:
            result = parse_block(content, "g.sql")
        except ConfigError as err:
            assert str(err).count("./g.sql") == 1, content
        else:
            assert result is None or isinstance(result, ScriptMeta)


# ---- the `pgmi metadata` commands (real scanner, real files) --------------------------------


def write(root, rel, text, mode=None):
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    if mode is not None:
        target.chmod(mode)
    return target


def run(argv, capsys):
    return run_cli(argv, capsys)


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "proj"
    write(root, "migrations/001_users.sql", "CREATE TABLE u();\n", 0o640)
    write(root, "migrations/002_data.sql", block(body="<sortKeys><key>000/b</key><key>zzz</key></sortKeys>")
          + "\nSELECT 1;\n")
    write(root, "README.md", "# no deploy.sql here: the metadata commands never need one\n")
    write(root, "__test__/test_a.sql", "SELECT 1;\n")  # test files are never scaffolded
    write(root, "__test__/test_meta.sql", block().replace(UID, "not-a-uuid"))  # never parsed in a test dir
    write(root, "notes.txt", block().replace(UID, "not-a-uuid"))  # nor in a non-SQL file
    return root


def test_plan_json(proj, capsys):
    code, out, err = run(["metadata", "plan", str(proj), "--json"], capsys)
    assert code == 0 and err == ""
    import json

    doc = json.loads(out)
    assert doc["total_files"] == 2
    assert [e["path"] for e in doc["plan"]] == ["./migrations/001_users.sql", "./migrations/002_data.sql"]
    assert doc["plan"][0]["id"] == str(fallback_id("./migrations/001_users.sql"))
    assert doc["plan"][1] == {"path": "./migrations/002_data.sql", "id": UID, "idempotent": True,
                              "sort_keys": ["000/b", "zzz"], "description": ""}


def test_plan_human_report_goes_to_stdout(proj, capsys):
    code, out, err = run(["metadata", "plan", str(proj)], capsys)
    assert code == 0
    assert "Metadata Summary (2 files):" in out
    assert "1. ./migrations/001_users.sql" in out and "   Sort Keys: [000/b zzz]" in out
    assert "   Description: No metadata (fallback)" in out
    assert err == "Scanning SQL files and analyzing dependencies...\n"  # progress only


def test_scaffold_preview_changes_nothing(proj, capsys):
    before = {p: p.read_bytes() for p in proj.rglob("*") if p.is_file()}
    code, out, err = run(["metadata", "scaffold", str(proj)], capsys)
    assert code == 0 and err == "Scanning for SQL files without metadata...\n"
    assert "Found 1 file(s) without metadata:" in out
    assert f"ID: {fallback_id('./migrations/001_users.sql')} (fallback)" in out
    assert "<pgmi-meta" not in out, "the generated block itself is never printed"
    assert out.rstrip().endswith("Preview mode: no files were modified. Use --write to apply changes.")
    assert {p: p.read_bytes() for p in proj.rglob("*") if p.is_file()} == before


def test_scaffold_write_is_atomic_keeps_mode_and_uses_generic_id(proj, capsys):
    target = proj / "migrations/001_users.sql"
    code, out, _ = run(["metadata", "scaffold", str(proj), "--write", "--idempotent", "false"], capsys)
    assert code == 0
    assert "Written to file" in out and out.rstrip().endswith("Generated metadata for 1 file(s).")
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert not list(proj.rglob("*.pgmi-tmp"))
    text = target.read_text()
    assert text.endswith("\n\nCREATE TABLE u();\n")
    meta_ = parse_block(text, "./migrations/001_users.sql")
    assert meta_.id == fallback_id("./migrations/001_users.sql") and meta_.idempotent is False
    assert (proj / "__test__/test_a.sql").read_text() == "SELECT 1;\n"
    code, out, _ = run(["metadata", "scaffold", str(proj)], capsys)
    assert code == 0 and "All SQL files already have metadata." in out


@pytest.mark.parametrize("flags, expected", [
    (["{p}", "--write", "--idempotent"], True),            # the bare flag is true, as in the original
    (["--write", "--idempotent", "{p}"], True),            # ... also right before the path
    (["{p}", "--write", "--idempotent=false"], False),
    (["{p}", "--write", "--idempotent", "FALSE"], False),  # still takes a separate value
    (["{p}", "--write", "--idempotent=1"], True),
])
def test_scaffold_idempotent_flag_forms(proj, capsys, flags, expected):
    code, _, _ = run(["metadata", "scaffold", *(f.format(p=proj) for f in flags)], capsys)
    assert code == 0
    text = (proj / "migrations/001_users.sql").read_text()
    assert parse_block(text, "./migrations/001_users.sql").idempotent is expected


def test_scaffold_idempotent_rejects_a_non_boolean(proj, capsys):
    before = (proj / "migrations/001_users.sql").read_bytes()
    code, _, err = run(["metadata", "scaffold", str(proj), "--write", "--idempotent", "maybe"], capsys)
    assert code == Exit.USAGE and "--idempotent" in err and "Traceback" not in err
    assert (proj / "migrations/001_users.sql").read_bytes() == before


def test_scaffold_keeps_a_bom_first(tmp_path, capsys):
    target = write(tmp_path, "x.sql", b"\xef\xbb\xbfSELECT 1;\n")
    assert run(["metadata", "scaffold", str(tmp_path), "--write"], capsys)[0] == 0
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf/*\n<pgmi-meta") and data.count(b"\xef\xbb\xbf") == 1


def test_validate_json_and_human(proj, capsys):
    import json

    code, out, _ = run(["metadata", "validate", str(proj), "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"total_files": 6, "files_with_metadata": 1, "files_without_metadata": 5,
                               "validation_passed": True, "duplicate_ids": []}
    assert list(json.loads(out)) == ["total_files", "files_with_metadata", "files_without_metadata",
                                     "validation_passed", "duplicate_ids"]
    code, out, err = run(["metadata", "validate", str(proj)], capsys)
    assert code == 0 and "Validation Summary:" not in err
    assert "Validation Summary:" in out and "Metadata validation passed." in out


def test_validate_duplicate_ids_exit_1_after_printing(proj, capsys):
    import json

    write(proj, "b/dup.sql", block())
    code, out, err = run(["metadata", "validate", str(proj), "--json"], capsys)
    assert code == 1
    doc = json.loads(out)
    assert doc["validation_passed"] is False
    assert doc["duplicate_ids"] == [f"{UID}: ./b/dup.sql, ./migrations/002_data.sql"]
    assert "pgmi: error: metadata validation failed" in err
    code, out, err = run(["metadata", "validate", str(proj)], capsys)
    assert code == 1 and "Error: Duplicate IDs detected:" in out
    assert "pgmi: error: metadata validation failed" in err


def test_duplicate_ids_fail_plan_and_scaffold_as_config(proj, capsys):
    write(proj, "b/dup.sql", block())
    for sub in ("plan", "scaffold"):
        code, _, err = run(["metadata", sub, str(proj)], capsys)
        assert code == 10 and "duplicate <pgmi-meta id> across files" in err


def test_malformed_block_fails_every_command_with_exit_10(proj, capsys):
    write(proj, "bad.sql", "SELECT 1;\n/*\n<pgmi-meta id='x' idempotent='true'>\n</pgmi-meta>\n*/\n")
    for sub in ("plan", "scaffold", "validate"):
        code, out, err = run(["metadata", sub, str(proj)], capsys)
        assert code == 10 and out == "", sub
        assert "./bad.sql (line 3) [field: id]: invalid UUID length: 1" in err
    assert "pgmi: error: validation failed: " in err


def test_missing_or_bad_project_path(tmp_path, capsys):
    for sub in ("plan", "scaffold", "validate"):
        code, _, err = run(["metadata", sub], capsys)
        assert code == 2
        assert "missing required argument: <project_path>" in err
        assert f"Usage: pgmi metadata {sub} <project_path> [flags]" in err and "Example:" in err
        code, _, err = run(["metadata", sub, str(tmp_path / "nope")], capsys)
        assert code == 10 and "does not exist" in err
        write(tmp_path, "file.sql", "x")
        code, _, _ = run(["metadata", sub, str(tmp_path / "file.sql")], capsys)
        assert code == 10


def test_verbose_lines(proj, capsys):
    for sub in ("plan", "validate", "scaffold"):
        code, _, err = run(["-v", "metadata", sub, str(proj)], capsys)
        assert code == 0 and "[VERBOSE] " in err, sub
        code, _, err = run(["metadata", sub, str(proj)], capsys)
        assert "[VERBOSE]" not in err
