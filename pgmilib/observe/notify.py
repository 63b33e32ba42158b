"""MCP progress: a `deploy` tool call that carries `_meta.progressToken` hears what the deploy does.

The MCP specification's progress flow: the server sends `notifications/progress` with the
caller's token, a `progress` number that increases with every notification, an optional
`total`, and a human `message`; none without a token, none after the call's answer. The
message is the watcher's status text with detail (each blocker's pid, user, application,
state, duration and query); `progress`/`total` are a progress view's done/total (index
blocks, COPY bytes) while they increase, and otherwise a count of notifications sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pgmilib.observe import render
from pgmilib.observe.render import Snapshot
from pgmilib.observe.watch import WatchSettings

#: Without news, one notification every this many seconds says the deploy is still alive.
HEARTBEAT_SECONDS = 5.0


class ProgressNotifier:
    """Turns the watcher's snapshots into `notifications/progress` messages for one call."""

    def __init__(self, notify: Callable[[dict[str, Any]], None], token: str | int,
                 heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._notify = notify
        self._token = token
        self._heartbeat = heartbeat
        self._progress = 0.0
        self._news: list[str] | None = None
        self._sent_at = float("-inf")

    def __call__(self, snap: Snapshot) -> None:
        parts = render.status_parts(snap, detail=True)
        news = parts[1:]  # the elapsed time alone is no news
        if news == self._news and snap.elapsed - self._sent_at < self._heartbeat:
            return
        self._news, self._sent_at = news, snap.elapsed
        params: dict[str, Any] = {"progressToken": self._token, "message": " | ".join(parts)}
        measured = next((p for p in snap.progress if p.fraction is not None), None)
        if measured is not None and float(measured.done or 0) > self._progress:
            self._progress = float(measured.done or 0)
            params["total"] = float(measured.total or 0)
        else:
            self._progress += 1
        params["progress"] = self._progress
        self._notify({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})


def progress_token(meta: Any) -> str | int | None:
    """The request's `_meta.progressToken` when it is one (a string or an integer), else None."""
    token = meta.get("progressToken") if isinstance(meta, Mapping) else None
    if isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool)):
        return token
    return None


def mcp_watch(meta: Any, notify: Callable[[dict[str, Any]], None] | None) -> WatchSettings:
    """The watch settings of one MCP deploy call: never a status line on the server's own stderr
    (log lines go there instead); progress notifications only when the call asked for them."""
    token = progress_token(meta)
    if token is None or notify is None:
        return WatchSettings(terminal=False)
    return WatchSettings(terminal=False, progress=ProgressNotifier(notify, token))
