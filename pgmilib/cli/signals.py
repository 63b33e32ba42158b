"""SIGINT/SIGTERM during a deploy (one target or a fleet): announce once, cancel the run.

The command line owns process-wide signal handlers; the deploy core only sees a
`Cancellation`. Outside this block, `cli.app.main` handles SIGTERM like Ctrl-C.
"""

from __future__ import annotations

import signal
import threading

from pgmilib.output import Output

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # typing.Self is 3.11+; annotations are never evaluated (future import)
    from typing import Any, Self


class CancelOnSignal:
    """While active (main thread only), SIGINT/SIGTERM call `cancel.cancel()` after one message.

    `stop_when_idle`: when nothing is in flight to cancel (the run is between statements or
    still starting), stop right here by raising KeyboardInterrupt, which the deploy reports as
    `Interrupted` (exit 130). Not an `Exception`: the signal lands anywhere, also inside library
    code with a broad `except Exception` (importlib.metadata's directory scan has one), which
    would swallow it and fail another way (a "package not found" for an installed driver).
    """

    def __init__(self, cancel: Any, out: Output, message: str, *, stop_when_idle: bool = True) -> None:
        self.cancel = cancel
        self.out = out
        self.message = message
        self.stop_when_idle = stop_when_idle
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.cancel.requested
        if first:
            self.out.info(self.message)
        in_flight = self.cancel.cancel()
        if self.stop_when_idle and first and not in_flight:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
