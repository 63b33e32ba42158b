"""The live watcher: a daemon thread that says what a running deploy is doing and waits for.

The pipeline starts one per deploy once its session is open (`Watcher(...).start()`), tells
it which units deploy.sql has (`plan`) and which one it sends (`running`), and stops it when
the session ends (`stop`, before anything else is printed). The thread sleeps
`start_after` seconds first, so a quick deploy never sees it; then, every `interval`
seconds, it looks at the server through a second connection (pgmilib/observe/second.py)
and shows a `Snapshot` in up to three places:

* a live status line on a terminal (`Output.status`), or one line per target for a fleet;
* plain lines in a log when stderr is not a terminal (render.LogLines decides when);
* a `progress` callback (the MCP server's notifications/progress).

It can only ever make a deploy better informed: it takes no lock the deploy could need,
every failure of its own ends in one warning (no second connection) or a verbose note, and
`--timeout` and cancellation know nothing about it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from pgmilib import records
from pgmilib.output import Output

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

    from pgmilib.observe.render import Snapshot

# The renderer and the second connection (pgmilib/observe/render.py, second.py) are imported by the
# watcher's thread once the deploy has lasted start_after: a short deploy never loads them.

JOIN_SECONDS = 2.0  # how long stop() waits for a read in flight before cutting the socket


@records.record(frozen=True)
class WatchSettings:
    """How a deploy is watched. The defaults are pgmi's; tests shorten the times."""

    start_after: float = 1.0  # a deploy shorter than this never opens the second connection
    interval: float = 1.0  # seconds between two looks (and status redraws)
    lock_line_after: float = 5.0  # off a terminal: a line once a lock wait is this long ...
    lock_line_every: float = 30.0  # ... and again every this many seconds while it lasts
    unit_line_every: float = 60.0  # off a terminal: a line every this many seconds of one unit
    connect_timeout: float = 5.0  # the second connection's budget (connect and start-up)
    enabled: bool = True  # False: no watcher at all
    #: None: the deploy's Output decides (a status line when stderr is a terminal).
    terminal: bool | None = None
    #: Where the status text goes instead of the Output (None clears it): a fleet's line.
    status: Callable[[str | None], None] | None = None
    #: Where log lines go instead of the Output's stderr (a fleet prefixes the target).
    lines: Callable[[str], None] | None = None
    #: Called with every snapshot (the MCP progress notifier).
    progress: Callable[[Snapshot], None] | None = None
    #: A fleet's status board (pgmilib/observe/board.py): gives each target its own sinks.
    board: Any = None

    def for_target(self, name: str) -> WatchSettings:
        """The settings of one fleet target (its own line on the board)."""
        return self if self.board is None else self.board.settings_for(name, self)


