"""session.py + sql/session_*.sql against a real server: shape of the API, loading, parameters.

Every test prepares a session on its own connection to a fresh database and reads back
through the public views, as a project's deploy.sql would.
"""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from pathlib import Path

import pytest
from projects import server_has_lz4, write_project

from pgmilib.deploy import session
from pgmilib.errors import Exit, PgmiError, exit_code
from pgmilib.output import Output
from pgmilib.project import paths as PP
from pgmilib.project import scan as P

META = """/*
<pgmi-meta id="{id}" idempotent="{idem}">
  <description>{desc}</description>
  <sortKeys>{keys}</sortKeys>
</pgmi-meta>
*/
SELECT 1;
"""

EXPECTED_VIEWS = {
    "pgmi_source_view": [
        ("path", "text"), ("name", "text"), ("directory", "text"), ("extension", "text"), ("depth", "integer"),
        ("content", "text"), ("size_bytes", "bigint"), ("checksum", "text"), ("pgmi_checksum", "text"),
        ("path_parts", "text[]"), ("is_sql_file", "boolean"), ("is_test_file", "boolean"),
        ("parent_folder_name", "text"),
    ],
    "pgmi_parameter_view": [
        ("key", "text"), ("value", "text"), ("type", "text"), ("required", "boolean"),
        ("default_value", "text"), ("description", "text"),
    ],
    "pgmi_test_source_view": [
        ("path", "text"), ("directory", "text"), ("filename", "text"), ("content", "text"), ("is_fixture", "boolean"),
    ],
    "pgmi_test_directory_view": [("path", "text"), ("parent_path", "text"), ("depth", "integer")],
    "pgmi_source_metadata_view": [
        ("path", "text"), ("id", "uuid"), ("idempotent", "boolean"), ("sort_keys", "text[]"), ("description", "text"),
    ],
    "pgmi_plan_view": [
        ("path", "text"), ("content", "text"), ("checksum", "text"), ("generic_id", "uuid"), ("id", "uuid"),
        ("idempotent", "boolean"), ("description", "text"), ("sort_key", "text"), ("execution_order", "bigint"),
    ],
}

# The contract functions plus pgmi_run_test_source: nothing else may leak.
EXPECTED_FUNCTIONS = {
    "pgmi_register_file", "pgmi_is_sql_file", "pgmi_test_plan", "pgmi_test_callback", "pgmi_validate_pattern",
    "pgmi_has_tests", "pgmi_persist_test_plan", "pgmi_run_test_source", "pgmi_test_generate",
}


def connect(pg, db: str):
    import pg8000.native

    return pg8000.native.Connection(**pg.conn_kwargs(db))


def make(root: Path, files: dict[str, str | bytes]) -> P.Project:
    return P.scan(write_project(root, files))


def prepare(conn, project: P.Project, params: dict[str, str] | None = None) -> list[str]:
    """Run session.prepare and return the progress lines it wrote."""
    stderr = io.StringIO()
    session.prepare(conn, project, params or {}, out=Output(stderr=stderr, stdout=io.StringIO()))
    return stderr.getvalue().splitlines()


def meta(keys: list[str], *, desc: str = "d", idem: str = "true", ident: uuid.UUID | None = None) -> str:
    return META.format(id=ident or uuid.uuid4(), idem=idem, desc=desc,
                       keys="".join(f"<key>{k}</key>" for k in keys))


@pytest.fixture
def db(pg, fresh_db):
    c = connect(pg, fresh_db)
    yield c
    c.close()


# ---- shape ---------------------------------------------------------------------------------

def test_views_have_exactly_the_contract_columns(db, tmp_path):
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    rows = db.run(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'v' "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum")
    got: dict[str, list[tuple[str, str]]] = {}
    for view, column, kind in rows:
        got.setdefault(view, []).append((column, kind))
    assert got == EXPECTED_VIEWS


