"""Target-database lifecycle: create it when missing, or overwrite it (drop and re-create).

Creation is lazy and cheap: the target is probed with a normal connection first, and the
maintenance database is touched only when the probe says the database does not exist
(SQLSTATE 3D000), so a role that may only CONNECT to its own database can deploy.

`--overwrite` is destructive, so it is guarded three times: offline refusals (the
maintenance and template databases), an approver the caller supplies (the CLI's asks at
a terminal: pgmilib/cli/approvers.py; without one, only `force` approves), and a faithful
re-creation of what the database was: encoding and locale, owner, connection limit,
database-level settings and comment.

This module receives a `connect` callable instead of importing the connection layer;
that keeps it testable against any server and free of connection policy.
"""

from __future__ import annotations

from collections.abc import Callable

from pgmilib.conn.backoff import Backoff, pause
from pgmilib.conn.params import DEFAULT_MAINTENANCE_DB
from pgmilib.deploy.lock import close_quietly, wait_for_no_deploy
from pgmilib.errors import (
    ApprovalDenied,
    ConcurrentDeploy,
    ConfigError,
    ConnectionFailed,
    PgDiagnostics,
    PgmiError,
    go_quote,
)
from pgmilib.output import Output
from pgmilib.resources import read_sql, read_sql_section

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, Protocol

    from pgmilib.conn.wire import LiveConnection, Session
    from pgmilib.deploy.watchdog import Watchdog
else:  # the Protocol classes below are structural types for type checkers, plain classes at run time
    Protocol = object

#: database name -> open connection; raises errors.ConnectionFailed (pg.sqlstate '3D000' when missing).
Connector = Callable[[str], "LiveConnection"]

_RACE_STATES = ("42P04", "23505")  # duplicate_database / unique_violation on pg_database
#: Columns of sql/database_settings.sql, in order.
SETTINGS_COLUMNS = ("encoding", "collate", "ctype", "owner", "connection_limit", "settings", "comment",
                    "locale_provider", "provider_locale", "differs")
#: GUCs whose stored value is a list of (possibly double-quoted) items; see _set_clause.
_LIST_GUCS = frozenset({"search_path", "temp_tablespaces", "session_preload_libraries",
                        "local_preload_libraries", "shared_preload_libraries", "unix_socket_directories"})


