"""The streaming load: a deploy into an existing database sends each file's row as the scan reads it.

deploy/pipeline.py `scan_into` and deploy/session.py `stream_sources`. What the user sees must be
what a scan followed by a load gives: the same rows in the session's tables, the same error and
exit code for a bad project (every problem listed, the project's problem first), and nothing of
the project in the database after a failure. The comparison runs each project twice: into an
existing database (streamed) and with the session opened after the scan (`open_early` off: the
plain scan, then the load).
"""

from __future__ import annotations

import json
import re

import pytest
from projects import query, run_cli, write_project

from pgmilib.deploy import pipeline, session
from pgmilib.errors import Exit
from pgmilib.project import scan as P

#: deploy.sql: what the session's tables hold, kept in real tables for the test to read.
KEEP = """CREATE TABLE kept_source AS SELECT * FROM pg_temp.pgmi_source_view;
CREATE TABLE kept_test AS SELECT * FROM pg_temp.pgmi_test_source_view;
CREATE TABLE kept_plan AS SELECT * FROM pg_temp.pgmi_plan_view;
"""

FILES: dict[str, str | bytes] = {
    "a.sql": "CREATE TABLE a (id int);\n",
    "a-b/x.sql": "SELECT 'a-b';\n",  # sorts before a/ by path
    "a/b.sql": "SELECT $q$ \\ \t tab $q$;\r\nSELECT 2;\r\n",
    "a/__test__/test_a.sql": "SELECT 1/1;\n",
    "a/__test__/_setup.sql": "SELECT 0;\n",
    "bom.sql": b"\xef\xbb\xbfSELECT 'bom';\n",
    "empty.sql": "",
    "café/миграция.sql": "-- коммент\nSELECT 'é';\n",
    "meta.sql": "/*\n<pgmi-meta id=\"7d0a0d2e-6d43-4f4b-9f3e-2b1c5d6e7f80\" idempotent=\"true\">"
                "<description>m</description><sortKeys><key>001/a</key></sortKeys></pgmi-meta>\n*/\nSELECT 3;\n",
    "notes.md": "# not SQL\n",
    **{f"many/m{i:03d}.sql": f"CREATE TABLE m{i} (id int); -- {'x' * (i * 37 % 300)}\n" for i in range(120)},
}


@pytest.fixture(autouse=True)
def no_cache(monkeypatch):
    monkeypatch.setenv("PGMI_CACHE_DIR", "off")


@pytest.fixture(autouse=True)
def stream_all(monkeypatch):
    """The tests' small projects stream too: the scan holds no bytes, so it streams at once."""
    monkeypatch.setattr(P, "HELD_BYTES", 0)


@pytest.fixture
def streamed(monkeypatch):
    """How many rows each streaming load built (one entry per stream_sources call)."""
    counts: list[int] = []
    inside: list[bool] = []
    real_stream, real_row = session.stream_sources, session._source_row

    def stream(*args, **kwargs):
        counts.append(0)
        inside.append(True)
        try:
            return real_stream(*args, **kwargs)
        finally:
            inside.pop()

    def row(*args, **kwargs):
        if inside:
            counts[-1] += 1
        return real_row(*args, **kwargs)

    monkeypatch.setattr(session, "stream_sources", stream)
    monkeypatch.setattr(session, "_source_row", row)
    return counts


def _kept(pg, db: str) -> dict[str, list]:
    return {table: query(pg, db, f"SELECT * FROM {table} ORDER BY 1, 2")
            for table in ("kept_source", "kept_test", "kept_plan")}


def _timeless(text: str) -> str:
    return re.sub(r"after \d+\.\d+s", "after Ns", text)


def _both_ways(argv: list[str], monkeypatch, capsys) -> tuple[tuple, tuple]:
    """(code, stdout, stderr) of the run as it is, then with the session opened after the scan."""
    first = run_cli(argv, capsys)
    with monkeypatch.context() as patch:
        patch.setattr(pipeline._Run, "open_early", lambda self: None)
        second = run_cli(argv, capsys)
    return first, second


