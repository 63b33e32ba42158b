"""The per-database deploy lock: take it (optionally waiting), name who holds it, release it.

A session advisory lock keyed by the database name (sql/deploy_lock.sql), so two deploys
into one database never interleave and different databases never block each other. The
wait polls `pg_try_advisory_lock` instead of blocking in `pg_advisory_lock`, so it stays
bounded by `--lock-wait` and interruptible by `--timeout` and Ctrl-C (the run's watchdog).
"""

from __future__ import annotations

import time
from contextlib import suppress

from pgmilib.config import format_duration
from pgmilib.conn.backoff import Backoff, pause
from pgmilib.errors import ConcurrentDeploy, go_quote
from pgmilib.output import Output
from pgmilib.resources import read_sql

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

    from pgmilib.conn.wire import Session
    from pgmilib.deploy.watchdog import Watchdog

_RELEASE_BUDGET = 5.0  # seconds a clean-up may take before the socket is simply closed


def acquire(conn: Session, wait_seconds: float, out: Output, watchdog: Watchdog | None = None) -> None:
    """Take this database's deploy lock, waiting up to `wait_seconds`; ConcurrentDeploy (15) if busy.

    The wait ends early when the run's deadline passes or it is cancelled (the watchdog's
    `check()` raises then, giving exit 16 / 130 instead of 15).
    """
    key, acquired = conn.run(read_sql("deploy_lock.sql"))[0]
    if acquired:
        return
    database = conn.run("SELECT current_database()")[0][0]
    if wait_seconds > 0:
        out.info(f"Waiting up to {format_duration(wait_seconds)} for another deployment of {go_quote(database)}")
        if _poll(lambda: conn.run("SELECT pg_try_advisory_lock(CAST(:k AS bigint))", k=key)[0][0],
                 wait_seconds, watchdog):
            out.verbose(f"Acquired the deploy lock of {go_quote(database)}")
            return
    holders = _holders(conn, key)
    message = f"concurrent deployment in progress: another pgmi deployment is already running against {go_quote(database)}"
    if holders:
        message += " (held by " + "; ".join(_describe(h) for h in holders) + ")"
    raise ConcurrentDeploy(message, details={"lockHolders": holders} if holders else None)


def wait_for_no_deploy(admin: Session, database: str, wait_seconds: float, out: Output,
                       watchdog: Watchdog | None = None) -> None:
    """From a maintenance connection: wait up to `wait_seconds` until no pgmi deploy holds the
    deploy lock of `database`; ConcurrentDeploy (15) if one still does.

    `--overwrite` calls this before terminating sessions and dropping the database, so it
    never kills a running deploy halfway (advisory locks are per database: sql/deploy_lock_held.sql).
    """
    def held() -> list[int]:
        return [row[0] for row in admin.run(read_sql("deploy_lock_held.sql"), database=database)]

    pids = held()
    if pids and wait_seconds > 0:
        out.info(f"Waiting up to {format_duration(wait_seconds)} for another deployment of {go_quote(database)}")
        if _poll(lambda: not held(), wait_seconds, watchdog):
            pids = []
        else:
            pids = held()
    if pids:
        raise ConcurrentDeploy(
            f"concurrent deployment in progress: another pgmi deployment is running against {go_quote(database)} "
            f"(pid {', '.join(map(str, pids))}); --overwrite will not drop it underneath",
            details={"lockHolders": [{"pid": pid} for pid in pids]})


#: The pauses between two looks at the lock: 0.2 s growing by a quarter each time, at most 2 s.
POLL_BACKOFF = Backoff(first=0.2, factor=1.25, cap=2.0)


def _poll(done: Any, wait_seconds: float, watchdog: Any) -> bool:
    """Call `done()` with growing pauses (`POLL_BACKOFF`) until it is true or `wait_seconds` pass.

    The run's deadline caps the wait, and a cancel or an expired deadline ends a pause at once
    and raises from `watchdog.check()` (exit 130 / 16) instead of ending as a busy lock (15).
    """
    until = time.monotonic() + wait_seconds
    deadline = watchdog.deadline if watchdog is not None else None
    index = 0
    while True:
        if watchdog is not None:
            watchdog.check()
        remaining = until - time.monotonic()
        if deadline is not None:
            remaining = deadline.cap(remaining) or 0.0
        if remaining <= 0:
            return False
        pause(min(POLL_BACKOFF.delay(index), remaining), deadline)
        index += 1
        if watchdog is not None:
            watchdog.check()
        if done():
            return True


def _holders(conn: Session, key: int) -> list[dict[str, Any]]:
    from pgmilib.conn.wire import DRIVER_ERRORS

    try:
        rows = conn.run(read_sql("lock_holder.sql"), lock_key=key)
    except DRIVER_ERRORS:  # the report is a courtesy; never let it hide the real error
        return []
    keys = ("pid", "applicationName", "client", "user", "since", "heldSeconds")
    return [dict(zip(keys, row)) for row in rows]


def _describe(holder: dict[str, Any]) -> str:
    parts = [f"pid {holder['pid']}"]
    if holder.get("applicationName"):
        parts.append(f"application {go_quote(holder['applicationName'])}")
    if holder.get("user"):
        parts.append(f"user {go_quote(holder['user'])}")
    if holder.get("client"):
        parts.append(f"client {holder['client']}")
    if holder.get("since"):
        held = holder.get("heldSeconds")
        parts.append(f"connected since {holder['since']}"
                     + (f", {format_duration(round(held))} ago" if held is not None else ""))
    return ", ".join(parts)


def release(conn: Session) -> None:
    """End a session cleanly within 5 s, whatever state it is in; never raises.

    ROLLBACK only when a transaction is open (a bare ROLLBACK on an idle session emits a
    warning the user would see), then drop every advisory lock explicitly -- the server
    frees session locks only once it has processed the disconnect, and an immediate
    redeploy must not be refused as concurrent -- then close (sql/session_end.sql).
    """
    if conn is None:
        return
    from pgmilib.conn.wire import DRIVER_ERRORS, roll_back_open

    until = time.monotonic() + _RELEASE_BUDGET
    try:
        # A plain pg8000 connection (tests, API callers) has neither a socket timeout nor a
        # transaction status: still unlock, or an immediate redeploy races the server's
        # processing of the disconnect and is refused as concurrent.
        set_timeout = getattr(conn, "set_socket_timeout", lambda seconds: None)
        with suppress(*DRIVER_ERRORS, AttributeError):
            set_timeout(max(0.05, until - time.monotonic()))
            roll_back_open(conn)
            set_timeout(max(0.05, until - time.monotonic()))
            conn.run(read_sql("session_end.sql"))
    finally:
        close_quietly(conn)


def close_quietly(conn: Session) -> None:
    """Close a session; a broken socket must not hide the error that brought us here."""
    from pgmilib.conn.wire import DRIVER_ERRORS

    with suppress(*DRIVER_ERRORS, AttributeError):
        conn.close()
