"""One look at a running deploy from the watcher's connection: `Probe(conn, pid).read() -> ServerView`.

What the server says about the deploy's backend: its state and wait (pg_stat_activity), the
sessions that block it (pg_blocking_pids, described by `sessions.fetch`) and the rows of the
pg_stat_progress_* views for it. The SQL is sql/observe_watch.sql; each look is one to three
tiny statements.
"""

from __future__ import annotations

from typing import Any

from pgmilib import records
from pgmilib.observe import sessions
from pgmilib.observe.sessions import SessionInfo
from pgmilib.resources import read_sql_section

_SQL = "observe_watch.sql"
#: The progress views and the first server version that has each (sql/observe_watch.sql).
PROGRESS_VIEWS = (("progress_create_index", 120000), ("progress_copy", 140000), ("progress_cluster", 120000),
                  ("progress_vacuum", 110000), ("progress_analyze", 130000))


@records.record(frozen=True)
class Progress:
    """One row of a pg_stat_progress_* view: `done` of `total` `unit` (blocks, tuples, bytes)."""

    command: str
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    unit: str = "blocks"
    relation: str | None = None
    tuples: int | None = None

    @property
    def fraction(self) -> float | None:
        """done/total between 0 and 1, or None when the server does not know the total."""
        if not self.total or self.done is None:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@records.record(frozen=True)
class ServerView:
    """The deploy's backend as the server shows it at one moment."""

    state: str | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    query_seconds: float | None = None  # how long the current statement (the unit) has run
    blockers: tuple[SessionInfo, ...] = ()
    lock_mode: str | None = None  # the lock it waits for (e.g. AccessExclusiveLock) ...
    lock_type: str | None = None  # ... of this kind (relation, transactionid, advisory ...)
    lock_relation: str | None = None  # ... on this relation, when it is one
    lock_wait_seconds: float | None = None  # the server's own count (PostgreSQL 14+), else None
    progress: tuple[Progress, ...] = ()

    @property
    def waiting_for_lock(self) -> bool:
        return self.wait_event_type == "Lock"


class Probe:
    """Reads `ServerView`s of backend `pid` on the watcher's connection `conn` (raises the driver's errors)."""

    def __init__(self, conn: Any, pid: int, server_version: int) -> None:
        self.conn = conn
        self.pid = pid
        sections = [read_sql_section(_SQL, name) for name, since in PROGRESS_VIEWS if server_version >= since]
        self._progress_sql = "\nUNION ALL\n".join(sections)

    def read(self) -> ServerView | None:
        """The deploy's backend now; None when it is gone (the deploy's session ended)."""
        rows = self.conn.run(read_sql_section(_SQL, "activity"), pid=self.pid)
        if not rows:
            return None
        (state, wait_type, wait_event, query_seconds, blocking, mode, lock_type, relation, lock_seconds) = rows[0]
        blockers: tuple[SessionInfo, ...] = ()
        if blocking:
            found = {info.pid: info for info in sessions.fetch(self.conn, blocking)}
            # A blocker that ended between the two reads, or one we may not see, is still a pid.
            blockers = tuple(found.get(pid, SessionInfo(pid=pid)) for pid in blocking)
        progress: tuple[Progress, ...] = ()
        if state == "active" and self._progress_sql:
            progress = tuple(Progress(*row) for row in self.conn.run(self._progress_sql, pid=self.pid))
        return ServerView(state=state, wait_event_type=wait_type, wait_event=wait_event, query_seconds=query_seconds,
                          blockers=blockers, lock_mode=mode, lock_type=lock_type, lock_relation=relation,
                          lock_wait_seconds=lock_seconds, progress=progress)