def test_streamed_rows_equal_a_scan_then_a_load(tmp_path, pg, pg_env, create_database, streamed, monkeypatch,
                                                capsys):
    proj = write_project(tmp_path / "p", FILES, KEEP)
    streamed_db, plain_db = create_database(), create_database()
    code, _, err = run_cli(["deploy", str(proj), "-d", streamed_db], capsys)
    assert code == Exit.SUCCESS, err
    sources = len([p for p in FILES if "__test__" not in p])
    assert streamed == [sources]  # one streaming load, a row for each source file
    with monkeypatch.context() as patch:
        patch.setattr(pipeline._Run, "open_early", lambda self: None)
        code, _, err = run_cli(["deploy", str(proj), "-d", plain_db], capsys)
    assert code == Exit.SUCCESS, err
    assert streamed == [sources]  # not streamed the second time
    kept = _kept(pg, streamed_db)
    assert kept == _kept(pg, plain_db)
    assert len(kept["kept_source"]) == sources and len(kept["kept_test"]) == 2


def test_streamed_rows_on_a_latin1_database(tmp_path, pg, pg_env, create_database, streamed, monkeypatch, capsys):
    """The client encoding is switched for the streamed COPY as for the plain load: same bytes stored."""
    options = "TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
    streamed_db, plain_db = create_database(options), create_database(options)
    proj = write_project(tmp_path / "p", {"café.sql": "SELECT 'é';\n", "b.sql": "SELECT 'я';\n"}, KEEP)
    code, _, err = run_cli(["deploy", str(proj), "-d", streamed_db], capsys)
    assert code == Exit.SUCCESS, err
    assert streamed == [2]
    with monkeypatch.context() as patch:
        patch.setattr(pipeline._Run, "open_early", lambda self: None)
        code, _, err = run_cli(["deploy", str(proj), "-d", plain_db], capsys)
    assert code == Exit.SUCCESS, err
    sql = "SELECT convert_to(path, 'LATIN1'), convert_to(content, 'LATIN1'), size_bytes FROM kept_source ORDER BY 1"
    rows = query(pg, streamed_db, sql)
    assert rows == query(pg, plain_db, sql)
    assert rows[1][:2] == ["./café.sql".encode(), "SELECT 'é';\n".encode()]  # the files' UTF-8 bytes


