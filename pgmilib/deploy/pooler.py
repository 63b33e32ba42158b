"""Refuse to deploy through a transaction-mode connection pooler, before anything is loaded.

pgmi's session API lives in `pg_temp` and the deploy lock is a session advisory lock; a
transaction-mode pooler (PgBouncer `pool_mode = transaction`, RDS Proxy, Supavisor's
transaction port) hands each transaction to whichever server session is free, so temp
tables "vanish" between statements, or worse, another client's session gets them. The
check (SQL in sql/pooler_probe.sql):

1. mark our server session with a random token (a session-level setting) and read pid and
   mark back in a second round trip: a changed pid or a lost mark is a pooler;
2. PostgreSQL itself reports the same pid in BackendKeyData at start-up as
   `pg_backend_pid()`; a proxy sends its own key. Only then (so a direct deploy, the common
   case, costs no extra connection) a second client connection opens a transaction through
   the same endpoint: if it lands on *our* server session (our pid or our mark), or our next
   round trip lands on another one, sessions are not pinned to clients. A session-mode pool
   never does either; if it has no free server session, the probe's wait times out, which
   also means our session is pinned.

It cannot prove pinning against every pool state (another client may be holding exactly
the session we would have been moved to), but it never refuses a session-mode pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pgmilib.errors import ConfigError
from pgmilib.output import Output
from pgmilib.resources import read_sql

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

    from pgmilib.conn.wire import Session

PROBE_WAIT_SECONDS = 3.0  # how long the second client waits for a server session


class PoolerDetected(ConfigError):
    """The endpoint is a transaction-mode pooler (exit 10: the configuration must change)."""


def check(conn: Session, open_probe: Callable[[], Session], out: Output, where: str = "") -> int:
    """Raise PoolerDetected when `conn` is not pinned to one server session (see module docstring).

    Returns the server's pid of the session (`pg_backend_pid()`, which a proxy's BackendKeyData may not be).
    """
    token = os.urandom(8).hex()  # secrets.token_hex's own recipe, without its imports (random, base64)
    pid = conn.run("SELECT pg_backend_pid(), set_config('pgmi.pooler_probe', :mark, false)", mark=token)[0][0]
    _expect_same(conn, pid, token, where, "the next statement ran in another server session")
    if getattr(conn, "backend_pid", pid) == pid:
        return pid  # no proxy in between: PostgreSQL's own BackendKeyData
    out.verbose("The server's pid differs from the one announced at connection start: a proxy or pooler is in "
                "between; checking that it keeps this session on one server session")
    probe = _open_quietly(open_probe, out)
    if probe is None:
        return pid
    from pgmilib.deploy.lock import close_quietly

    try:
        probe.set_socket_timeout(PROBE_WAIT_SECONDS)
        try:
            probe.run("BEGIN")
            other_pid, other_mark = probe.run(read_sql("pooler_probe.sql"))[0]
        except Exception:  # noqa: BLE001 -- no free server session within the wait: ours is pinned
            out.verbose("The second connection got no server session in time: this session is pinned")
            probe.shutdown_socket()
            return pid
        if other_pid == pid or other_mark == token:
            raise _detected(where, "another client connection was given this deploy's server session")
        _expect_same(conn, pid, token, where, "while another client held a transaction, this deploy was moved "
                     "to another server session")
    finally:
        close_quietly(probe)
    return pid


def _expect_same(conn: Session, pid: int, token: str, where: str, reason: str) -> None:
    now_pid, mark = conn.run(read_sql("pooler_probe.sql"))[0]
    if now_pid != pid or mark != token:
        raise _detected(where, reason)


def _open_quietly(open_probe: Callable[[], Session], out: Output) -> Any:
    from pgmilib.errors import ConnectionFailed

    try:
        return open_probe()
    except ConnectionFailed as error:  # e.g. a connection limit: the check is best effort
        out.verbose(f"Could not open a second connection to check the pooler's mode: {error.message}")
        return None


def _detected(where: str, reason: str) -> PoolerDetected:
    place = f" at {where}" if where else ""
    error = PoolerDetected(
        f"the server{place} is behind a transaction-mode connection pooler ({reason}); pgmi keeps its session "
        "API in pg_temp and needs one server session for the whole deploy")
    error.trailer.extend([
        "hint: connect pgmi directly to PostgreSQL (e.g. port 5432 instead of the pooler's 6432),",
        "      or through a session-mode pool (PgBouncer: pool_mode = session for this database or user);",
        "      RDS Proxy / Supavisor: use the database endpoint or the session-mode port for deploys",
    ])
    return error
