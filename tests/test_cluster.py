"""The throwaway cluster (pgmilib/server/): lifecycle, template cache, binaries, errors.

These start their own small clusters beside the session one, so they need local server
binaries; with only PGMI_TEST_DSN or docker they are skipped (the rest of the suite is not).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from pgmilib.server import account as account_mod
from pgmilib.server import template_cache
from pgmilib.server.cluster import Cluster, ClusterError
from pgmilib.server.discovery import find_pg_bin

pytestmark = pytest.mark.skipif(find_pg_bin() is None, reason="no local PostgreSQL server binaries")


@pytest.fixture
def base_dir():
    """A private parent directory (template cache + clusters), readable by the server account."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix="pgmi-test-cluster-", dir=parent)
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _connect(c: Cluster, database: str = "postgres"):
    import pg8000.native

    return pg8000.native.Connection(**c.conn_kwargs(database))


def _templates(parent: str) -> list[str]:
    return sorted(p for p in os.listdir(parent) if p.startswith("pgmi-template-") and ".tmp-" not in p)


def test_start_settings_and_stop():
    c = Cluster(settings={"application_name": "it's pgmi"}).start()  # default place: shares the cached template
    try:
        directory = c.dir
        assert Path(directory, f".s.PGSQL.{c.port}").exists()  # unix socket inside the cluster dir
        conn = _connect(c)
        shown = {name: conn.run(f"SHOW {name}")[0][0] for name in (
            "max_locks_per_transaction", "fsync", "listen_addresses", "application_name", "server_encoding")}
        conn.close()
        assert shown == {"max_locks_per_transaction": "1024", "fsync": "off", "listen_addresses": "",
                         "application_name": "it's pgmi", "server_encoding": "UTF8"}
        assert c.dsn("app") == f"host={directory} port={c.port} user=postgres dbname=app sslmode=disable"
        assert c.env()["PGHOST"] == directory
    finally:
        c.stop()
    assert c.dir == "" and not os.path.exists(directory)
    import pg8000.exceptions

    with pytest.raises(pg8000.exceptions.InterfaceError):  # the server is gone with its socket
        _connect(Cluster(dir=directory, port=c.port))
    c.stop()  # idempotent


def test_template_is_built_once_and_reused(base_dir):
    with Cluster(base_dir=base_dir) as first:
        made = _templates(base_dir)
        assert len(made) == 1
        before = os.stat(os.path.join(base_dir, made[0]))
        with Cluster(base_dir=base_dir) as second:  # runs beside the first: separate data
            a, b = _connect(first), _connect(second)
            a.run("CREATE TABLE only_in_first (id int)")
            assert b.run("SELECT count(*) FROM pg_class WHERE relname = 'only_in_first'")[0][0] == 0
            a.close()
            b.close()
    after = os.stat(os.path.join(base_dir, made[0]))
    assert _templates(base_dir) == made
    assert after.st_ino == before.st_ino  # reused, not rebuilt
    assert after.st_mtime_ns >= before.st_mtime_ns  # marked as used (least recently used is evicted first)
    assert not [p for p in os.listdir(base_dir) if p.startswith("pgmi-pg-")]  # clusters cleaned up


