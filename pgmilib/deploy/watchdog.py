"""One clock and one cancellation path for a deployment: `--timeout`, signals, API callers.

`Cancellation` is what a caller holds: the CLI's signal handler, an MCP
`notifications/cancelled`, a fleet's Ctrl-C all call `cancel()`. The `Watchdog` is the
run's side of it: it owns the run's single `Deadline` (connect attempts and the
statement timer read the same clock), sends a real CancelRequest for the statement in
flight, and shuts the socket down if the server has not answered within a grace period.
The pipeline calls `check()` between steps and `mark()` on failures, so the error
carries the marker that maps it to exit 16 (deadline) or 130 (interrupted).
"""

from __future__ import annotations

import threading

from pgmilib.conn.deadline import CANCEL_GRACE_SECONDS, Deadline
from pgmilib.errors import DeadlineExceeded, Interrupted, Marker, PgmiError

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from pgmilib.conn.wire import Session


class Cancellation:
    """A handle to cancel a running deploy from any thread (or a signal handler)."""

    def __init__(self) -> None:
        self._watchdog: Watchdog | None = None
        self._requested = False

    def cancel(self) -> bool:
        """Cancel the deploy; True if a statement was in flight (the server was asked to stop it)."""
        self._requested = True
        watchdog = self._watchdog
        if watchdog is None:
            return False
        return watchdog.trip(Marker.INTERRUPTED)

    @property
    def requested(self) -> bool:
        return self._requested

    def _attach(self, watchdog: Watchdog | None) -> None:
        self._watchdog = watchdog
        if watchdog is not None and self._requested:
            watchdog.trip(Marker.INTERRUPTED)


class Watchdog:
    """The run's deadline and the statement canceller (see the module docstring)."""

    GRACE_SECONDS = CANCEL_GRACE_SECONDS

    def __init__(self) -> None:
        self.reason: Marker | None = None
        self.conn: Session | None = None  # the connection whose statement a trip cancels
        self.deadline = Deadline(None)
        self.timeout: float | None = None
        self.origin = "--timeout"  # where the limit came from, for the expiry message
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def start_deadline(self, seconds: float | None, origin: str = "--timeout") -> None:
        """Start the one clock of this run (--timeout); None or 0 means no limit."""
        self.timeout = seconds or None
        self.origin = origin
        self.deadline = Deadline(self.timeout)
        if self.timeout:
            self._timer = threading.Timer(self.timeout, self.trip, args=(Marker.DEADLINE,))
            self._timer.daemon = True
            self._timer.start()

    def trip(self, reason: Marker) -> bool:
        """Record why the run must stop and cancel what is in flight; True if a statement was."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            conn = self.conn
        # A cancel also cuts short a network wait outside a statement (a token endpoint, a
        # connect attempt); the deadline's own waits end themselves when it passes.
        waiting = reason is Marker.INTERRUPTED and self.deadline.cancel()
        if conn is None:
            return waiting
        # The grace timer starts first: the CancelRequest itself may block (connect, then wait
        # for the server to close it) on a stalled network, and must not delay the shutdown.
        closer = threading.Timer(self.GRACE_SECONDS, conn.shutdown_socket)
        closer.daemon = True
        closer.start()
        try:
            conn.cancel()
        except OSError:  # the server may already be unreachable; the shutdown still ends the wait
            pass
        return True

    def check(self) -> None:
        """Raise if the run was cancelled or its deadline passed (called between steps)."""
        if self.reason is Marker.INTERRUPTED:
            raise Interrupted("interrupted")
        if self.reason is Marker.DEADLINE or self.deadline.expired():
            self.reason = self.reason or Marker.DEADLINE
            raise DeadlineExceeded(self.expired_message())

    def expired_message(self) -> str:
        from pgmilib.config import format_duration

        return f"deployment timed out after {format_duration(self.timeout or 0)} ({self.origin})"

    def mark(self, error: PgmiError) -> PgmiError:
        """Give an error caused by a trip its marker; a deadline also says so in the message."""
        if self.reason is not None:
            error.mark(self.reason)
            error.markers.discard(Marker.CONNECTION)  # the connection was cut because of the trip
        deadline = self.reason is Marker.DEADLINE or Marker.DEADLINE in error.markers
        if deadline and not isinstance(error, DeadlineExceeded):
            error.wrap(self.expired_message())  # not only the server's "canceling statement due to user request"
        return error

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
