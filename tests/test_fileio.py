"""atomic_write: the one rule for replacing a file others may read (reports, pgmi.yaml, .pgpass...)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from pgmilib.fileio import atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_text_and_bytes_with_the_requested_mode(tmp_path):
    atomic_write(tmp_path / "a", "héllo", mode=0o600)
    atomic_write(tmp_path / "b", b"\x00\x01")
    assert (tmp_path / "a").read_text(encoding="utf-8") == "héllo" and _mode(tmp_path / "a") == 0o600
    assert (tmp_path / "b").read_bytes() == b"\x00\x01" and _mode(tmp_path / "b") == 0o644


def test_keep_mode_keeps_an_existing_files_bits(tmp_path):
    target = tmp_path / "script.sql"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write(target, "new", keep_mode=True)
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.xml"
    target.write_text("complete old report")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "complete old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "cache"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(target, data)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads  # one whole payload, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