class Watcher:
    """Watches the deploy session `conn` (server pid `pid`) for `out` (see the module docstring)."""

    def __init__(self, settings: WatchSettings, out: Output, conn: Any, pid: int) -> None:
        self._settings = settings
        self._out = out
        self._conn = conn
        self._pid = pid
        terminal = out.live_status if settings.terminal is None else settings.terminal
        self._status = settings.status or (out.status if terminal else None)
        self._lines = None if self._status is not None else (settings.lines or out.info)
        self._log: Any = None  # render.LogLines, made by the thread
        self._units: Sequence[Any] = ()
        self._unit = -1
        self._unit_started = time.monotonic()
        self._lock_seen_at: float | None = None
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._probe: Any = None
        self._thread = threading.Thread(target=self._run, name="pgmi-watch", daemon=True)

    # ---- the deploy's side ----------------------------------------------------------------
    def start(self) -> Watcher:
        self._thread.start()
        return self

    def plan(self, units: Sequence[Any]) -> None:
        """The execution units deploy.sql was split into (sqllex.Unit: .text, .start_line)."""
        self._units = tuple(units)

    def running(self, sql: str) -> None:
        """The deploy's runner is about to send `sql`: when it is a unit, that unit is now running."""
        units = self._units
        for index in range(max(self._unit, 0), len(units)):
            if units[index].text is sql or units[index].text == sql:
                self._unit, self._unit_started = index, time.monotonic()
                return

    def stop(self) -> None:
        """Stop watching: nothing is shown after this returns, the status line is gone."""
        with self._emit_lock:
            self._stopped = True
            if self._status is not None:
                self._call(self._status, None)
        self._stop.set()
        if self._thread.ident is None:
            return
        self._thread.join(JOIN_SECONDS)
        probe = self._probe
        if self._thread.is_alive() and probe is not None:  # a read stuck on a stalled network
            probe.conn.shutdown_socket()
            self._thread.join(JOIN_SECONDS)

    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        settings = self._settings
        if self._stop.wait(settings.start_after):
            return
        from pgmilib.observe import render, second

        self._log = render.LogLines(settings)
        try:
            self._show(None)
            self._probe = self._connect()
            while not self._stop.is_set():  # stopped while connecting: not one more look
                self._show(self._look())
                if self._stop.wait(settings.interval):
                    break
        except Exception as bug:  # noqa: BLE001 -- a watcher bug must never reach the deploy
            self._out.verbose(f"live status stopped: {type(bug).__name__}: {bug}")
        finally:
            probe, self._probe = self._probe, None
            if probe is not None:
                second.close_quietly(probe.conn)

    def _connect(self) -> Any:
        from pgmilib.observe import second

        try:
            return second.open_probe(self._conn, self._pid, self._settings.connect_timeout)
        except Exception as error:  # noqa: BLE001 -- any failure: the deploy goes on without the server's view
            if not self._stop.is_set():
                self._out.warn(f"no live view of what the deploy waits for: a second connection to the server "
                               f"failed ({second.why(error)}); the deploy goes on")
            return None

    def _look(self) -> Any:
        """The server's view now; None without one (a failed read drops the second connection)."""
        from pgmilib.conn.wire import DRIVER_ERRORS, SERVER_ERRORS
        from pgmilib.observe import second

        probe = self._probe
        if probe is None:
            return None
        try:
            return probe.read()
        except SERVER_ERRORS as error:
            if second.diagnostics(error) is not None and not self._stop.is_set():
                return None  # our own lock_timeout or statement_timeout: skip this look
            raise
        except DRIVER_ERRORS as error:
            if not self._stop.is_set():
                self._out.verbose(f"live status: the second connection failed ({second.why(error)}); "
                                  "showing the deploy's own progress only")
            self._probe = None
            second.close_quietly(probe.conn)
            return None

    def _show(self, view: Any) -> None:
        from pgmilib.observe import render
        from pgmilib.observe.render import Snapshot

        now = time.monotonic()
        lock_wait = None
        if view is not None and view.waiting_for_lock:
            self._lock_seen_at = self._lock_seen_at or now
            lock_wait = view.lock_wait_seconds if view.lock_wait_seconds is not None else now - self._lock_seen_at
        else:
            self._lock_seen_at = None
        index, units = self._unit, self._units
        line = units[index].start_line if 0 <= index < len(units) else 0
        snap = Snapshot(elapsed=now - self._out.started, where=render.unit_label(index, len(units), line),
                        unit_key=index, unit_seconds=now - self._unit_started, notice=self._out.last_notice,
                        server=view, lock_wait_seconds=lock_wait)
        with self._emit_lock:
            if self._stopped:
                return
            if self._status is not None:
                self._call(self._status, render.status_text(snap))
            elif self._lines is not None:
                for text in self._log.lines(snap):
                    self._call(self._lines, text)
            if self._settings.progress is not None:
                self._call(self._settings.progress, snap)

    def _call(self, sink: Callable[[Any], Any], value: Any) -> None:
        try:
            sink(value)
        except Exception as error:  # noqa: BLE001 -- a closed pipe or a gone client: nothing to show it to
            self._out.verbose(f"live status: could not show it ({type(error).__name__}: {error})")


def start(settings: WatchSettings | None, out: Output, conn: Any, pid: int | None) -> Watcher | None:
    """A started watcher for the deploy session `conn` (server pid `pid`), or None when disabled."""
    settings = settings or WatchSettings()
    if not settings.enabled or pid is None:
        return None
    return Watcher(settings, out, conn, pid).start()