@pytest.mark.parametrize("bad", ["zz_last.sql", "m_middle.sql", "0_first.sql"])
def test_a_problem_stops_the_rows_and_every_problem_is_reported(tmp_path, pg, pg_env, fresh_db, streamed, bad,
                                                                monkeypatch, capsys):
    files = {f"f{i:02d}.sql": f"SELECT {i};\n" for i in range(20)}
    files[bad] = b"SELECT '\xff';\n"  # not UTF-8
    files["zz_nul.sql"] = b"SELECT 1;\x00\n"  # a second problem, after every other file
    proj = write_project(tmp_path / "p", files, KEEP)
    (code, _, err), (plain_code, _, plain_err) = _both_ways(["deploy", str(proj), "-d", fresh_db], monkeypatch,
                                                           capsys)
    assert code == plain_code == Exit.GENERAL
    assert _timeless(err) == _timeless(plain_err)
    assert f"file ./{bad} is not valid UTF-8" in err and "./zz_nul.sql contains a NUL byte" in err
    assert "Traceback" not in err
    good_before = len([p for p in files if p < bad])
    # rows up to the first problem, none after it; a problem met before streaming began: no stream at all
    assert streamed == ([good_before] if good_before else [])
    # What the database holds: deploy.sql never ran, and no pgmi session is left.
    assert query(pg, fresh_db, "SELECT to_regclass('public.kept_source') IS NULL") == [[True]]
    assert query(pg, fresh_db, "SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                               "AND application_name LIKE 'pgmi%'", d=fresh_db) == [[0]]


@pytest.mark.parametrize("case", ["dunder", "duplicate path", "duplicate id"])
def test_errors_the_scan_raises_are_those_of_a_plain_scan(tmp_path, pg, pg_env, fresh_db, case, monkeypatch, capsys):
    files: dict[str, str | bytes] = {f"f{i:02d}.sql": f"SELECT {i};\n" for i in range(10)}
    meta = ('/*\n<pgmi-meta id="5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f" idempotent="true">'
            "<sortKeys><key>1</key></sortKeys></pgmi-meta>\n*/\nSELECT 1;\n")
    if case == "dunder":
        files["m/__data__/x.sql"] = "SELECT 1;\n"
    elif case == "duplicate path":
        files["d/x.sql"] = "SELECT 1;\n"
        files["d\\x.sql"] = "SELECT 2;\n"  # loads as ./d/x.sql too
    else:
        files["k1.sql"] = files["k2.sql"] = meta
    proj = write_project(tmp_path / "p", files, KEEP)
    argv = ["deploy", str(proj), "-d", fresh_db, "--json"]
    (code, out, err), (plain_code, plain_out, plain_err) = _both_ways(argv, monkeypatch, capsys)
    assert code == plain_code and code in (Exit.GENERAL, Exit.CONFIG)
    envelope, plain = json.loads(out), json.loads(plain_out)
    for result in (envelope, plain):
        result.pop("duration", None)
        result.pop("durationMs", None)
    assert envelope == plain and _timeless(err) == _timeless(plain_err)
    assert "session preparation failed" not in err
    assert query(pg, fresh_db, "SELECT to_regclass('public.kept_source') IS NULL") == [[True]]


def test_the_projects_problem_wins_over_a_failed_session_api(tmp_path, pg_env, fresh_db, monkeypatch, capsys):
    # The server refuses the API, whether it went out behind the login or after it.
    failure = "session preparation failed: the API could not be built"
    monkeypatch.setattr(session, "_batch", lambda names: ("SELECT 1/0;", failure))
    good = write_project(tmp_path / "good", {"a.sql": "SELECT 1;\n"}, KEEP)
    code, _, err = run_cli(["deploy", str(good), "-d", fresh_db], capsys)
    assert code == Exit.GENERAL and "the API could not be built" in err
    bad = write_project(tmp_path / "bad", {"a.sql": "SELECT 1;\n", "b.sql": b"\x00"}, KEEP)
    code, _, err = run_cli(["deploy", str(bad), "-d", fresh_db], capsys)
    assert code == Exit.GENERAL and "./b.sql contains a NUL byte" in err
    assert "the API could not be built" not in err


def test_a_row_the_server_refuses_names_its_file(tmp_path, pg_env, fresh_db, monkeypatch, capsys):
    real_row = session._source_row

    def row(item, *args, **kwargs):  # one row with a checksum the table's CHECK refuses
        built = real_row(item, *args, **kwargs)
        return built.replace(item.checksum.encode(), b"not-hex") if item.path == "./f07.sql" else built

    monkeypatch.setattr(session, "_source_row", row)
    proj = write_project(tmp_path / "p", {f"f{i:02d}.sql": f"SELECT {i};\n" for i in range(12)}, KEEP)
    code, _, err = run_cli(["deploy", str(proj), "-d", fresh_db], capsys)
    assert code == Exit.GENERAL
    assert "failed to load files: ./f07.sql: " in err and "pgmi_source_checksums" in err


def test_a_project_within_the_held_bytes_is_read_whole_first(tmp_path, pg, pg_env, create_database, streamed,
                                                            monkeypatch, capsys):
    """Streaming starts once the scan has read more than HELD_BYTES: the files read until then are
    the first rows; a project that fits is loaded after its scan, from the bytes it holds."""
    monkeypatch.setattr(P, "HELD_BYTES", 110)
    files = {f"f{i}.sql": f"SELECT {i}; -- {'x' * 20}\n" for i in range(4)}  # 34 bytes each
    small = write_project(tmp_path / "small", {k: files[k] for k in list(files)[:3]}, KEEP)  # 102 bytes
    big = write_project(tmp_path / "big", files, KEEP)  # 136 bytes
    small_db, big_db = create_database(), create_database()
    assert run_cli(["deploy", str(small), "-d", small_db], capsys)[0] == Exit.SUCCESS
    assert streamed == []
    assert run_cli(["deploy", str(big), "-d", big_db], capsys)[0] == Exit.SUCCESS
    assert streamed == [4]
    assert len(query(pg, small_db, "SELECT * FROM kept_source")) == 3
    assert len(query(pg, big_db, "SELECT * FROM kept_source")) == 4