def test_only_documented_functions_in_pg_temp(db, tmp_path):
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    names = {r[0] for r in db.run("SELECT proname FROM pg_proc WHERE pronamespace = pg_my_temp_schema()")}
    assert names == EXPECTED_FUNCTIONS
    types = {r[0] for r in db.run(
        "SELECT typname FROM pg_type WHERE typnamespace = pg_my_temp_schema() AND typtype = 'c' "
        "AND typrelid NOT IN (SELECT oid FROM pg_class WHERE relkind IN ('r', 'v'))")}
    assert types == {"pgmi_test_event"}


def test_everything_readable_by_public(db, tmp_path):
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    rows = db.run("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = pg_my_temp_schema() "
                  "AND relkind IN ('r', 'v') ORDER BY relname")
    assert len(rows) == 11
    for name, acl in rows:
        assert acl is not None and "=r/" in acl, name


def test_prepare_is_silent_and_reports_counts(db, tmp_path):
    project = make(tmp_path, {"a.sql": "SELECT 1;", "__test__/t.sql": "SELECT 1;", "__test__/README.md": "x"})
    db.notices.clear()
    lines = prepare(db, project)
    assert list(db.notices) == []
    assert lines == ["Loaded 3 files"]


def test_prepare_silent_when_a_temp_schema_already_exists(db, tmp_path):
    db.run("CREATE TEMP TABLE unrelated (x int)")  # temp schema exists, pgmi tables do not
    db.notices.clear()
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    assert list(db.notices) == []
    assert db.run("SELECT count(*) FROM pg_temp.unrelated") == [[0]]


def _content_compression(db) -> list[str]:
    return [r[0] for r in db.run(
        "SELECT attcompression::text FROM pg_attribute WHERE attname = 'content' AND attrelid IN "
        "('pg_temp._pgmi_source'::regclass, 'pg_temp._pgmi_test_source'::regclass) ORDER BY attrelid::regclass::text")]


def test_contents_use_lz4_when_the_server_has_it(db, tmp_path):
    """lz4 where the server was built with it; elsewhere (the embedded server) the columns keep the default."""
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    assert _content_compression(db) == (["l", "l"] if server_has_lz4(db) else ["", ""])
    # A column setting: the session's own default is left alone.
    assert db.run("SHOW default_toast_compression") == [["pglz"]]


def test_a_refused_compression_leaves_the_default(db):
    """The server refusing SET COMPRESSION with feature_not_supported (a build without lz4 does) is
    no failure: the same block, aimed at a column whose type cannot be compressed, gets that very
    refusal from this server, and the schema is still created, silently, without the setting."""
    import pg8000.exceptions

    from pgmilib.resources import read_sql

    text = read_sql("session_schema.sql")
    aimed = text.replace("_pgmi_source ALTER COLUMN content SET", "_pgmi_source ALTER COLUMN depth SET")
    assert aimed != text
    with pytest.raises(pg8000.exceptions.DatabaseError, match="0A000"):  # the refusal, outside the block
        db.run("CREATE TEMP TABLE probe (depth integer); ALTER TABLE probe ALTER COLUMN depth SET COMPRESSION lz4")
    db.notices.clear()
    db.run(aimed)
    assert list(db.notices) == []
    assert _content_compression(db) == ["", ""]  # the whole block rolled back: neither column changed
    assert db.run("SELECT count(*) FROM pg_temp._pgmi_source") == [[0]]


def test_setup_settings_end_with_the_setup(db, tmp_path):
    """The scripts skip the body check and the commit's WAL flush for their own transactions only:
    whatever the session had (here: not the defaults) is what it has afterwards, and deploy.sql sees."""
    db.run("SET check_function_bodies = off")
    db.run("SET synchronous_commit = remote_apply")
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    assert db.run("SELECT current_setting('check_function_bodies'), current_setting('synchronous_commit')") == [
        ["off", "remote_apply"]]
    db.run("SET check_function_bodies = on")
    db.run("SET synchronous_commit = on")
    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    assert db.run("SELECT current_setting('check_function_bodies'), current_setting('synchronous_commit')") == [
        ["on", "on"]]


