"""`pgmi deploy` blocked by another session's idle-in-transaction lock, as a user sees it.

The real CLI in a subprocess with pgmi's own thresholds: in a log (stderr a pipe) a line
names the blocker's pid and state after 5 s; on a real pseudo-terminal the status line
shows it at once. Then the blocker is terminated, the deploy finishes normally, and the
database holds what it deployed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pg8000.native
import pytest
from projects import query, write_project

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def held_lock(pg, fresh_db):
    """(pid, connection) of a session idle in transaction holding a lock on table `orders` of fresh_db."""
    query(pg, fresh_db, "CREATE TABLE orders (id int)")
    conn = pg8000.native.Connection(**pg.conn_kwargs(fresh_db), application_name="forgotten-psql")
    pid = conn.run("SELECT pg_backend_pid()")[0][0]
    conn.run("BEGIN")
    conn.run("UPDATE orders SET id = id WHERE false")
    yield pid
    with contextlib.suppress(Exception):  # terminated by the test
        conn.close()


def _env(pg, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") or k.startswith(("PGMI_PG_", "PGMI_CLUSTER_"))}
    env.pop("CI", None)
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1", **extra)
    return env


def _project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", {}, "ALTER TABLE orders ADD COLUMN shipped boolean;\n")


def _column_exists(pg, db: str) -> bool:
    return query(pg, db, "SELECT count(*) FROM information_schema.columns "
                         "WHERE table_name = 'orders' AND column_name = 'shipped'") == [[1]]


def _read_until(fd: int, proc: subprocess.Popen, pattern: re.Pattern[bytes], timeout: float) -> bytes:
    """Bytes read from `fd` until `pattern` matches (or the process ends, or `timeout`)."""
    seen = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pattern.search(seen):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    return seen


def test_off_a_terminal_a_line_names_the_blocker_within_seconds(pg, fresh_db, tmp_path, held_lock):
    pid = held_lock
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(_project(tmp_path)),
                             "-d", fresh_db, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(pg))
    try:
        started = time.monotonic()
        seen = _read_until(proc.stderr.fileno(), proc, re.compile(rb"pid %d [^\n]*\n" % pid), 30)
        waited = time.monotonic() - started
        query(pg, "postgres", "SELECT pg_terminate_backend(:pid)", pid=pid)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (seen + err).decode()
    line = next(line for line in text.splitlines() if f"pid {pid} " in line)
    assert line.startswith("pgmi: deploy.sql: waiting for a lock (AccessExclusiveLock on orders) held by "
                           f"pid {pid} (user ")
    assert "forgotten-psql, idle in transaction for " in line and ": UPDATE orders SET id = id WHERE false)" in line
    assert waited > 5  # not before the wait has lasted 5 s ...
    assert re.search(r"\(for [5-9]s so far\)$", line), line  # ... and said within 5-10 s of waiting
    assert "\x1b" not in text  # no status line in a log
    assert proc.returncode == 0, text
    assert out.decode().lstrip().startswith("{") and '"status": "success"' in out.decode()  # stdout: JSON only
    assert _column_exists(pg, fresh_db)


def test_on_a_terminal_the_status_line_shows_the_blocker(pg, fresh_db, tmp_path, held_lock):
    pid = held_lock
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # room for the whole line
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(_project(tmp_path)),
                             "-d", fresh_db], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary,
                            env=_env(pg, NO_COLOR="1"), close_fds=True)
    os.close(secondary)
    try:
        seen = _read_until(primary, proc, re.compile(rb"waiting for a lock held by pid %d \([^)]*\)" % pid), 30)
        query(pg, "postgres", "SELECT pg_terminate_backend(:pid)", pid=pid)
        rest = _read_until(primary, proc, re.compile(rb"files loaded"), 60)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    status = re.search(rb"\r\x1b\[K([^\r\n]*waiting for a lock held by pid %d[^\r\n]*)" % pid, seen)
    assert status, seen
    line = status.group(1).decode()
    assert re.match(r"\d+s \| deploy\.sql \| waiting for a lock held by pid \d+ \(forgotten-psql, "
                    r"idle in transaction for \d+s: UPDATE orders SET id = id WHERE false\)$", line), line
    assert proc.returncode == 0, seen + rest
    # The status line was erased before the summary: the summary starts a clean line.
    assert b"\r\x1b[Kok " + fresh_db.encode() + b": 0 files loaded" in rest, rest
    assert b"pgmi: deploy.sql: waiting for a lock" not in seen + rest  # no log lines on a terminal
    assert _column_exists(pg, fresh_db)
