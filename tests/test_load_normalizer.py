"""The loader's helper process for normalized checksums (pgmilib/deploy/normalizer.py).

The helper only ever saves time: whatever it does (finishes, dies, reads a file that changed
after the scan), the rows loaded are the ones the loader alone would build from the validated
bytes, and the helper process is gone when the load ends.
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from projects import Sink, write_project

from pgmilib.deploy import normalizer, session
from pgmilib.errors import PgmiError
from pgmilib.output import Output
from pgmilib.project import checksums as PC
from pgmilib.project import scan as P

pytestmark = pytest.mark.skipif(not normalizer.available(), reason="the helper process exists on Linux only")


class Started(list):
    """The helpers forked during a test: {"pid", "given"} each. `finish_first`: the test waits
    for each helper to end before the load goes on, so what it gives does not depend on timing."""

    finish_first = False


@pytest.fixture
def helpers(monkeypatch):
    """Every helper forked during the test, with the values it gave; the helper starts at any size."""
    monkeypatch.setattr(normalizer, "MIN_BYTES", 0)
    monkeypatch.setenv("PGMI_CACHE_DIR", "off")
    started = Started()
    init, take = normalizer.Normalizer.__init__, normalizer.Normalizer.take

    def recording_init(self, files, **kwargs):
        init(self, files, **kwargs)
        started.append({"pid": self._pid, "given": 0})
        if self._pid and started.finish_first:
            os.waitpid(self._pid, 0)  # its records wait in the pipe (64 bytes a file, under the pipe's size)
            self._pid = 0

    def counting_take(self, item):
        value = take(self, item)
        if value is not None:
            started[-1]["given"] += 1
        return value

    monkeypatch.setattr(normalizer.Normalizer, "__init__", recording_init)
    monkeypatch.setattr(normalizer.Normalizer, "take", counting_take)
    return started


def _project(tmp_path, count=300):
    files = {f"m/f{i:03d}.sql": f"-- file {i}\nSELECT {i}, 'Ab' /* é */;\n\t\\" * (i % 7 + 1) for i in range(count)}
    return write_project(tmp_path, files), files


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.mark.parametrize("finish_first", [True, False])
def test_rows_with_the_helper_equal_the_loaders_own(tmp_path, monkeypatch, helpers, finish_first):
    root, files = _project(tmp_path)
    alone = Sink()
    with monkeypatch.context() as patch:
        patch.setattr(normalizer, "available", lambda: False)
        session.load_files(alone, P.scan(root))
    helpers.finish_first = finish_first
    with_helper = Sink()
    session.load_files(with_helper, P.scan(root))
    assert with_helper.copied == alone.copied
    assert [h["pid"] != 0 for h in helpers] == [False, True]  # forked only when available
    assert _reaped(helpers[1]["pid"])
    if finish_first:  # every value came from the helper: it had done them all before the first row
        assert helpers[1]["given"] == len(files)


def test_a_helper_that_dies_leaves_the_values_to_the_loader(tmp_path, monkeypatch, helpers):
    root, _ = _project(tmp_path)
    expected = Sink()
    session.load_files(expected, P.scan(root))

    def dying(jobs, max_file_size, fd):  # one record of other bytes (its raw digest matches no file), half of one, gone
        os.write(fd, b"\x01" * 96)
        os._exit(1)

    monkeypatch.setattr(normalizer, "_serve", dying)
    got = Sink()
    session.load_files(got, P.scan(root))
    assert got.copied == expected.copied
    assert helpers[-1]["pid"] and helpers[-1]["given"] == 0 and _reaped(helpers[-1]["pid"])


def test_a_file_changed_after_the_scan_gets_the_checksum_of_the_validated_bytes(tmp_path, helpers):
    """A file whose scanned bytes are held: the helper normalizes those bytes, not the disk's."""
    root, files = _project(tmp_path, count=40)
    project = P.scan(root)
    assert all(f.held is not None for f in project.files)
    (tmp_path / "m" / "f039.sql").write_text("DROP TABLE important;")
    helpers.finish_first = True  # every value is the helper's
    sink = Sink()
    session.load_files(sink, project)
    row = next(r for r in sink.copied[0].split(b"\n") if r.startswith(b"./m/f039.sql\t"))
    validated = files["m/f039.sql"].encode()
    assert PC.normalized_checksum(validated).encode() in row.split(b"\t")
    assert hashlib.sha256(validated).hexdigest().encode() in row.split(b"\t")
    assert helpers[-1]["given"] == len(files)


def test_a_changed_file_that_is_read_again_still_fails_the_load(tmp_path, monkeypatch, helpers):
    monkeypatch.setattr(P, "HELD_BYTES", 0)
    root, _ = _project(tmp_path, count=60)
    project = P.scan(root)
    (tmp_path / "m" / "f050.sql").write_text("DROP TABLE important;")
    with pytest.raises(PgmiError, match=r"failed to load files: file \./m/f050\.sql changed"):
        session.load_files(Sink(), project)
    assert helpers[-1]["pid"] and _reaped(helpers[-1]["pid"])