def test_concurrent_first_starts_publish_one_template(base_dir):
    results: list[object] = []

    def start_one() -> None:
        try:
            with Cluster(base_dir=base_dir) as c:
                conn = _connect(c)
                results.append(conn.run("SELECT 1")[0][0])
                conn.close()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results.append(error)

    threads = [threading.Thread(target=start_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [1, 1, 1]
    assert len(_templates(base_dir)) == 1
    assert not [p for p in os.listdir(base_dir) if ".tmp-" in p]  # losers cleaned up their staging dirs


def test_untrusted_template_is_not_used(base_dir):
    with Cluster(base_dir=base_dir):
        pass
    template = os.path.join(base_dir, _templates(base_dir)[0])
    owner = os.stat(template).st_uid
    assert template_cache.trustworthy(template, owner)
    os.chmod(template, 0o777)
    assert not template_cache.trustworthy(template, owner)
    assert not template_cache.trustworthy(template, owner + 1)
    with Cluster(base_dir=base_dir) as c:  # falls back to initdb, still works
        conn = _connect(c)
        assert conn.run("SELECT 2")[0][0] == 2
        conn.close()


def test_a_template_removed_after_its_lookup_falls_back_to_initdb(base_dir, monkeypatch):
    """Another run (the suite on a second interpreter) evicts the template between lookup and copy."""
    with Cluster(base_dir=base_dir):
        pass  # publishes the template
    real_template = Cluster._template

    def looked_up_then_evicted(self, account, parent):
        found = real_template(self, account, parent)
        assert found
        shutil.rmtree(found)  # as an older pgmi evicted, or `make clean` in another checkout
        return found

    monkeypatch.setattr(Cluster, "_template", looked_up_then_evicted)
    with Cluster(base_dir=base_dir) as c:  # initdb instead of the copy: slower, still works
        conn = _connect(c)
        assert conn.run("SELECT 3")[0][0] == 3
        conn.close()
    assert _templates(base_dir) == []  # nothing half-copied published in its place


def test_without_template_and_with_tcp(base_dir):
    with Cluster(base_dir=base_dir, use_template=False, listen_tcp=True) as c:
        assert _templates(base_dir) == []
        import pg8000.native

        conn = pg8000.native.Connection(user=c.user, host="127.0.0.1", port=c.port, ssl_context=False)
        assert conn.run("SHOW listen_addresses")[0][0] == "127.0.0.1"
        conn.close()


def test_stop_survives_a_killed_server():
    c = Cluster().start()
    directory = c.dir
    pid = int(Path(c.data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
    os.kill(pid, signal.SIGKILL)
    c.stop()
    assert not os.path.exists(directory)


def test_find_pg_bin_and_override(tmp_path, monkeypatch):
    found = find_pg_bin()
    assert found and all(os.access(os.path.join(found, t), os.X_OK) for t in ("initdb", "pg_ctl", "postgres"))
    monkeypatch.setenv("PGMI_PG_BIN", str(tmp_path))
    assert find_pg_bin() is None  # an explicit choice is never silently replaced
    monkeypatch.setenv("PGMI_PG_BIN", found)
    assert find_pg_bin() == found


def test_missing_binaries_give_a_clear_error(tmp_path, base_dir):
    (tmp_path / "initdb").write_text("")
    c = Cluster(base_dir=base_dir, pg_bin=str(tmp_path))
    with pytest.raises(ClusterError) as caught:
        c.start()
    assert f"PostgreSQL binaries missing in {tmp_path}: initdb, pg_ctl, postgres" in str(caught.value)
    assert c.dir == "" and os.listdir(base_dir) == []


def test_failed_start_cleans_up_and_reports_the_log(base_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        c = Cluster(base_dir=base_dir, listen_tcp=True, port=port)  # explicit port: no retry on another
        with pytest.raises(ClusterError) as caught:
            c.start()
    assert "pg_ctl start failed" in str(caught.value)
    assert "could not" in str(caught.value).lower()  # the server's own reason, from its log
    assert c.dir == "" and not [p for p in os.listdir(base_dir) if p.startswith("pgmi-pg-")]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root needs a server account")
def test_root_without_server_account_says_so(monkeypatch, base_dir):
    monkeypatch.setattr(account_mod, "_SERVER_USER", "pgmi_no_such_user")
    monkeypatch.setattr(account_mod, "_FALLBACK_USER", "pgmi_no_such_user_either")
    with pytest.raises(ClusterError, match="no 'pgmi_no_such_user' \\(nor 'pgmi_no_such_user_either'\\) system user"):
        Cluster(base_dir=base_dir).start()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root needs a server account")
def test_root_without_a_postgres_user_runs_the_server_as_nobody(monkeypatch, base_dir):
    import pwd

    monkeypatch.setattr(account_mod, "_SERVER_USER", "pgmi_no_such_user")
    with Cluster(base_dir=base_dir) as c:
        assert _connect(c).run("SELECT 1") == [[1]]
        assert os.stat(c.data_dir).st_uid == pwd.getpwnam("nobody").pw_uid
        assert account_mod.server_user_name((os.stat(c.data_dir).st_uid, 0)) == "nobody"


def test_a_server_install_the_server_account_cannot_reach_is_staged_with_its_library_layout(tmp_path):
    """As root the server runs as another account: an installation under a closed directory
    (a pyenv Python's site-packages under /root) is copied once to where that account can reach,
    keeping the wheel's relative layout (bin/../../../<package>.libs holds its shared libraries)."""
    import pwd


    nobody = pwd.getpwnam("nobody")
    closed = tmp_path / "closed"
    install = closed / "site-packages" / "embedded_pkg" / "pginstall"
    (install / "bin").mkdir(parents=True)
    (install / "bin" / "postgres").write_bytes(b"#!/bin/sh\n" + os.urandom(64))
    (closed / "site-packages" / "embedded_pkg.libs").mkdir()
    (closed / "site-packages" / "embedded_pkg.libs" / "libpq.so").write_bytes(b"lib")
    closed.chmod(0o700)
    account = (nobody.pw_uid, nobody.pw_gid)
    assert not account_mod.reachable(str(install / "bin"), account)
    staged = account_mod.stage_for(str(install / "bin"), account)
    try:
        assert staged is not None and account_mod.reachable(staged, account)
        assert (Path(staged) / "postgres").read_bytes() == (install / "bin" / "postgres").read_bytes()
        assert (Path(staged).parent.parent.parent / "embedded_pkg.libs" / "libpq.so").read_bytes() == b"lib"
        assert account_mod.stage_for(str(install / "bin"), account) == staged  # reused, not copied again
    finally:
        if staged:
            shutil.rmtree(Path(staged).parent.parent.parent, ignore_errors=True)
