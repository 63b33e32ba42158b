"""The fast load path (docs/PERFORMANCE.md): threaded scan, reader threads, one-pass rows, one-read files.

Each fast path must give exactly what the general path gives: the same rows, the same first
error in path order, the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re

import pytest
from projects import Sink, write_project

from pgmilib.deploy import session
from pgmilib.errors import PgmiError
from pgmilib.output import Output
from pgmilib.project import checksums as PC
from pgmilib.project import scan as P


@pytest.mark.parametrize("path", [
    "./a.sql", "./x/y/z.SQL", "./d/e.tar.gz", "./noext", "./a/b.", "./a/b.s_q", "./ü/ñ.sql", "./a/b.é",
    "./deep/1/2/3/4/5/f.pgsql", "./a/b.sql2", './q"uote/x.sql', "./tab\there.sql", "./a/b c .sql",
])
def test_one_pass_row_equals_the_general_row(path, monkeypatch):
    item = P.ProjectFile.from_text(path, "select 'ü';\n\ttab\\x\r\n")
    fast = session._source_row(item)
    monkeypatch.setattr(session, "_PLAIN_PATH", re.compile(r"(?s)."))  # force the general builder
    assert session._source_row(item) == fast


def test_scan_reports_the_first_bad_file_in_path_order(tmp_path):
    files: dict[str, str | bytes] = {f"f{i:03d}.sql": "SELECT 1;" for i in range(100)}
    files["f050.sql"] = b"SELECT \x00;"
    files["f090.sql"] = b"\xff\xfe"
    root = write_project(tmp_path, files)
    with pytest.raises(PgmiError, match=r"^file \./f050\.sql contains a NUL byte"):
        P.scan(root)


def test_held_budget_is_spent_in_path_order(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "SCAN_KEEP", 40)
    monkeypatch.setattr(P, "HELD_BYTES", 100)
    root = write_project(tmp_path, {f"f{i:02d}.sql": "x" * 30 for i in range(20)})
    held = [f.held is not None for f in P.scan(root).files]
    assert held == [True] * 3 + [False] * 17


def test_files_over_the_keep_size_are_left_to_the_loader(tmp_path):
    root = write_project(tmp_path, {"small.sql": "SELECT 1;", "big.sql": "SELECT 1;\n" * 20000})
    held = {f.path: f.held for f in P.scan(root).files}
    assert held == {"./big.sql": None, "./small.sql": b"SELECT 1;"}


def test_reader_threads_load_the_same_rows_as_held_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("PGMI_CACHE_DIR", "off")
    files = {f"s/f{i:03d}.sql": f"SELECT {i}; -- \u00e9\n\t\\" * (i % 9 + 1) for i in range(150)}
    root = write_project(tmp_path, files)
    held = Sink()
    session.load_files(held, P.scan(root))
    monkeypatch.setattr(P, "HELD_BYTES", 0)  # every file re-read by the reader threads
    monkeypatch.setattr(session, "READ_BATCH", 7)
    project = P.scan(root)
    assert all(f.held is None for f in project.files)
    reread = Sink()
    session.load_files(reread, project)
    assert reread.copied == held.copied
    assert held.copied[0].count(b"\n") == 150


def test_reader_threads_raise_a_changed_file_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("PGMI_CACHE_DIR", "off")
    monkeypatch.setattr(P, "HELD_BYTES", 0)
    monkeypatch.setattr(session, "READ_BATCH", 3)
    root = write_project(tmp_path, {f"f{i:02d}.sql": "SELECT 1;" for i in range(40)})
    project = P.scan(root)
    (tmp_path / "f20.sql").write_text("DROP TABLE important;")
    (tmp_path / "f30.sql").unlink()
    with pytest.raises(PgmiError, match=r"failed to load files: file \./f20\.sql changed"):
        session.load_files(Sink(), project)


def test_read_path_reads_a_file_that_grew_after_its_size_was_taken(tmp_path):
    target = tmp_path / "f.sql"
    target.write_bytes(b"x" * 5000)
    assert P.read_path(target, 10) == b"x" * 5000
    assert P.read_path(target, 5000) == b"x" * 5000
    assert P.read_path(target, 9000) == b"x" * 5000


def test_scan_keeps_the_raw_checksum_of_bom_files(tmp_path):
    root = write_project(tmp_path, {f"f{i:03d}.sql": b"\xef\xbb\xbfSELECT 1;" for i in range(80)})
    project = P.scan(root)
    assert {f.checksum for f in project.files} == {hashlib.sha256(b"SELECT 1;").hexdigest()}
    assert project.files[0].read_bytes() == b"SELECT 1;"


def test_prepare_with_reader_threads_against_the_server(db_conn, tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HELD_BYTES", 0)
    files = {f"m/f{i:03d}.sql": f"SELECT {i}; /* ü */" for i in range(120)}
    project = P.scan(write_project(tmp_path, files))
    session.prepare(db_conn, project, {}, out=Output(stderr=io.StringIO(), stdout=io.StringIO()))
    rows = db_conn.run("SELECT path, content, checksum, pgmi_checksum FROM pg_temp.pgmi_source_view ORDER BY path")
    assert [r[0] for r in rows] == sorted("./" + p for p in files)
    for path, content, checksum, normalized in rows:
        assert content == files[path[2:]]
        assert checksum == hashlib.sha256(content.encode()).hexdigest()
        assert normalized == PC.normalized_checksum(content)


@pytest.fixture
def db_conn(pg, fresh_db):
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    yield c
    c.close()


def test_os_read_flags_are_plain_read_only():
    assert P._READ_FLAGS & (os.O_WRONLY | os.O_RDWR) == 0