# ---- quoting ------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """A SQL identifier: double quotes, embedded quotes doubled; a NUL is refused, never dropped
    (dropping it would name a different database, e.g. in DROP DATABASE)."""
    if "\x00" in name:
        raise ConfigError(f"identifier {go_quote(name)} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def check_database_name(name: str, flag: str = "database name") -> None:
    """Refuse, before anything runs, a name PostgreSQL cannot hold: NUL or not UTF-8 (exit 10).

    Names from argv that were not UTF-8 arrive with surrogate escapes; the server would get
    different bytes, so `--overwrite` could act on another database than the one named.
    """
    if "\x00" in name:
        raise ConfigError(f"{flag} {go_quote(_printable(name))} contains a NUL character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{flag} {go_quote(_printable(name))} is not valid UTF-8") from None


def _printable(name: str) -> str:
    """The name with surrogate escapes shown as \\xNN (a lone surrogate cannot be written out)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def quote_literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings=on): quotes doubled, NUL removed."""
    return "'" + text.replace("\x00", "").replace("'", "''") + "'"


# ---- guards and creation ----------------------------------------------------------------


def check_overwrite_allowed(target: str, maintenance: str) -> None:
    """Refuse, before connecting, to overwrite the maintenance database or a template."""
    if target.lower() == (maintenance or DEFAULT_MAINTENANCE_DB).lower():
        error = ConfigError(f"cannot overwrite maintenance database {go_quote(target)}")
        error.trailer = ["Hint: pick another target database with -d; --overwrite drops and recreates it."]
        raise error
    if target.lower() in ("template0", "template1"):
        raise ConfigError(f"cannot drop template database {go_quote(target)} "
                          "(template0/template1 are protected by PostgreSQL)")


def ensure_database(connect: Connector, target: str, maintenance: str, out: Output) -> bool:
    """Make sure `target` exists; True when this call created it (with server defaults).

    The probe connects to the target itself; only SQLSTATE 3D000 leads to the maintenance
    database. Other probe failures are raised unchanged (usually exit 11). Losing the
    creation race to a parallel deploy is no failure: the database exists, and the deploy
    lock (with --lock-wait) then orders the deploys one after another.
    """
    try:
        connect(target).close()
        return False
    except ConnectionFailed as error:
        if not (error.pg and error.pg.sqlstate == "3D000"):
            raise
    out.verbose(f"Database {go_quote(target)} not found; connecting to maintenance database {go_quote(maintenance)}")
    admin = connect(maintenance)
    try:
        if _exists(admin, target):
            return False
        try:
            _create(admin, target, out)
        except ConcurrentDeploy:
            out.verbose(f"Database {go_quote(target)} was created by a parallel deploy; using it")
            return False
        return True
    finally:
        close_quietly(admin)


def open_target(connect: Connector, target: str, maintenance: str, out: Output, *, lock_wait: float = 0.0,
                watchdog: Watchdog | None = None) -> Any:
    """Connect to `target`, creating it first when the server says it does not exist.

    The deploy's common path: the probe connection of `ensure_database` becomes the session
    connection instead of being closed and opened again. A parallel CREATE that lost the race
    may still be committing (unique_violation) or roll back: the connect is retried a few
    times, and the deploy lock then decides who deploys first.
    """
    for attempt in range(5):
        try:
            return connect(target)
        except ConnectionFailed as error:
            if not (error.pg and error.pg.sqlstate == "3D000") or attempt == 4:
                raise
        ensure_database(connect, target, maintenance, out)
        if watchdog is not None:
            watchdog.check()
    raise AssertionError("unreachable")


def _exists(admin: Session, target: str) -> bool:
    return bool(admin.run(read_sql_section("database_admin.sql", "database_exists"), d=target)[0][0])


def _create(admin: Session, target: str, out: Output) -> None:
    out.info(f"Database {go_quote(target)} does not exist; creating")
    _run_create(admin, f"CREATE DATABASE {quote_ident(target)}", target)


def _run_create(admin: Session, sql: str, target: str) -> None:
    """Run CREATE DATABASE; a lost race with another deploy becomes exit 15.

    The race error carries no server diagnostics on purpose: its DETAIL would name the
    catalog's unique index, which means nothing to the user.
    """
    from pgmilib.conn.wire import SERVER_ERRORS

    try:
        admin.run(sql)
    except SERVER_ERRORS as error:
        diag = PgDiagnostics.from_exception(error)
        if diag and diag.sqlstate in _RACE_STATES:
            raise ConcurrentDeploy("concurrent deployment in progress: the database was created by another "
                                   "deploy while this one was starting") from None
        message = diag.message if diag else str(error)
        failure = PgmiError(f"failed to create database {go_quote(target)}: {message}", pg=diag)
        if diag and diag.sqlstate == "42501":  # permission denied to create database
            failure.trailer.append(
                f"hint: exit code 1: the connecting role may not create databases; grant it CREATEDB (ALTER ROLE "
                f"<role> CREATEDB, as a superuser), or create {quote_ident(target)} first (CREATE DATABASE "
                f"{quote_ident(target)} OWNER <role>) and deploy into it")
        raise failure from error


# ---- overwrite ---------------------------------------------------------------------------


class Approver(Protocol):
    """Decides whether an existing database may be dropped; raises to refuse."""

    def approve(self, database: str) -> None:  # raises ApprovalDenied / Interrupted
        ...


def overwrite_database(connect: Connector, target: str, maintenance: str, approver: Approver, out: Output, *,
                       lock_wait: float = 0.0, watchdog: Watchdog | None = None) -> None:
    """Drop and recreate `target`, preserving its settings; create it if absent (no approval).

    Differences from the original, on purpose: list-valued settings such as search_path
    are restored item by item (the original quoted `"$user", public` as one string, which
    turns it into a single odd schema name), and the DROP is retried a couple of times
    when a client reconnects between terminate and drop (SQLSTATE 55006).
    """
    check_overwrite_allowed(target, maintenance)
    admin = connect(maintenance)
    try:
        if not _exists(admin, target):
            _create(admin, target, out)
            return
        out.verbose(f"Requesting approval to drop and recreate {go_quote(target)}")
        approver.approve(target)
        # Never terminate a running deploy: wait for its deploy lock (--lock-wait) or refuse (15).
        wait_for_no_deploy(admin, target, lock_wait, out, watchdog)
        settings = capture_settings(admin, target)
        if settings is None:  # dropped by someone else while we were asking
            _create(admin, target, out)
            return
        _drop(admin, target, out, watchdog)
        _run_create(admin, _create_sql(target, settings), target)
        if settings["differs"]:
            out.verbose(f"Preserved encoding {settings['encoding']} and locale {settings['collate']}/{settings['ctype']}")
        for item in settings["settings"] or ():
            admin.run(_set_clause(target, item))
        if settings["comment"] is not None:
            admin.run(f"COMMENT ON DATABASE {quote_ident(target)} IS {quote_literal(settings['comment'])}")
        out.info(f"Recreated database {go_quote(target)}")
    finally:
        close_quietly(admin)


def capture_settings(admin: Session, target: str) -> dict[str, Any] | None:
    """What the re-created database must keep (keys: SETTINGS_COLUMNS); None if it is gone."""
    rows = admin.run(read_sql("database_settings.sql"), database=target)
    return dict(zip(SETTINGS_COLUMNS, rows[0])) if rows else None


#: Between DROP DATABASE attempts that met a session still connecting (55006): 0.2 s, then 0.4 s.
DROP_BACKOFF = Backoff(first=0.2, factor=2.0)


def _drop(admin: Session, target: str, out: Output, watchdog: Watchdog | None = None) -> None:
    from pgmilib.conn.wire import SERVER_ERRORS

    for attempt in range(3):
        admin.run(read_sql_section("database_admin.sql", "terminate_sessions"), d=target)
        out.verbose(f"Dropping database {go_quote(target)}")
        try:
            admin.run(f"DROP DATABASE {quote_ident(target)}")
            return
        except SERVER_ERRORS as error:
            diag = PgDiagnostics.from_exception(error)
            if diag and diag.sqlstate == "55006" and attempt < 2:
                if not pause(DROP_BACKOFF.delay(attempt), watchdog.deadline if watchdog else None) and watchdog:
                    watchdog.check()  # cancelled, or the deadline passed: say which
                continue
            message = diag.message if diag else str(error)
            raise PgmiError(f"failed to drop database {go_quote(target)}: {message}", pg=diag) from error


def _create_sql(target: str, settings: dict[str, Any]) -> str:
    """CREATE DATABASE with the captured settings.

    Only a database whose encoding/locale differ from template1 is built from template0
    with explicit ENCODING/LC_*; the original ignored the locale provider, so an ICU
    database came back as libc -- we carry the provider and its locale over too.
    """
    sql = f"CREATE DATABASE {quote_ident(target)}"
    if settings["differs"]:
        sql += (f" TEMPLATE template0 ENCODING {quote_literal(settings['encoding'])}"
                f" LC_COLLATE {quote_literal(settings['collate'])} LC_CTYPE {quote_literal(settings['ctype'])}")
        provider, locale = settings.get("locale_provider"), settings.get("provider_locale")
        if provider == "i":
            sql += f" LOCALE_PROVIDER icu ICU_LOCALE {quote_literal(locale or '')}"
        elif provider == "b":
            sql += f" LOCALE_PROVIDER builtin BUILTIN_LOCALE {quote_literal(locale or '')}"
        elif provider == "c":
            sql += " LOCALE_PROVIDER libc"
    if settings["owner"]:
        sql += f" OWNER {quote_ident(settings['owner'])}"
    if settings["connection_limit"] is not None and settings["connection_limit"] >= 0:
        sql += f" CONNECTION LIMIT {int(settings['connection_limit'])}"
    return sql


def _set_clause(target: str, item: str) -> str:
    """`name=value` from pg_db_role_setting -> ALTER DATABASE ... SET name = ...

    Plain settings are restored as one literal. List settings (search_path and friends)
    are stored as a formatted list whose items may be double-quoted identifiers; like
    pg_dump, we split it and give each item as its own literal.
    """
    name, _, value = item.partition("=")
    if name.lower() in _LIST_GUCS:
        values = ", ".join(quote_literal(part) for part in split_guc_list(value)) or "''"
    else:
        values = quote_literal(value)
    return f"ALTER DATABASE {quote_ident(target)} SET {quote_ident(name)} = {values}"


def split_guc_list(text: str) -> list[str]:
    """Split a stored list setting (`"$user", public`) into its items, dequoting "..." items."""
    items: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            i += 1
            part = []
            while i < n:
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        part.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                part.append(text[i])
                i += 1
            item = "".join(part)
            while i < n and text[i] != ",":
                i += 1
        else:
            start = i
            while i < n and text[i] != ",":
                i += 1
            item = text[start:i].strip()
        items.append(item)
        i += 1  # skip the comma
    return items


# ---- the approvers that need no terminal (the CLI's own are in pgmilib/cli/approvers.py) ----


class RefusingApprover:
    """No terminal and no --force: refuse at once and never touch stdin (a CI pipe would hang).

    Also what a deploy uses when its caller supplied no approver and did not pass `force`.
    """

    def approve(self, database: str) -> None:
        raise ApprovalDenied("approval denied: --overwrite must be confirmed at a terminal, and this is not one; "
                             f"pass --force to drop and recreate {go_quote(database)} from a script or CI job")


class AcceptingApprover:
    """--force without a terminal (and `force=True` from an API caller): say so and go on."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def approve(self, database: str) -> None:
        self.out.info(f"--force: dropping and recreating {go_quote(database)}")


def default_approver(force: bool, out: Output) -> Approver:
    """The approver of a request that brings none: `force` accepts, anything else refuses."""
    return AcceptingApprover(out) if force else RefusingApprover()