def test_every_function_body_compiles(db, tmp_path):
    """The scripts skip the body check at creation (check_function_bodies is off for them): each
    body is checked here, by the language's own validator, as the server would have at creation."""
    import pg8000.exceptions

    prepare(db, make(tmp_path, {"a.sql": "SELECT 1;"}))
    assert db.run("SHOW check_function_bodies") == [["on"]]  # only the scripts' transactions had it off
    rows = db.run("SELECT p.proname, l.lanname, l.lanvalidator::regproc::text FROM pg_proc p "
                  "JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = pg_my_temp_schema()")
    assert {r[0] for r in rows} == EXPECTED_FUNCTIONS
    assert {r[1] for r in rows} == {"sql", "plpgsql"}
    for name, _language, validator in rows:
        db.run(f"SELECT {validator}(CAST(:oid AS oid))", oid=db.run(
            "SELECT oid FROM pg_proc WHERE proname = :n AND pronamespace = pg_my_temp_schema()", n=name)[0][0])
    # The validators do find a broken body.
    db.run("SET check_function_bodies = off")
    db.run("CREATE FUNCTION pg_temp.broken() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1 END $$")
    db.run("SET check_function_bodies = on")
    with pytest.raises(pg8000.exceptions.DatabaseError, match="42601"):
        db.run("SELECT plpgsql_validator('pg_temp.broken()'::regprocedure)")


def test_schema_rerunnable_and_prepare_twice(db, tmp_path):
    session.run_script(db, "session_schema.sql")
    session.run_script(db, "session_schema.sql")
    project = make(tmp_path, {"a.sql": "SELECT 1;", "b.sql": meta(["x"])})
    prepare(db, project, {"k": "v"})
    db.notices.clear()
    prepare(db, project, {"k": "v2"})
    assert list(db.notices) == []
    assert db.run("SELECT count(*) FROM pgmi_plan_view") == [[2]]
    assert db.run("SELECT value FROM pgmi_parameter_view") == [["v2"]]


# ---- loading -------------------------------------------------------------------------------

def test_source_rows_match_files(db, tmp_path):
    awkward = "line1\r\nline2\ttab \\ back\\slash\n\\.\n'q' \"d\" é 日本 🎉\n\\N\n"
    project = make(tmp_path, {
        "migrations/001_a.sql": awkward, "README.md": b"\xef\xbb\xbf# title\n", "x.sql~": "old",
        "deep/er/than/x.PSQL": "SELECT 1;", 'we"ird/{a,b} NULL.sql': "SELECT 1;", "tab\there.txt": "t",
    })
    prepare(db, project)
    rows = db.run("SELECT path, name, directory, extension, depth, content, size_bytes, checksum, pgmi_checksum, "
                  "path_parts, is_sql_file, is_test_file, parent_folder_name FROM pgmi_source_view ORDER BY path")
    by_path = {f.path: f for f in project.files}
    assert [r[0] for r in rows] == sorted(by_path)
    for row in rows:
        item = by_path[row[0]]
        cols = PP.path_columns(item.path)
        assert row[1:5] == [cols.name, cols.directory, cols.extension, cols.depth]
        assert row[5] == item.content
        assert row[6] == len(item.content.encode())
        assert row[7:9] == [item.checksum, item.pgmi_checksum]
        assert row[9] == list(cols.parts)
        assert row[10:] == [item.is_sql, False, cols.parent_folder_name]
    assert by_path["./README.md"].content == "# title\n"
    assert db.run("SELECT content FROM pgmi_source_view WHERE path = './migrations/001_a.sql'") == [[awkward]]


