"""`--rehearse`: run deploy.sql's atomic head and end it with ROLLBACK instead of its COMMIT.

A pull request can then prove a deploy (migrations, then the `CALL pgmi_test()` gate)
against a real staging or production database without changing it. Only the head can be
rehearsed: it is sent as one message, so it is one transaction that ROLLBACK undoes
(PostgreSQL also rolls back an implicit multi-statement transaction on ROLLBACK). Tail
units autocommit one by one (sqllex.split_units), so a script that has any is refused up
front, before a connection is opened, with the reason.

What a rehearsal cannot undo is what no transaction undoes: sequence increments,
`dblink`/foreign writes, NOTIFY is dropped (good), files written by COPY TO PROGRAM.

The head is sent without its terminator, so its transaction is still open when it ends:
`Rehearsal` then asks the server what it locked and rewrote (pgmilib/deploy/lockreport.py)
and only then sends ROLLBACK. A head that opens no transaction of its own gets pgmi's BEGIN
first (an implicit transaction would commit at the end of its message). Each lock the head
waits for is bounded by lock_timeout (`--rehearse-lock-timeout`): a rehearsal of a
production deploy must not queue behind a long query (and make every later reader queue
behind itself); a lock it could not get is reported with the sessions holding it.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pgmilib import sqllex
from pgmilib.deploy.execute import SessionLayer, UnitRunner
from pgmilib.errors import ConfigError, ExecutionFailed, PgDiagnostics

if TYPE_CHECKING:
    from pgmilib.deploy.lockreport import LockReport
    from pgmilib.project.scan import Project


def check_request(*, overwrite: bool, ephemeral: bool) -> None:
    """Flags that contradict a rehearsal (a rehearsal must not change the server)."""
    if overwrite:
        raise ConfigError("--rehearse cannot be combined with --overwrite: a rehearsal must not change the database, "
                          "and --overwrite drops and recreates it")
    if ephemeral:
        raise ConfigError("--rehearse cannot be combined with --ephemeral: --ephemeral already deploys into a "
                          "throwaway server; use one or the other")


def refuse_tail(script: str) -> None:
    """ConfigError when `script` (deploy.sql) has statements after its first top-level terminator."""
    units = sqllex.split_units(script)
    if len(units) <= 1:
        return
    tail = units[1:]
    error = ConfigError(
        f"--rehearse cannot rehearse this deploy.sql: it has {len(tail)} statement(s) after its first "
        f"COMMIT (from line {tail[0].start_line}), and those autocommit one by one, so they cannot be rolled back")
    error.trailer.append("hint: use --ephemeral to try the whole script against a throwaway server, or move "
                         "those statements into the transaction before the first COMMIT")
    raise error


def terminator_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the first top-level transaction terminator statement of `text`, or None."""
    masked = sqllex.mask(text)
    previous = 0
    # _statement_ends knows SQL-standard BEGIN ATOMIC ... END bodies, whose END is no terminator.
    for end in sqllex._statement_ends(masked, 0):
        if sqllex.is_terminator(masked[previous:end - 1]):
            return previous, end
        previous = end
    if sqllex.is_terminator(masked[previous:]):
        return previous, len(masked)
    return None


def rehearse_units(units: list[sqllex.Unit]) -> list[sqllex.Unit]:
    """The units to send for a rehearsal: only the head, without its terminator (`Rehearsal` ends it)."""
    if len(units) > 1:  # checked up front on deploy.sql; expanded test macros never add a terminator
        raise ConfigError("--rehearse: the expanded deploy.sql has statements after its first COMMIT")
    head = units[0]
    return [sqllex.Unit(head_without_terminator(head.text), head.ordinal, head.start_line, head.start_offset)]


def head_without_terminator(head: str) -> str:
    """The head up to its transaction terminator (COMMIT/END/ROLLBACK...); text before it is untouched,
    so server error positions keep pointing at the script's lines."""
    span = terminator_span(head)
    return head if span is None else head[:span[0]]


def opens_transaction(text: str) -> bool:
    """Whether a top-level statement of `text` is BEGIN or START TRANSACTION (not BEGIN ATOMIC bodies:
    those are inside CREATE FUNCTION statements, and the lexer does not split them)."""
    masked = sqllex.mask(text)
    for start, end in sqllex.statement_spans(text):
        words = [m.group().upper() for m in itertools.islice(_WORD.finditer(masked, start, end), 2)]
        if words[:1] == ["BEGIN"] or words == ["START", "TRANSACTION"]:
            return True
    return False


_WORD = re.compile(r"[A-Za-z_]+")


