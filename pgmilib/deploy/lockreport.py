"""The rehearsal's lock report: what the deploy locked and rewrote, measured by the server.

`snapshot()` runs before deploy.sql's head, `collect()` at its end (inside the transaction,
before the ROLLBACK), `add_blockers()` after the ROLLBACK; the SQL is sql/lock_report.sql.
`attribute()` names the statement that took each lock (pgmilib/deploy/lockstatements.py)
and adds one line of advice for the classic cases. `render()` is the human table and
`as_json()` the `locks` key of the --json envelope. pgmi never changes the user's SQL:
the advice says what PostgreSQL offers instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pgmilib.deploy.lockstatements as stmts
from pgmilib.records import field, record
from pgmilib.resources import read_sql_section

if TYPE_CHECKING:
    from pgmilib.conn.wire import Session

SQL = "lock_report.sql"
#: Advice is given for relations at least this large (estimated rows, or bytes): rewriting
#: or scanning a small table under a strong lock takes milliseconds.
LARGE_ROWS = 10_000
LARGE_BYTES = 10 * 1024 * 1024
TABLE_ROWS_SHOWN = 10  # the human table shows the largest ones; --json has all


@record
class LockEntry:
    """One relation that existed before the deploy and was locked stronger than ROW EXCLUSIVE."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind: r table, p partitioned, m materialized view, i index, S sequence ...
    mode: str  # the strongest mode held (pg_locks spelling), or the mode wanted when not acquired
    rewritten: bool | None  # None: unknown (the lock was not acquired)
    rows: int | None
    bytes: int | None
    indexes_rebuilt: int = 0
    acquired: bool = True  # False: the rehearsal's bounded wait for it ran out (55P03)
    file: str | None = None
    line: int | None = None
    statement: str | None = None  # first line of the statement that took the lock
    advice: list[str] = field(default_factory=list)  # one line per classic case found (large relations only)
    blockers: list[dict[str, Any]] = field(default_factory=list)
    blocker_text: list[str] = field(default_factory=list)

    @property
    def relation(self) -> str:
        return f"{_ident(self.schema)}.{_ident(self.name)}"

    def large(self) -> bool:
        return (self.rows or 0) >= LARGE_ROWS or (self.bytes or 0) >= LARGE_BYTES

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"relation": self.relation, "mode": self.mode, "rewritten": self.rewritten,
                               "rows": self.rows, "bytes": self.bytes, "file": self.file, "line": self.line,
                               "blockers": self.blockers, "advice": self.advice}
        if self.indexes_rebuilt:
            doc["indexesRebuilt"] = self.indexes_rebuilt
        if not self.acquired:
            doc["acquired"] = False
        if self.statement:
            doc["statement"] = self.statement
        return doc


@record
class LockReport:
    """Everything the report says; `created` counts relations the deploy itself created."""

    entries: list[LockEntry] = field(default_factory=list)
    created: int = 0

    def sorted(self) -> list[LockEntry]:
        """Largest first (bytes, then rows); locks that were not acquired lead."""
        return sorted(self.entries, key=lambda e: (e.acquired, -(e.bytes or 0), -(e.rows or 0), e.relation))


def _ident(name: str) -> str:
    """A name as SQL would write it: quoted only when it needs to be."""
    if name and (name[0].isalpha() or name[0] == "_") and name == name.lower() and \
            all(ch.isalnum() or ch in "_$" for ch in name):
        return name
    return '"' + name.replace('"', '""') + '"'


# ---- the server's side -------------------------------------------------------------------------


def snapshot(conn: Session, lock_timeout_ms: int) -> None:
    """Before the head: the relations and their files now, and the bounded lock wait.

    One message: SET (a session setting, so the head's own `SET LOCAL lock_timeout` still
    wins inside its transaction) and the snapshot table. `lock_timeout_ms` is an int.
    """
    conn.run(f"SET lock_timeout = {int(lock_timeout_ms)};\n" + read_sql_section(SQL, "before"))


def bound_lock_wait(conn: Session, lock_timeout_ms: int) -> None:
    """Only the bounded lock wait (when the snapshot could not be made)."""
    conn.run(f"SET lock_timeout = {int(lock_timeout_ms)}")


def collect(conn: Session) -> LockReport:
    """Inside the head's still-open transaction: the locks it holds, the files it replaced."""
    rows = conn.run(read_sql_section(SQL, "held"))
    doc = json.loads(rows[0][0]) if rows else {"created": 0, "locks": []}
    entries = [LockEntry(oid=int(r["oid"]), schema=r["schema"], name=r["name"], kind=r["kind"], mode=r["mode"],
                         rewritten=bool(r["rewritten"]), rows=r["rows"], bytes=r["bytes"],
                         indexes_rebuilt=int(r["indexes_rebuilt"] or 0)) for r in doc["locks"]]
    return LockReport(entries=entries, created=int(doc["created"] or 0))


