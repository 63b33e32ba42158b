"""One description of another server session, shared by the lock report and the watcher.

`fetch(conn, pids)` asks pg_stat_activity (sql/observe_sessions.sql) and returns one
`SessionInfo` per pid that still exists; `describe()` renders it as the short phrase both
features print: ``pid 4242 (app, idle in transaction for 12m: UPDATE orders ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgmilib import records
from pgmilib.config.durations import format_duration
from pgmilib.errors import printable
from pgmilib.resources import read_sql_section


@records.record(frozen=True)
class SessionInfo:
    """Another backend as pg_stat_activity shows it to the deploying role (fields may be None)."""

    pid: int
    user: str | None = None
    application: str | None = None
    state: str | None = None
    seconds: float | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    query: str | None = None  # first line only, at most 200 characters (cut on the server)

    def as_json(self) -> dict[str, Any]:
        """The envelope's shape (camelCase keys, as the rest of pgmi's JSON)."""
        return {"pid": self.pid, "user": self.user, "applicationName": self.application,
                "state": self.state, "seconds": None if self.seconds is None else round(self.seconds, 1),
                "waitEventType": self.wait_event_type, "waitEvent": self.wait_event, "query": self.query}


def fetch(conn: Any, pids: Iterable[int]) -> list[SessionInfo]:
    """The sessions among `pids` that still exist, in the order given. Raises the driver's error."""
    wanted = [int(pid) for pid in pids]
    if not wanted:
        return []
    rows = conn.run(read_sql_section("observe_sessions.sql", "describe_pids"), pids=wanted)
    return [SessionInfo(*row) for row in rows]


def describe(info: SessionInfo, *, query_width: int = 60, with_user: bool = False) -> str:
    """``pid 4242 (psql, idle in transaction for 12m: UPDATE orders ...)``; parts that are unknown are left out.

    `with_user` adds the role first (``pid 4242 (user alice, psql, ...)``): log lines have the room.
    """
    inner: list[str] = []
    if with_user and info.user:
        inner.append("user " + printable(info.user))
    if info.application:
        inner.append(printable(info.application))
    if info.state:
        state = printable(info.state)
        if info.seconds is not None:
            state += f" for {format_duration(max(0, round(info.seconds)))}"
        inner.append(state)
    text = f"pid {info.pid}"
    if inner:
        text += " (" + ", ".join(inner)
        if info.query:
            query = printable(info.query)
            text += ": " + (query if len(query) <= query_width else query[: query_width - 4].rstrip() + " ...")
        text += ")"
    return text