class Rehearsal(SessionLayer):
    """The session connection as execute.run_units sees it during a rehearsal of the head.

    `run(head)`: snapshot, [BEGIN], the head, the lock report, ROLLBACK, clean-up; on a
    failure ROLLBACK and clean-up too, and for a lock wait that ran out (55P03), the
    relations the failing statement names and who holds them. `report` is the LockReport
    (None if it could not be made); `sources()` gives the project's SQL texts in run
    order, read only when there is something to attribute.
    """

    def __init__(self, conn: UnitRunner, *, lock_timeout: float, sources: Callable[[], Sequence[tuple[str, str]]],
                 warn: Callable[[str], None]) -> None:
        super().__init__(conn)
        self._lock_timeout_ms = round(lock_timeout * 1000)
        self._sources = sources
        self._warn = warn
        self.report: LockReport | None = None
        self.blocked = False  # the head failed on a lock wait that ran out

    def run(self, sql: str, **params: Any) -> Any:

        self.report, self.blocked = None, False
        reporting = self._snapshot()
        try:
            if not opens_transaction(sql):
                self._conn.run("BEGIN")
            result = self._conn.run(sql, **params)
            if self._conn.transaction_status == "I":  # never expected: the head ended its own transaction
                raise ExecutionFailed("execution failed: deploy.sql's head ended its own transaction before its "
                                      "first COMMIT (e.g. PREPARE TRANSACTION), so the rehearsal could not roll it "
                                      "back; check the database")
            report = self._collect() if reporting else None
        except BaseException as error:
            self._end()
            diag = PgDiagnostics.from_exception(error)
            if diag is not None and diag.sqlstate == "55P03":
                self.blocked = True
                self.report = self._quietly(lambda: self._blocked_report(diag))
            raise
        self._end()
        if report is not None:
            self.report = self._quietly(lambda: self._complete(report))
        return result

    def _snapshot(self) -> bool:
        """The bounded lock wait and the before-snapshot; False (and a warning) if the snapshot failed."""
        from pgmilib.deploy import lockreport

        try:
            lockreport.snapshot(self._conn, self._lock_timeout_ms)
            return True
        except Exception as error:  # the report is extra: the rehearsal runs without it
            diag = PgDiagnostics.from_exception(error)
            if diag is None:
                raise
            self._warn(f"the rehearsal's lock report is unavailable: {diag.message}")
            lockreport.bound_lock_wait(self._conn, self._lock_timeout_ms)
            return False

    def _collect(self) -> Any:
        """The report query, inside the transaction. Its failure must not fail the rehearsal."""
        from pgmilib.deploy import lockreport

        self._conn.run("SAVEPOINT _pgmi_lock_report")
        try:
            return lockreport.collect(self._conn)
        except Exception as error:  # a report is extra: say so and go on
            diag = PgDiagnostics.from_exception(error)
            if diag is None:
                raise
            self._warn(f"the rehearsal's lock report is unavailable: {diag.message}")
            self._conn.run("ROLLBACK TO SAVEPOINT _pgmi_lock_report")
            return None

    def _complete(self, report: Any) -> Any:
        from pgmilib.deploy import lockreport, lockstatements

        if report.entries:
            lockreport.attribute(report, lockstatements.index(self._sources()))
            lockreport.add_blockers(self._conn, report.entries)
        return report

    def _blocked_report(self, diag: PgDiagnostics) -> Any:
        """The relations the statement that ran out of lock wait names, and who holds them now.

        55P03 names no relation. The statement does: the innermost `SQL statement "..."` of the
        error's CONTEXT (a statement EXECUTEd from a file), else every lock-taking statement of
        the project, keeping only relations someone holds a conflicting lock on.
        """
        from pgmilib.deploy import lockreport, lockstatements

        statement = _failing_statement(diag)
        known = bool(statement)
        found = lockstatements.statements("", statement) if known else lockstatements.index(self._sources())
        entries = lockreport.resolve(self._conn, lockreport.relation_names(found))
        strongest: dict[str, list[tuple[str | None, str]]] = {}  # name -> (schema, mode) of each statement
        for found_statement in found:
            for schema, name in found_statement.names:
                strongest.setdefault(name, []).append((schema, found_statement.mode))
        for entry in entries:  # the mode the statements naming it ask for (the strongest, if several)
            modes = [m for schema, m in strongest.get(entry.name, []) if schema in (None, entry.schema)]
            entry.mode = max(modes, key=lockstatements.rank, default=lockstatements.ACCESS_EXCLUSIVE)
        lockreport.add_blockers(self._conn, entries)
        held = [e for e in entries if e.blockers]
        if held or not known:  # the relations someone holds; all of a known statement's when nobody does now
            entries = held
        report = lockreport.LockReport(entries=entries)
        if entries:
            lockreport.attribute(report, lockstatements.index(self._sources()))
        return report

    def _end(self) -> None:
        """ROLLBACK, then drop the snapshot and reset lock_timeout; a lost connection is not our error."""
        from pgmilib.deploy import lockreport

        # A lost connection is not the rehearsal's error: the server rolls back when a session ends.
        with contextlib.suppress(Exception):
            if self._conn.transaction_status != "I":
                self._conn.run("ROLLBACK")
            lockreport.cleanup(self._conn)

    def _quietly(self, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except Exception as error:  # the report is extra; the deploy's outcome stands
            diag = PgDiagnostics.from_exception(error)
            if diag is None:
                raise
            self._warn(f"the rehearsal's lock report is incomplete: {diag.message}")
            return None


_QUOTED_STATEMENT = re.compile(r'SQL statement "(.*?)"(?=\n(?:PL/pgSQL |SQL |PL/)|\Z)', re.DOTALL)


def _failing_statement(diag: PgDiagnostics) -> str:
    """The SQL text the server was running when the error came: the innermost `SQL statement "..."`
    of the CONTEXT (it may span lines), else the internal query, else '' (unknown)."""
    found = _QUOTED_STATEMENT.search(diag.where or "")
    if found:
        return found.group(1)
    return diag.internal_query or ""


def lock_sources(project: Project, deploy_sql: str) -> list[tuple[str, str]]:
    """(path, text) of what a deploy runs, in run order: the plan's SQL files, deploy.sql, the tests."""
    from pgmilib.project.metadata import plan

    contents = project.contents()
    by_path = {f.path: f for f in project.files}
    ordered: list[str] = []
    for entry in plan(project.files):
        if by_path[entry.path].is_sql and entry.path not in ordered:
            ordered.append(entry.path)
    sources = [(path, contents[path]) for path in ordered]
    sources.append(("deploy.sql", deploy_sql))
    sources.extend((f.path, contents[f.path]) for f in project.files if f.is_test and f.is_sql)
    return sources
