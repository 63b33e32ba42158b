"""The locator's pure parts without a server: names in messages, text matched back to its file."""

from __future__ import annotations

import random

from pgmilib.deploy.locate import locate_text
from pgmilib.deploy.names import comment_free, find_mention, names_in
from pgmilib.deploy.textmatch import find_text


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def test_names_in_messages() -> None:
    assert [n.text for n in names_in('relation "app.flowz" does not exist')] == ["app.flowz"]
    routine = names_in("function convert_tz(text) does not exist")
    assert [(n.text, n.routine) for n in routine] == [("convert_tz", True)]
    assert [n.text for n in names_in('column "nme" of relation "Users" does not exist')] == ["nme", "Users"]
    assert [n.text for n in names_in('syntax error at or near "("')] == []
    assert [n.text for n in names_in('could not open extension control file "/usr/share/x/no_ext.control"')] == [
        "no_ext"]


def test_comment_free_keeps_strings_and_bodies_but_not_comments() -> None:
    text = "-- users\nSELECT 'users' /* users */;\nDO $$ BEGIN -- users\n PERFORM users(); END $$;\n"
    clean = comment_free(text)
    assert len(clean) == len(text) and clean.count("users") == 2
    assert "'users'" in clean and "PERFORM users()" in clean


def test_mention_prefers_use_over_definition_and_skips_comments() -> None:
    text = ("-- audit_log is created below\nCREATE TABLE audit_log (id int);\n"
            "CREATE INDEX ON other (id);\nINSERT INTO audit_log\n  VALUES (1);\n")
    found = find_mention('relation "audit_log" does not exist', text)
    assert _line(text, found.offset) == 4
    again = find_mention('relation "audit_log" already exists', text + "CREATE TABLE audit_log (id int);\n")
    assert _line(text, again.offset) == 6 if again.offset < len(text) else _line(
        text + "CREATE TABLE audit_log (id int);\n", again.offset) == 6


def test_mention_of_a_quoted_mixed_case_name_is_case_sensitive() -> None:
    text = 'SELECT * FROM orders;\nSELECT * FROM "Orders";\n'
    found = find_mention('relation "Orders" does not exist', text)
    assert _line(text, found.offset) == 2


def test_data_errors_point_at_the_statement_that_writes_rows() -> None:
    text = "CREATE TABLE t (\n  id int,\n  note text NOT NULL\n);\nINSERT INTO t (id)\n  VALUES (1);\n"
    found = find_mention('null value in column "note" of relation "t" violates not-null constraint', text,
                         sqlstate="23502")
    assert _line(text, found.offset) == 5  # the INSERT (names t), not the CREATE TABLE naming note
    division = find_mention("division by zero", "CREATE VIEW v AS SELECT a / b FROM t;\nSELECT 1 / 0;\n",
                            sqlstate="22012")
    assert _line("CREATE VIEW v AS SELECT a / b FROM t;\n", division.offset) == 2


def test_rewritten_text_is_matched_by_its_unchanged_lines() -> None:
    original = ("-- orders\nCREATE TABLE {{schema}}.orders (\n    id bigint PRIMARY KEY,\n    total numeric NOT NULL\n"
                ");\nCREATE INDEX CONCURRENTLY orders_total ON {{schema}}.orders (total);\n"
                "SELECT total FROMM {{schema}}.orders;\n")
    ran = original.replace("{{schema}}", "public").replace("CONCURRENTLY ", "")
    files = {"./a.sql": "CREATE TABLE {{schema}}.customers (\n    id bigint PRIMARY KEY\n);\n", "./b.sql": original}
    match = find_text(files, ran)
    assert match is not None and match.file == "./b.sql" and not match.verbatim
    assert match.place(ran, ran.index("    total numeric")) == (4, 1, True)  # unchanged: certain
    line, column, exact = match.place(ran, ran.index("FROMM"))
    assert (line, exact) == (7, False) and column == len("SELECT total ") + 1  # changed after the column
    found = locate_text(files, ran, ran.index("FROMM"))
    assert (found.file, found.line, found.exact, found.located_by) == ("./b.sql", 7, False, "fragments")


def test_no_clear_source_gives_no_file() -> None:
    body = "CREATE TABLE {{schema}}.t (\n    id bigint PRIMARY KEY,\n    name text NOT NULL\n);\n"
    files = {"./a.sql": body, "./b.sql": body.replace("name", "title")}
    ran = body.replace("{{schema}}", "public").replace("name", "label")
    assert find_text(files, ran) is None  # both share the same lines: better no file than a wrong one


def test_verbatim_positions_map_back_whatever_the_surroundings() -> None:
    rng = random.Random(7)
    for _ in range(200):
        text = "".join(rng.choice(["SELECT 1;\n", "CREATE TABLE x (id int);\n", "  -- c\n", "é;\n"])
                       for _ in range(rng.randint(3, 12)))
        content = "".join(rng.choice("ab\n") for _ in range(rng.randint(0, 30))) + text
        offset = rng.randrange(len(text))
        match = find_text({"./f.sql": content, "./g.sql": "other"}, text)
        line, column, exact = match.place(text, offset)
        at = content.index(text) + offset
        assert (line, column, exact) == (_line(content, at), at - content.rfind("\n", 0, at), True)


def test_text_with_every_line_rewritten_is_found_by_its_rare_words() -> None:
    files = {f"./m/{i:03d}.sql": "\n".join(f"CREATE TABLE {{{{schema}}}}.t_{i}_{j} (c int);" for j in range(20)) + "\n"
             for i in range(50)}
    ran = files["./m/031.sql"].replace("{{schema}}", "public")
    found = locate_text(files, ran, ran.index("t_31_12"))
    assert (found.file, found.line, found.exact, found.located_by) == ("./m/031.sql", 13, False, "fragments")
    assert found.column == files["./m/031.sql"].split("\n")[12].index("t_31_12") + 1


def test_locate_text_takes_a_scanned_project(tmp_path) -> None:
    from projects import write_project

    from pgmilib.project.scan import scan

    root = write_project(tmp_path / "p", {"migrations/001.sql": "CREATE TABLE a (id int);\n\nLOCK TABLE a IN ACCESS "
                                                                  "EXCLUSIVE MODE;\n"})
    found = locate_text(scan(root), "LOCK TABLE a IN ACCESS EXCLUSIVE MODE;")
    assert (found.file, found.line, found.column, found.exact) == ("./migrations/001.sql", 3, 1, True)
    assert locate_text(scan(root), "SELECT something_else_entirely FROM nowhere") is None