def cleanup(conn: Session) -> None:
    """After the ROLLBACK: drop the snapshot table, reset lock_timeout."""
    conn.run(read_sql_section(SQL, "cleanup"))


def resolve(conn: Session, names: Sequence[str]) -> list[LockEntry]:
    """Entries (not acquired; mode AccessExclusiveLock until the caller knows better) for the
    relations named in a statement that ran out of lock wait."""
    if not names:
        return []
    rows = conn.run(read_sql_section(SQL, "resolve"), names=list(names))
    seen: set[int] = set()
    entries = []
    for oid, schema, name, kind, count, size in rows:
        if oid in seen:
            continue
        seen.add(oid)
        entries.append(LockEntry(oid=oid, schema=schema, name=name, kind=kind, mode=stmts.ACCESS_EXCLUSIVE,
                                 rewritten=None, rows=count, bytes=size, acquired=False))
    return entries


def add_blockers(conn: Session, entries: Sequence[LockEntry]) -> None:
    """Fill each entry's blockers: other sessions whose lock on it conflicts with its mode.

    Locks held and locks queued ahead both count: a request waits behind a conflicting
    request that queued first, too. Each session is described once (observe/sessions.py).
    """
    if not entries:
        return
    from pgmilib.observe import sessions

    rows = conn.run(read_sql_section(SQL, "holders"), oids=[e.oid for e in entries])
    by_oid: dict[int, list[tuple[int | None, str, bool, str | None]]] = {}
    for relation, pid, mode, granted, gid in rows:
        by_oid.setdefault(int(relation), []).append((pid, mode, granted, gid))
    pids = sorted({pid for held in by_oid.values() for pid, *_ in held if pid is not None})
    described = {info.pid: info for info in sessions.fetch(conn, pids)} if pids else {}
    for entry in entries:
        seen: set[Any] = set()
        for pid, mode, granted, gid in by_oid.get(entry.oid, []):
            key = pid if pid is not None else gid
            if key in seen or not stmts.conflicts(entry.mode, mode):
                continue
            seen.add(key)
            info = described.get(pid) if pid is not None else None
            doc: dict[str, Any] = info.as_json() if info else {"pid": pid}
            doc.update(mode=mode, granted=bool(granted))
            if pid is None:
                doc["preparedTransaction"] = gid
                text = f"prepared transaction {gid!r}"
            else:
                text = sessions.describe(info) if info else f"pid {pid}"
            entry.blockers.append(doc)
            entry.blocker_text.append(f"{text} holds {mode}" if granted else f"{text} waits for {mode}")


# ---- the text's side: which statement, and advice ----------------------------------------------


def attribute(report: LockReport, found: Sequence[stmts.Statement]) -> None:
    """Name the statement behind each entry (file, line) and add advice for the classic cases."""
    by_name: dict[str, list[stmts.Statement]] = {}  # one pass over the statements, not one per entry
    for statement in found:
        for name in dict.fromkeys(n for _, n in statement.names):
            by_name.setdefault(name, []).append(statement)
    for entry in report.entries:
        named = by_name.get(entry.name, [])
        statement = stmts.locate(named, entry.schema, entry.name, entry.mode, bool(entry.rewritten))
        if statement is not None:
            entry.file, entry.line, entry.statement = statement.path, statement.line, statement.first_line
        if entry.large() and entry.acquired:  # a lock not acquired: what the statement would do is unknown
            lines = (advice(entry, s) for s in named if stmts.names_relation(s, entry.schema, entry.name))
            entry.advice = list(dict.fromkeys(line for line in lines if line))


def advice(entry: LockEntry, statement: stmts.Statement) -> str | None:
    """One line with the PostgreSQL-native alternative to what `statement` did to `entry`, if classic."""
    if entry.rewritten and statement.adds_column_with_default():
        return ("a new column's default is volatile, so every row was rewritten under ACCESS EXCLUSIVE: add the "
                "column without a default (or with a constant one: no rewrite since PostgreSQL 11), backfill it "
                "in batches, then ALTER COLUMN ... SET DEFAULT")
    if entry.rewritten and statement.changes_type():
        return ("this type change rewrites the table under ACCESS EXCLUSIVE: add a column of the new type, "
                "backfill it in batches, then swap the columns in a short transaction (changes that need no "
                "rewrite, e.g. varchar(n) to text or to a longer varchar, keep the files)")
    if statement.sets_not_null():
        return ("SET NOT NULL scans the whole table under ACCESS EXCLUSIVE: first ADD CONSTRAINT ... CHECK (col IS "
                "NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: reads and writes go on); "
                "SET NOT NULL then uses the validated constraint instead of scanning")
    if statement.builds_index():
        return ("CREATE INDEX holds SHARE on the table for the whole build and blocks every write: build it with "
                "CREATE INDEX CONCURRENTLY after the head's COMMIT, in the tail (examples/lock-safe-deploy)")
    return None


