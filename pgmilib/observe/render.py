"""What the watcher says, as text: the status line, the log lines off a terminal, the MCP message.

Pure functions of a `Snapshot` (what the deploy is doing, what the server says about it),
plus `LogLines`, which decides when a plain line is due in a log: a lock wait longer than
`lock_line_after` seconds, again every `lock_line_every` seconds while it lasts (and one line
when it ends), and every `unit_line_every` seconds of one long-running unit.
"""

from __future__ import annotations

from typing import Any

from pgmilib import records
from pgmilib.config.durations import format_duration
from pgmilib.observe.probe import Progress, ServerView
from pgmilib.observe.sessions import describe

#: Blockers named in one line; the rest are counted ("and 3 more").
MAX_BLOCKERS = 3
PREPARING = "preparing the session"


@records.record(frozen=True)
class Snapshot:
    """One moment of a running deploy, for display."""

    elapsed: float  # seconds since the deploy started
    where: str  # "deploy.sql unit 2/5 (line 14)", "deploy.sql" or "preparing the session"
    unit_key: int = -1  # which unit (-1: before the first): a new one restarts the unit clock
    unit_seconds: float = 0.0  # how long the current unit (or the preparation) has run
    notice: str = ""  # the last NOTICE's first line
    server: ServerView | None = None  # None: no second connection, or not read yet
    lock_wait_seconds: float | None = None  # how long the deploy has waited for a lock (None: it does not)

    @property
    def progress(self) -> tuple[Progress, ...]:
        return self.server.progress if self.server is not None else ()


def unit_label(index: int, total: int, line: int) -> str:
    """`deploy.sql` for a one-unit script, `deploy.sql unit 2/5 (line 14)` otherwise."""
    if index < 0:
        return PREPARING
    return "deploy.sql" if total <= 1 else f"deploy.sql unit {index + 1}/{total} (line {line})"


def seconds(value: float) -> str:
    return format_duration(max(0, int(value)))


def lock_target(view: ServerView) -> str:
    """The lock the deploy waits for: `AccessExclusiveLock on orders`, `ShareLock on a row's transaction`."""
    mode = view.lock_mode or "a lock"
    if view.lock_relation:
        return f"{mode} on {view.lock_relation}"
    if view.lock_type == "transactionid":
        return f"{mode} on another transaction (a row it changed)"
    return f"{mode} ({view.lock_type})" if view.lock_type else mode


def lock_phrase(view: ServerView, *, detail: bool = False) -> str:
    """`waiting for a lock held by pid 4242 (psql, idle in transaction for 12m0s: UPDATE orders ...)`.

    `detail` (logs, MCP) adds the lock and each blocker's user.
    """
    text = "waiting for a lock"
    if detail and (view.lock_mode or view.lock_type):
        text += f" ({lock_target(view)})"
    shown = view.blockers[:MAX_BLOCKERS]
    if shown:
        text += " held by " + "; ".join(describe(b, with_user=detail) for b in shown)
        if len(view.blockers) > len(shown):
            text += f" and {len(view.blockers) - len(shown)} more session(s)"
    return text


def progress_phrase(progress: Progress) -> str:
    """`CREATE INDEX on orders: building index: scanning table 42% (4200 of 10000 blocks)`."""
    head = progress.command + (f" on {progress.relation}" if progress.relation and progress.relation != "-" else "")
    parts: list[str] = [progress.phase] if progress.phase else []
    fraction = progress.fraction
    if fraction is not None:
        done, total = progress.done or 0, progress.total or 0
        amount = (f"{_amount(done, 'bytes')} of {_amount(total, 'bytes')}" if progress.unit == "bytes"
                  else f"{done} of {total} {progress.unit}")
        parts.append(f"{fraction * 100:.0f}% ({amount})")
    elif progress.done:
        parts.append(_amount(progress.done, progress.unit))
    text = " ".join(parts)
    if progress.tuples:
        text += (", " if text else "") + f"{progress.tuples} tuples"
    return head + (f": {text}" if text else "")


def _amount(count: int, unit: str) -> str:
    if unit != "bytes":
        return f"{count} {unit}"
    size = float(count)
    for name in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or name == "GB":
            return f"{int(size)} {name}" if name == "bytes" else f"{size:.1f} {name}"
        size /= 1024
    return f"{count} bytes"  # not reached


def server_phrase(snap: Snapshot, *, detail: bool = False) -> str:
    """What the server says the deploy is doing: waiting for a lock, or a progress view; '' if nothing."""
    view = snap.server
    if view is None:
        return ""
    if view.waiting_for_lock:
        return lock_phrase(view, detail=detail)
    return "; ".join(progress_phrase(p) for p in view.progress)


def status_parts(snap: Snapshot, *, detail: bool = False) -> list[str]:
    """elapsed, where, the server's phrase (if any), the last notice (if any)."""
    parts = [seconds(snap.elapsed), snap.where]
    phrase = server_phrase(snap, detail=detail)
    if phrase:
        parts.append(phrase)
    if snap.notice:
        parts.append(snap.notice)
    return parts


def status_text(snap: Snapshot, *, detail: bool = False) -> str:
    """The status line: `12s | deploy.sql unit 2/5 (line 14) | waiting for a lock held by pid 4242 (...) | applying x.sql`."""
    return " | ".join(status_parts(snap, detail=detail))


class LogLines:
    """When to write a plain line into a log (see the module docstring). Feed it every snapshot."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._lock_due: float | None = None  # wait length at which the next lock line is due
        self._lock_reported = False
        self._lock_last = 0.0
        self._unit_key: int | None = None
        self._unit_due = 0.0

    def lines(self, snap: Snapshot) -> list[str]:
        found = self._lock_lines(snap)
        found.extend(self._unit_lines(snap))
        return found

    def _lock_lines(self, snap: Snapshot) -> list[str]:
        wait = snap.lock_wait_seconds
        if wait is None or snap.server is None:
            ended = self._lock_reported
            self._lock_due, self._lock_reported = None, False
            return [f"pgmi: the lock wait ended after {seconds(self._lock_last)}; the deploy goes on"] if ended else []
        if self._lock_due is None or wait < self._lock_last:  # a new wait
            self._lock_due, self._lock_reported = self._settings.lock_line_after, False
        self._lock_last = wait
        if wait < self._lock_due:
            return []
        self._lock_due = wait + self._settings.lock_line_every
        word = "still waiting" if self._lock_reported else "waiting"
        self._lock_reported = True
        phrase = lock_phrase(snap.server, detail=True).replace("waiting for a lock", f"{word} for a lock", 1)
        return [f"pgmi: {snap.where}: {phrase} (for {seconds(wait)} so far)"]

    def _unit_lines(self, snap: Snapshot) -> list[str]:
        every = self._settings.unit_line_every
        if snap.unit_key != self._unit_key:
            self._unit_key, self._unit_due = snap.unit_key, every
        if snap.unit_seconds < self._unit_due:
            return []
        self._unit_due = snap.unit_seconds + every
        if snap.lock_wait_seconds is not None:
            return []  # the lock lines say more
        if snap.unit_key < 0:
            text = f"pgmi: still {snap.where} after {seconds(snap.unit_seconds)}"
        else:
            text = f"pgmi: {snap.where} running for {seconds(snap.unit_seconds)}"
        phrase = server_phrase(snap, detail=True)
        if phrase:
            text += f": {phrase}"
        if snap.notice:
            text += f" (last notice: {snap.notice})"
        return [text]