def test_small_projects_fork_nothing(tmp_path, monkeypatch, helpers):
    monkeypatch.setattr(normalizer, "MIN_BYTES", 1 << 30)
    root, _ = _project(tmp_path, count=5)
    session.load_files(Sink(), P.scan(root))
    assert [h["pid"] for h in helpers] == [0]


def test_prepare_with_the_helper_against_the_server(pg, fresh_db, tmp_path, monkeypatch, helpers):
    import pg8000.native

    monkeypatch.setattr(P, "HELD_BYTES", 0)
    root, files = _project(tmp_path, count=200)
    project = P.scan(root)
    conn = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        session.prepare(conn, project, {}, out=Output(stderr=io.StringIO(), stdout=io.StringIO()))
        rows = conn.run("SELECT path, content, checksum, pgmi_checksum FROM pg_temp.pgmi_source_view ORDER BY path")
    finally:
        conn.close()
    assert [r[0] for r in rows] == sorted("./" + p for p in files)
    for path, content, checksum, normalized in rows:
        assert content == files[path[2:]]
        assert checksum == hashlib.sha256(content.encode()).hexdigest()
        assert normalized == PC.normalized_checksum(content)
    assert helpers[-1]["pid"] and _reaped(helpers[-1]["pid"])


# ---- the start during a deploy's scan (Normalizer.for_walk) ----------------------------------

_KEEP_ROWS = "CREATE TABLE loaded AS SELECT path, content, checksum, pgmi_checksum FROM pg_temp.pgmi_source_view;\n"


def _deploy(pg, db: str, root, cache_dir=None):
    from pgmilib.deploy import ConnectionFlags, DeployRequest, deploy

    environ = {"HOME": "/nonexistent-home", "USER": "tester", **pg.env()}
    return deploy(DeployRequest(project_path=str(root), connection=ConnectionFlags(database=db), environ=environ,
                                cache_dir=cache_dir),
                  Output(json_mode=True, stdout=io.StringIO(), stderr=io.StringIO()))


def _loaded(pg, db: str) -> list[tuple]:
    conn = pg8000_connect(pg, db)
    try:
        return [tuple(r) for r in conn.run("SELECT path, content, checksum, pgmi_checksum FROM loaded ORDER BY path")]
    finally:
        conn.close()


def pg8000_connect(pg, db: str):
    import pg8000.native

    return pg8000.native.Connection(**pg.conn_kwargs(db))


def _exact(rows: list[tuple]) -> None:
    for _path, content, checksum, normalized in rows:
        assert checksum == hashlib.sha256(content.encode()).hexdigest()
        assert normalized == PC.normalized_checksum(content)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "scanned-then-loaded"])
def test_a_deploy_starts_the_helper_before_the_scan_reads_a_file(pg, fresh_db, tmp_path, monkeypatch, helpers,
                                                                 stream):
    monkeypatch.setattr(normalizer, "MIN_FILES", 10)
    monkeypatch.setattr(P, "HELD_BYTES", 0 if stream else P.HELD_BYTES)  # 0: streamed from the first file
    files = {f"m/f{i:02d}.sql": f"SELECT {i}, 'Ab' /* é */;\n" for i in range(40)}
    files["m/__test__/test_a.sql"] = "SELECT 1;"  # a test file is not normalized: no job for it
    root = write_project(tmp_path / "p", files, _KEEP_ROWS)
    started_at_first_read: list[int] = []
    read = P._read_file

    def reading(*args, **kwargs):
        if not started_at_first_read:
            started_at_first_read.append(len(helpers))
        return read(*args, **kwargs)

    monkeypatch.setattr(P, "_read_file", reading)
    helpers.finish_first = True  # every value is the helper's, whatever the timing
    result = _deploy(pg, fresh_db, root)
    assert result.ok, result.error_text
    assert started_at_first_read == [1] and helpers[0]["pid"]  # forked once the files were listed
    assert len(helpers) == 1  # the load used it: no second helper
    assert helpers[0]["given"] == 40
    rows = _loaded(pg, fresh_db)
    assert [r[0] for r in rows] == sorted("./" + p for p in files if "__test__" not in p)
    _exact(rows)
    assert _reaped(helpers[0]["pid"])


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "scanned-then-loaded"])
def test_with_every_value_cached_the_helper_computes_none(pg, create_database, tmp_path, monkeypatch, helpers,
                                                          stream):
    """Streamed, the helper sends the cache's values; loaded after the scan, it is stopped unused."""
    monkeypatch.setattr(normalizer, "MIN_FILES", 10)
    monkeypatch.setattr(P, "HELD_BYTES", 0 if stream else P.HELD_BYTES)  # 0: streamed from the first file
    root = write_project(tmp_path / "p", {f"f{i:02d}.sql": f"select {i};" for i in range(30)}, _KEEP_ROWS)
    cache = tmp_path / "cache"
    first, second = create_database(), create_database()
    assert _deploy(pg, first, root, cache).ok

    def never(data):  # a helper that normalized anything would end its stream here
        raise AssertionError("normalized a cached file")

    monkeypatch.setattr(normalizer, "normalized_digest", never)
    helpers.finish_first = True
    result = _deploy(pg, second, root, cache)
    assert result.ok, result.error_text
    forked = [h for h in helpers if h["pid"]]
    assert len(forked) == 2  # one per deploy's scan, none at the load
    assert forked[1]["given"] == (30 if stream else 0) and _reaped(forked[1]["pid"])
    assert _loaded(pg, second) == _loaded(pg, first)
    _exact(_loaded(pg, second))