def is_risky(entry: LockEntry, threshold: int) -> bool:
    """`--fail-on-lock-risk`: a rewrite or ACCESS EXCLUSIVE on a relation of at least `threshold` bytes."""
    risky = bool(entry.rewritten) or entry.mode == stmts.ACCESS_EXCLUSIVE
    return risky and (entry.bytes or 0) >= threshold


def check_risk(report: LockReport, threshold: int) -> None:
    """Raise LockRiskFound (exit 17) naming the risky relations, largest first."""
    from pgmilib.errors import LockRiskFound

    risky = [e for e in report.sorted() if is_risky(e, threshold)]
    if not risky:
        return
    named = ", ".join(f"{e.relation} ({'rewritten' if e.rewritten else e.mode}, {_bytes_text(e.bytes)}"
                      + (f", {e.file}:{e.line}" if e.file else "") + ")" for e in risky[:5])
    more = f" and {len(risky) - 5} more" if len(risky) > 5 else ""
    raise LockRiskFound(f"lock risk: the rehearsal rewrote or ACCESS EXCLUSIVE-locked {len(risky)} relation(s) of "
                        f"at least {_bytes_text(threshold)}: {named}{more} (--fail-on-lock-risk; nothing was changed)")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|K|MB|M|GB|G|TB|T)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1024, "k": 1024, "mb": 1024 ** 2, "m": 1024 ** 2, "gb": 1024 ** 3, "g": 1024 ** 3,
          "tb": 1024 ** 4, "t": 1024 ** 4}


def parse_size(flag: str, text: str) -> int:
    """A size flag's value in bytes: `0`, `8192`, `500kB`, `10MB`, `1.5GB` (units of 1024, as PostgreSQL's)."""
    from pgmilib.errors import UsageError, go_quote

    found = _SIZE.match(text or "")
    if found is None:
        raise UsageError(f"invalid argument {go_quote(text)} for \"{flag}\" flag: expected a size such as 0, "
                         "500kB, 10MB or 1GB")
    return int(float(found.group(1)) * _UNITS[(found.group(2) or "").lower()])


# ---- output -------------------------------------------------------------------------------------


def as_json(report: LockReport) -> list[dict[str, Any]]:
    return [e.as_json() for e in report.sorted()]


def render(report: LockReport) -> list[str]:
    """The short table printed after the rehearsal summary (largest first, rewrites marked)."""
    entries = report.sorted()
    created = f"; {report.created} relation(s) created by the deploy are not listed" if report.created else ""
    if not entries:
        return [f"locks: no existing relation was locked stronger than ROW EXCLUSIVE{created}"]
    lines = [f"locks the rehearsal took or waited for on existing relations (largest first){created}:"]
    shown = entries[:TABLE_ROWS_SHOWN]
    cells = [(e.relation, _mode_text(e), _rewrite_text(e), _rows_text(e.rows), _bytes_text(e.bytes), _place(e))
             for e in shown]
    header = ("relation", "lock", "rewritten", "rows", "size", "statement")
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    for row in (header, *cells):
        lines.append("  " + "  ".join(cell.ljust(widths[i]) if i in (0, 1, 2, 5) else cell.rjust(widths[i])
                                      for i, cell in enumerate(row)).rstrip())
    for entry in shown:
        for text in entry.blocker_text:
            verb = "could not get its lock: " if not entry.acquired else "would queue behind "
            lines.append(f"  {entry.relation} {verb}{text}")
        lines.extend(f"  advice ({entry.relation}): {line}" for line in entry.advice)
    if len(entries) > len(shown):
        lines.append(f"  ... and {len(entries) - len(shown)} more (--json lists all)")
    return lines


def _mode_text(entry: LockEntry) -> str:
    return entry.mode + ("" if entry.acquired else " (not acquired)")


def _rewrite_text(entry: LockEntry) -> str:
    if entry.rewritten is None:
        return "?"
    if entry.rewritten:
        return "REWRITTEN" + (f" (+{entry.indexes_rebuilt} index)" if entry.indexes_rebuilt == 1 else
                              f" (+{entry.indexes_rebuilt} indexes)" if entry.indexes_rebuilt else "")
    return "no"


def _rows_text(rows: int | None) -> str:
    return "?" if rows is None else f"{rows:,}"


def _bytes_text(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _place(entry: LockEntry) -> str:
    if entry.file is None:
        return "(not found in the project's SQL text)"
    return f"{entry.file}:{entry.line}"


def relation_names(found: Iterable[stmts.Statement]) -> list[str]:
    """Names (as SQL text) of the relations the given statements lock stronger than ROW EXCLUSIVE."""
    names: list[str] = []
    for statement in found:
        if stmts.rank(statement.mode) <= stmts.rank(stmts.ROW_EXCLUSIVE):
            continue
        for schema, name in statement.names:
            text = f"{_ident(schema)}.{_ident(name)}" if schema else _ident(name)
            if text not in names:
                names.append(text)
    return names
