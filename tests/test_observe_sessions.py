"""pgmilib.observe.sessions: one description of another backend, on a real server."""

from __future__ import annotations

import pg8000.native

from pgmilib.observe.sessions import SessionInfo, describe, fetch


def test_fetch_describes_an_idle_in_transaction_session(pg):
    other = pg8000.native.Connection(**pg.conn_kwargs("postgres"), application_name="blocker-app")
    try:
        other.run("BEGIN")
        other.run("SELECT 1 AS\n  first_line_only")
        pid = other.run("SELECT pg_backend_pid()")[0][0]
        watcher = pg8000.native.Connection(**pg.conn_kwargs("postgres"))
        try:
            [info] = fetch(watcher, [pid, 2_000_000_000])  # a pid that does not exist is left out
        finally:
            watcher.close()
    finally:
        other.close()
    assert info.pid == pid
    assert info.application == "blocker-app"
    assert info.state == "idle in transaction"
    assert info.query == "SELECT pg_backend_pid()"
    assert info.seconds is not None and info.seconds >= 0
    text = describe(info)
    assert text.startswith(f"pid {pid} (blocker-app, idle in transaction for ")
    assert text.endswith(": SELECT pg_backend_pid())")


def test_fetch_of_no_pids_asks_nothing():
    assert fetch(object(), []) == []  # no connection is touched


def test_describe_cuts_long_queries_and_escapes_control_characters():
    info = SessionInfo(pid=7, application="app\x1b]0;title\x07", state="active", seconds=720.4,
                       query="UPDATE orders SET " + "x = 1, " * 40)
    text = describe(info)
    assert "\x1b" not in text and "\x07" not in text
    assert "active for 12m0s" in text
    assert text.endswith(" ...)")
    assert len(text) < 120


def test_describe_without_stats_privilege_shows_the_pid_only():
    assert describe(SessionInfo(pid=42)) == "pid 42"
