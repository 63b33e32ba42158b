"""A fleet's live status: one line per running target instead of several status lines fighting.

`FleetBoard(out)` goes into the fleet's base request (`WatchSettings(board=...)`); each
target's watcher gets its own sinks from `settings_for(name)`. On a terminal every running
target owns one line of the fleet Output's status block (`t03: 12s | deploy.sql | waiting
for a lock held by pid 4242 (...)`), removed when its deploy ends; off a terminal its log
lines are printed as they come, prefixed with the target's name like the rest of its log.
"""

from __future__ import annotations

import threading
from typing import Any

from pgmilib import records
from pgmilib.output import Output

MAX_LINES = 10  # more running targets than this: the rest are counted on the last line


class FleetBoard:
    """The status block of a fleet run on `out` (see the module docstring)."""

    def __init__(self, out: Output, max_lines: int = MAX_LINES) -> None:
        self._out = out
        self._max = max(1, max_lines)
        self._lines: dict[str, str] = {}  # target -> its line, in the order targets started
        self._lock = threading.Lock()

    def settings_for(self, name: str, base: Any) -> Any:
        """`base` (WatchSettings) for target `name`: its own line here, or its own prefixed log lines."""
        if self._out.live_status:
            return records.replace(base, board=None, status=lambda text: self._update(name, text))
        return records.replace(base, board=None, terminal=False,
                                   lines=lambda line: self._out.info(f"{name} | {line}"))

    def _update(self, name: str, text: str | None) -> None:
        with self._lock:
            if text is None:
                self._lines.pop(name, None)
            else:
                self._lines[name] = f"{name}: {text}"
            lines = list(self._lines.values())
            if len(lines) > self._max:
                lines = lines[: self._max - 1] + [f"... and {len(lines) - self._max + 1} more target(s) running"]
            self._out.status(lines)

    def close(self) -> None:
        """Remove the block (every target's watcher removes its own line; this is the safety net)."""
        with self._lock:
            self._lines.clear()
            self._out.status(None)