def test_tests_and_metadata_rows(db, tmp_path):
    ident = uuid.uuid4()
    project = make(tmp_path, {
        "__test__/_Setup.SQL": "SELECT 0;", "__test__/test_a.sql": "SELECT 1;", "__test__/README.md": "r",
        "__test__/sub/deep/test_b.psql": "SELECT 2;", "api/__tests__/notes.txt": "n",
        "m.sql": meta(["b", "a"], desc="  verbatim  ", ident=ident), "n.sql": meta([], idem="false"),
    })
    prepare(db, project)
    assert db.run("SELECT path, parent_path, depth FROM pgmi_test_directory_view ORDER BY path") == [
        ["./__test__/", None, 0], ["./__test__/sub/deep/", "./__test__/", 2], ["./api/__tests__/", None, 0]]
    assert db.run("SELECT path, directory, filename, is_fixture FROM pgmi_test_source_view ORDER BY path") == [
        ["./__test__/_Setup.SQL", "./__test__/", "_Setup.SQL", True],
        ["./__test__/sub/deep/test_b.psql", "./__test__/sub/deep/", "test_b.psql", False],
        ["./__test__/test_a.sql", "./__test__/", "test_a.sql", False]]
    assert db.run("SELECT path FROM pgmi_source_view ORDER BY path") == [["./m.sql"], ["./n.sql"]]
    assert db.run("SELECT path, id, idempotent, sort_keys, description FROM pgmi_source_metadata_view "
                  "ORDER BY path") == [
        ["./m.sql", ident, True, ["b", "a"], "  verbatim  "], ["./n.sql", project.files[-1].metadata.id, False, [], "d"]]
    # ANALYZE ran: temp tables have statistics (reltuples is -1 until analysed).
    assert db.run("SELECT reltuples FROM pg_class WHERE oid = 'pg_temp._pgmi_source'::regclass") == [[2.0]]