def test_a_scan_that_fails_after_the_start_stops_the_helper(pg, fresh_db, tmp_path, monkeypatch, helpers):
    monkeypatch.setattr(normalizer, "MIN_FILES", 10)
    files: dict[str, str | bytes] = {f"f{i:02d}.sql": f"select {i};" for i in range(30)}
    files["zz.sql"] = b"select \x00;"
    root = write_project(tmp_path / "p", files, _KEEP_ROWS)
    result = _deploy(pg, fresh_db, root)
    assert result.exit_code == 1 and "zz.sql contains a NUL byte" in result.error_text
    assert helpers[0]["pid"] and _reaped(helpers[0]["pid"])
    conn = pg8000_connect(pg, fresh_db)
    try:  # deploy.sql never ran
        assert conn.run("SELECT to_regclass('public.loaded') IS NULL") == [[True]]
    finally:
        conn.close()


def test_the_walk_lists_in_path_order_and_the_helper_works_in_it(tmp_path, monkeypatch):
    """A directory sorts as its name and a "/": a-b and a.sql come before the files of a/."""
    monkeypatch.setattr(normalizer, "MIN_FILES", 0)
    monkeypatch.setattr(normalizer, "available", lambda: False)  # the order only: nothing forked
    root = write_project(tmp_path, {"a/x.sql": "1", "a-b/y.sql": "2", "a.sql": "3", "a/__test__/t.sql": "4",
                                    "a0.sql": "5"})
    listed: list = []
    project = P.scan(root, on_listed=lambda steps: listed.extend(steps.entries))
    assert [rel for rel, _ in listed] == ["a-b/y.sql", "a.sql", "a/__test__/t.sql", "a/x.sql", "a0.sql"]
    assert [f.path for f in project.files] == ["./" + rel for rel, _ in listed]
    helper = normalizer.Normalizer.for_walk(listed)
    assert list(helper._position) == [f.source for f in project.source_files()]


def test_small_projects_start_no_helper_during_the_scan(monkeypatch):
    monkeypatch.setattr(normalizer, "MIN_FILES", 3)
    assert not normalizer.Normalizer.for_walk([("a.sql", "/x/a.sql"), ("b.sql", "/x/b.sql")])._position
    assert normalizer.Normalizer.for_walk([("a.sql", "/x/a"), ("b.sql", "/x/b"), ("c.sql", "/x/c")])._position


def test_one_cpu_forks_no_helper(monkeypatch):
    monkeypatch.setattr(normalizer.os, "sched_getaffinity", lambda pid: {0})
    assert not normalizer.available()
    monkeypatch.setattr(normalizer.os, "sched_getaffinity", lambda pid: {0, 1})
    assert normalizer.available()


def test_links_fifos_and_oversized_files_get_no_value_and_block_nothing(tmp_path):
    import time

    text = b"SELECT 'Ab';"
    (tmp_path / "ok.sql").write_bytes(text)
    (tmp_path / "big.sql").write_bytes(text + b" " * 100)
    (tmp_path / "link.sql").symlink_to(tmp_path / "ok.sql")
    os.mkfifo(tmp_path / "fifo.sql")  # opening it would wait for a writer forever
    names = ["big.sql", "fifo.sql", "link.sql", "ok.sql"]
    helper = normalizer.Normalizer([(str(tmp_path / n), None) for n in names], max_file_size=50)
    with helper:
        deadline = time.monotonic() + 20
        while helper._pid and os.waitpid(helper._pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "the helper is stuck"
            time.sleep(0.01)
        helper._pid = 0
        digest = hashlib.sha256(text).hexdigest()
        values = [helper.take(P.ProjectFile(path="./" + n, checksum=digest, is_sql=True, is_test=False,
                                            source=str(tmp_path / n))) for n in names]
    assert values == [None, None, None, PC.normalized_checksum(text)]
