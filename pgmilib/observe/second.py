"""The watcher's own connection: a second one like the deploy's, that only ever reads.

Same server, database, user, TLS transport and secret as the deploy's session
(`conn.connect.open_another`: a cloud token is reused, not fetched again), one attempt within
a bounded time, `application_name` "pgmi watch" so a DBA sees what it is, and session settings
that keep it from ever waiting behind the deploy (sql/observe_watch.sql `session_settings`).
Every read is bounded too: a stalled network ends a read after `READ_BUDGET` seconds.
"""

from __future__ import annotations

from typing import Any

from pgmilib.conn.connect import diagnostics, open_another
from pgmilib.observe.probe import Probe
from pgmilib.resources import read_sql_section

APPLICATION_NAME = "pgmi watch"
READ_BUDGET = 10.0  # seconds one read may block (statement_timeout is 5 s on the server)


def open_probe(deploy_conn: Any, pid: int, timeout: float) -> Probe:
    """A `Probe` of backend `pid` on a new connection like `deploy_conn`; raises the driver's errors."""
    conn = open_another(deploy_conn, application_name=APPLICATION_NAME, timeout=timeout)
    try:
        conn.set_socket_timeout(READ_BUDGET)
        version = conn.run(read_sql_section("observe_watch.sql", "session_settings"))[0][3]
    except BaseException:
        close_quietly(conn)
        raise
    return Probe(conn, pid, int(version))


def why(error: BaseException) -> str:
    """A short reason for a failed connection or read: the server's message, else the OS's."""
    diag = diagnostics(error)
    if diag is not None:
        return diag.message
    return str(error) or type(error).__name__


def close_quietly(conn: Any) -> None:
    """Close the watcher's connection; a dead or stalled one is simply dropped."""
    try:
        conn.set_socket_timeout(2.0)
        conn.close()
    except Exception:  # noqa: BLE001 -- the deploy's outcome never depends on the watcher's goodbye
        conn.shutdown_socket()