def test_ten_thousand_files(db, tmp_path):
    rng = random.Random(10_000)
    alphabet = "abc XYZ\t\n\r\\'\"$;é日🎉"
    files = {}
    for i in range(10_000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        files[f"d{i % 37}/e{i % 7}/f{i:05d}.sql"] = body
    project = make(tmp_path, files)
    assert prepare(db, project) == ["Loaded 10000 files"]
    expected = hashlib.md5("".join(files[k] for k in sorted(files)).encode()).hexdigest()
    rows = db.run("SELECT count(*), md5(string_agg(content, '' ORDER BY path COLLATE \"C\")) FROM pgmi_source_view")
    assert rows == [[10_000, expected]]


def test_python_path_derivation_matches_register_file(db, tmp_path):
    prepare(db, make(tmp_path, {}))
    rng = random.Random(99)
    segments = ["a", "B", "dir.d", "café", "миграции", "x y", "ü.v2", "n-1", "__x", "Makefile"]
    names = list(SQL_NAMES) + ["notes.txt~", "archive.tar.gz", ".env-local", "notes.", "a.b.c"]
    for i in range(150):
        parts = [rng.choice(segments) for _ in range(rng.randint(0, 4))] + [f"{i}{rng.choice(names)}"]
        path = PP.normalise_path("/".join(parts))
        row = db.run("SELECT name, directory, extension, depth, path_parts, is_sql_file, parent_folder_name, path "
                     "FROM pg_temp.pgmi_register_file(:p, 'x', :c, :c)", p=path, c="0" * 64)[0]
        cols = PP.path_columns(path)
        assert row == [cols.name, cols.directory, cols.extension, cols.depth, list(cols.parts),
                       PP.is_sql_name(cols.name), cols.parent_folder_name, path], path
    for raw in ("  a\\b.sql ", "/x//y.sql", "./z.sql"):
        assert db.run("SELECT path FROM pg_temp.pgmi_register_file(:p, '', :c, :c)",
                      p=raw, c="0" * 64) == [[PP.normalise_path(raw)]]


SQL_NAMES = ["x.sql", "x.SQL", "x.PlPgSql", "x.ddl", "x.dml", "x.dql", "x.dcl", "x.psql", "x.pgsql", "x.plpgsql",
             "a.b.sql", "x.Sql", "001.sql", "x.sql.bak", "x.sql~", "x.sql.orig", "x.sqlx", "x.bak", "x",
             "migrations/001.sql.bak", "sql", "x.txt", "x.sq", "README.md", "x.ps", "x.pl"]


def test_sql_extension_parity(db, tmp_path):
    prepare(db, make(tmp_path, {}))
    assert len(SQL_NAMES) == 26
    for name in SQL_NAMES:
        assert db.run("SELECT pg_temp.pgmi_is_sql_file(:n)", n=name) == [[PP.is_sql_name(name)]], name


def test_load_failure_names_the_file_and_keeps_the_connection(db, tmp_path):
    deep = "/".join(["d"] * 101) + "/x.sql"
    project = make(tmp_path, {"a.sql": "SELECT 1;", deep: "SELECT 2;"})
    with pytest.raises(PgmiError) as info:
        prepare(db, project)
    message = str(info.value)
    assert message.startswith("session preparation failed: failed to load files: ./" + deep + ": ")
    assert "pgmi_source_depth_range" in message
    assert db.run("SELECT 1") == [[1]]


def test_file_changed_since_scan(db, tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HELD_BYTES", 0)  # the re-read path: files too big to keep
    project = make(tmp_path, {"a.sql": "SELECT 1;", "b.sql": "SELECT 2;"})
    (tmp_path / "b.sql").write_text("DROP TABLE important;")
    with pytest.raises(PgmiError, match=r"^session preparation failed: failed to load files: file \./b\.sql changed"):
        prepare(db, project)
    assert db.run("SELECT 1") == [[1]]


# ---- the plan view -------------------------------------------------------------------------

PLAN_FILES = {
    "fallback_a.sql": "SELECT 1;", "fallback-b.sql": "SELECT 1;", "migrations/002_data.sql": "SELECT 1;",
    "setup/functions.sql": "SELECT 1;", "first.sql": meta(["001/000"]), "last.sql": meta(["999/999"]),
    "README.md": "not sql, still planned",
}
PLAN_ORDER = ["./README.md", "./fallback-b.sql", "./fallback_a.sql", "./migrations/002_data.sql",
              "./setup/functions.sql", "./first.sql", "./last.sql"]


def test_plan_view_pinned_order_and_defaults(db, tmp_path):
    project = make(tmp_path, PLAN_FILES)
    prepare(db, project)
    rows = db.run("SELECT path, execution_order, sort_key, id, idempotent, description, checksum, generic_id "
                  "FROM pgmi_plan_view ORDER BY execution_order")
    assert [r[0] for r in rows] == PLAN_ORDER
    assert [r[1] for r in rows] == list(range(1, 8))
    by_path = {f.path: f for f in project.files}
    for path, _order, key, ident, idem, desc, checksum, gid in rows:
        item = by_path[path]
        assert checksum == item.pgmi_checksum
        assert gid == PP.generic_id(path)
        if item.metadata is None:
            assert (key, ident, idem, desc) == (path, None, True, "")
        else:
            assert (key, ident) == (item.metadata.sort_keys[0], item.metadata.id)


def test_plan_view_byte_order_under_a_linguistic_collation(pg, tmp_path, create_database):
    """A database whose default collation is ICU root: the plan must still be in byte order."""
    import pg8000.native

    try:
        name = create_database("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' "
                               "LOCALE 'C.UTF-8' ENCODING 'UTF8'")
    except pg8000.native.DatabaseError as error:
        pytest.skip(f"no ICU collation on this server: {error}")
    conn = connect(pg, name)
    keys = ["b/1", "B/1", "a-1", "a_1", "a/1", "Z", "é", "e"]
    files = {f"k{i}.sql": meta([k]) for i, k in enumerate(keys)}
    files.update({"z_fallback.sql": "SELECT 1;", "A_fallback.sql": "SELECT 1;"})
    prepare(conn, make(tmp_path, files))
    got = [r[0] for r in conn.run("SELECT sort_key FROM pgmi_plan_view ORDER BY execution_order")]
    assert got == sorted(got, key=lambda k: k.encode())
    linguistic = [r[0] for r in conn.run("SELECT sort_key FROM pgmi_plan_view ORDER BY sort_key")]
    assert linguistic != got  # the data does tell the two orders apart
    conn.close()


def test_sort_keys_and_descriptions_with_awkward_characters(db, tmp_path):
    keys = ['a"b', "c\\d", " NULL ", "{x,y}", "tab\tkey", "é/日"]
    desc = "line1\n  line2 \\ \"q\" &amp; 'x'"
    project = make(tmp_path, {"k.sql": meta([k.replace("&", "&amp;") for k in keys], desc=desc)})
    assert project.files[0].metadata.sort_keys == tuple(keys)
    prepare(db, project)
    assert db.run("SELECT sort_keys, description FROM pgmi_source_metadata_view") == [
        [keys, desc.replace("&amp;", "&")]]
    assert [r[0] for r in db.run("SELECT sort_key FROM pgmi_plan_view ORDER BY execution_order")] == sorted(
        keys, key=lambda k: k.encode())


def test_plan_view_multi_key_and_empty_keys(db, tmp_path):
    project = make(tmp_path, {"multi.sql": meta(["10/a", "90/z", "50/m"]), "empty.sql": meta([]),
                              "plain.sql": "SELECT 1;"})
    prepare(db, project)
    rows = db.run("SELECT path, sort_key FROM pgmi_plan_view ORDER BY execution_order")
    assert rows == [["./empty.sql", "./empty.sql"], ["./plain.sql", "./plain.sql"], ["./multi.sql", "10/a"],
                    ["./multi.sql", "50/m"], ["./multi.sql", "90/z"]]


@pytest.mark.parametrize("reports", [True, False], ids=["reported", "asked"])
@pytest.mark.parametrize("encoding,client", [("UTF8", None), ("LATIN1", None), ("LATIN1", "UTF8")])
def test_generic_id_matches_python(pg, tmp_path, encoding, client, reports, create_database, monkeypatch):
    name = create_database(f"TEMPLATE template0 ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C'")
    conn = connect(pg, name)
    if client:  # a connection that asked for another client encoding gets it back afterwards
        conn.run(f"SET client_encoding = '{client}'")
    if not reports:  # a connection that kept no ParameterStatus: the encodings are asked for
        conn.parameter_statuses.clear()
    real = session.read_sql_section
    asked: list[str] = []
    monkeypatch.setattr(session, "read_sql_section", lambda file, part: asked.append(part) or real(file, part))
    files = {"migrations/café.sql": "SELECT 'é';", "миграции/001.sql": "SELECT 'я';", "plain.sql": "SELECT 1;"}
    project = make(tmp_path, files)
    prepare(conn, project, {"greeting": "привет"})
    # A round trip only to ask (without reports) and to switch (when the encodings differ).
    assert ("encodings" in asked) is not reports
    assert asked.count("set_client_encoding") == (2 if client else 0)
    got = {r[0] for r in conn.run("SELECT generic_id FROM pgmi_plan_view")}
    assert got == {PP.generic_id(f.path) for f in project.files}
    # The stored bytes are the files' UTF-8 bytes on both encodings (what the original does).
    md5s = {r[0] for r in conn.run("SELECT md5(content) FROM pgmi_source_view")}
    assert md5s == {hashlib.md5(body.encode()).hexdigest() for body in files.values()}
    assert conn.run("SELECT md5(current_setting('pgmi.greeting'))") == [
        [hashlib.md5("привет".encode()).hexdigest()]]
    assert conn.run("SHOW client_encoding") == [[client or encoding]]
    conn.close()


# ---- parameters ----------------------------------------------------------------------------

def test_parameters_rows_and_settings(db, tmp_path):
    value = "multi\nline\twith 'quotes' \"and\" \\back $$ :name %s é"
    lines = prepare(db, make(tmp_path, {}), {"apiVersion": "2", "env": "", "blob": value})
    assert lines == ["Loaded 0 files", "Loaded 3 parameters"]
    assert db.run("SELECT key, value, type, required, default_value, description FROM pgmi_parameter_view "
                  "ORDER BY key") == [
        ["apiversion", "2", "text", False, None, None], ["blob", value, "text", False, None, None],
        ["env", "", "text", False, None, None]]
    assert db.run("SELECT current_setting('pgmi.apiVersion', true), current_setting('pgmi.apiversion'), "
                  "current_setting('pgmi.env', true), current_setting('pgmi.blob'), "
                  "current_setting('pgmi.missing', true)") == [["2", "2", "", value, None]]
    # Session-level: survives a rolled-back transaction.
    db.run("BEGIN")
    db.run("ROLLBACK")
    assert db.run("SELECT current_setting('pgmi.apiversion')") == [["2"]]


def test_no_parameters_no_line(db, tmp_path):
    assert prepare(db, make(tmp_path, {"a.sql": "x"})) == ["Loaded 1 files"]
    assert db.run("SELECT count(*) FROM pgmi_parameter_view") == [[0]]


def test_parameter_keys_differing_in_case_fail_without_the_value(db, tmp_path):
    with pytest.raises(PgmiError) as info:
        prepare(db, make(tmp_path, {}), {"Env": "s3cr3t-1", "env": "s3cr3t-2"})
    # the same rule (and message) as before connecting: config.validate_params
    assert "parameter keys 'Env' and 'env' differ only in case" in str(info.value)
    assert exit_code(info.value) == Exit.CONFIG
    assert "s3cr3t" not in str(info.value)


def test_session_scripts_are_ascii():
    """pg8000 sends SQL text in the client encoding; on a LATIN1 (or any non-UTF8) database a
    non-ASCII character, even in a comment, fails the whole script."""
    from pgmilib.resources import read_sql

    for name in session.API_SCRIPTS:
        bad = [(n, line) for n, line in enumerate(read_sql(name).splitlines(), 1) if not line.isascii()]
        assert bad == [], name


def test_checksum_constraint_bounds(db, tmp_path):
    import pg8000.exceptions

    prepare(db, make(tmp_path, {}))
    ok = {"a" * 32, "F" * 64, "0123456789abcdefABCDEF0123456789"}
    bad = {"a" * 31, "a" * 65, "g" * 40, "", " " + "a" * 40}
    for i, value in enumerate(sorted(ok | bad)):
        try:
            db.run("SELECT pg_temp.pgmi_register_file(:p, '', :c, :g)", p=f"./c{i}.sql", c=value, g="b" * 64)
            accepted = True
        except pg8000.exceptions.DatabaseError as error:
            assert "pgmi_source_checksums" in str(error)
            accepted = False
        assert accepted is (value in ok), value


def test_in_memory_files_load_like_scanned_ones(db, tmp_path):
    scanned = make(tmp_path, {"m/a.sql": "SELECT 'A';  -- c\n"})
    held = P.Project(root=tmp_path, deploy_sql=tmp_path / "deploy.sql",
                     files=[P.ProjectFile.from_text("m/a.sql", "SELECT 'A';  -- c\n")])
    assert (held.files[0].path, held.files[0].checksum, held.files[0].pgmi_checksum, held.files[0].is_sql) == (
        scanned.files[0].path, scanned.files[0].checksum, scanned.files[0].pgmi_checksum, scanned.files[0].is_sql)
    prepare(db, held)
    assert db.run("SELECT path, content, checksum FROM pgmi_source_view") == [
        ["./m/a.sql", "SELECT 'A';  -- c\n", scanned.files[0].checksum]]
