"""The .pgpass writer and its path, escaping and host rules: a line pgmi writes is a line its own
look-up (and libpq's) matches, readable by nobody else."""

from __future__ import annotations

import os
import stat

import pytest

from pgmilib.conn.pgpass import escape_field, home_dir, match_host, pgpass_lookup, pgpass_path, save_password


def test_the_path_rule(tmp_path):
    assert pgpass_path({"PGPASSFILE": str(tmp_path / "pw"), "HOME": "/h"}) == tmp_path / "pw"
    assert pgpass_path({"HOME": str(tmp_path)}) == tmp_path / ".pgpass"
    if os.name == "posix":  # %APPDATA% is Windows' place only
        assert pgpass_path({"HOME": str(tmp_path), "APPDATA": "/appdata"}) == tmp_path / ".pgpass"
    assert home_dir({"HOME": "/home/x"}) == "/home/x"
    assert home_dir({}) == os.path.expanduser("~")


def test_escaping_and_the_host_rule():
    assert escape_field(r"a:b\c") == r"a\:b\\c"
    assert escape_field("plain") == "plain"
    assert match_host("") == "localhost"
    assert match_host("/var/run/postgresql") == "localhost"
    assert match_host("db.example.com") == "db.example.com"


def test_save_writes_one_private_line_that_the_lookup_matches_for_every_database(tmp_path):
    target = tmp_path / "new-dir" / "pgpass"
    env = {"PGPASSFILE": str(target)}
    assert save_password("/var/run/postgresql", 5433, "dep:loy", r"p:w\d", env) == target
    assert target.read_text(encoding="utf-8") == "localhost:5433:*:dep\\:loy:p\\:w\\\\d\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    for database in ("postgres", "app"):  # the maintenance database and the target
        assert pgpass_lookup("/tmp/other-socket-dir", 5433, database, "dep:loy", env) == r"p:w\d"
    assert pgpass_lookup("localhost", 5432, "app", "dep:loy", env) is None  # another port


def test_save_replaces_the_same_line_first_and_keeps_the_others(tmp_path):
    target = tmp_path / "pgpass"
    target.write_text("# mine\nother:5432:*:u:x\nlocalhost:5432:*:u:old\n", encoding="utf-8")
    target.chmod(0o600)
    env = {"PGPASSFILE": str(target)}
    save_password("localhost", 5432, "u", "new", env)
    assert target.read_text(encoding="utf-8") == "localhost:5432:*:u:new\n# mine\nother:5432:*:u:x\n"
    assert pgpass_lookup("localhost", 5432, "db", "u", env) == "new"


def test_a_save_into_an_unwritable_place_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(OSError):
        save_password("h", 1, "u", "p", {"PGPASSFILE": str(blocker / "pgpass")})
