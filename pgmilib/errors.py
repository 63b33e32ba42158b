"""Exit codes and the error types that carry them.

Every failure pgmi reports is a `PgmiError` carrying one or more *markers*; `exit_code()`
maps the markers to the documented exit code with the fixed first-match-wins order of
the original tool (an error can be both "execution failed" and "deadline exceeded";
the table decides it is a timeout, 16).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from types import SimpleNamespace

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any


class Exit(enum.IntEnum):
    """The exit-code contract. CI scripts branch on these numbers."""

    SUCCESS = 0
    GENERAL = 1
    USAGE = 2
    PANIC = 3
    CONFIG = 10
    CONNECTION = 11
    APPROVAL_DENIED = 12
    EXECUTION = 13
    DEPLOY_SQL_MISSING = 14
    CONCURRENT = 15
    TIMEOUT = 16
    LOCK_RISK = 17
    INTERRUPTED = 130


class Marker(enum.Enum):
    """What kind of failure an error is; one error may carry several."""

    INTERRUPTED = "interrupted"
    CONCURRENT = "concurrent deployment in progress"
    CONFIG = "invalid configuration"
    DEPLOY_SQL_MISSING = "deploy.sql not found"
    APPROVAL_DENIED = "approval denied"
    CONNECTION = "connection failed"
    UNSUPPORTED_AUTH = "unsupported authentication method"
    DEADLINE = "deadline exceeded"
    EXECUTION = "execution failed"
    LOCK_RISK = "lock risk"
    USAGE = "usage error"


# First match wins; anything else is Exit.GENERAL.
_CLASSIFICATION: tuple[tuple[Marker, Exit], ...] = (
    (Marker.INTERRUPTED, Exit.INTERRUPTED),
    (Marker.CONCURRENT, Exit.CONCURRENT),
    (Marker.CONFIG, Exit.CONFIG),
    (Marker.DEPLOY_SQL_MISSING, Exit.DEPLOY_SQL_MISSING),
    (Marker.APPROVAL_DENIED, Exit.APPROVAL_DENIED),
    (Marker.CONNECTION, Exit.CONNECTION),
    (Marker.UNSUPPORTED_AUTH, Exit.CONFIG),
    (Marker.DEADLINE, Exit.TIMEOUT),
    (Marker.EXECUTION, Exit.EXECUTION),
    (Marker.LOCK_RISK, Exit.LOCK_RISK),
    (Marker.USAGE, Exit.USAGE),
)


class PgDiagnostics(SimpleNamespace):
    """The fields of a PostgreSQL ErrorResponse/NoticeResponse that pgmi reports.

    A SimpleNamespace rather than a dataclass: this module is imported by every command,
    and `dataclasses` (with `inspect` and `ast` behind it) would add ~10 ms to `pgmi version`.
    """

    severity: str
    sqlstate: str
    message: str
    detail: str
    hint: str
    where: str
    position: int | None  # 1-based character offset into the statement sent
    internal_position: int | None  # 1-based offset into internal_query
    internal_query: str

    def __init__(self, **fields: Any) -> None:
        super().__init__(**{**_EMPTY_DIAGNOSTICS, **fields})

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> PgDiagnostics:
        """Build from the single-letter protocol fields ('S', 'C', 'M', 'D', 'H', 'W', 'P', 'p', 'q')."""

        def num(key: str) -> int | None:
            value = fields.get(key)
            return int(value) if value and value.isdigit() else None

        return cls(
            severity=fields.get("S", ""),
            sqlstate=fields.get("C", ""),
            message=fields.get("M", ""),
            detail=fields.get("D", ""),
            hint=fields.get("H", ""),
            where=fields.get("W", ""),
            position=num("P"),
            internal_position=num("p"),
            internal_query=fields.get("q", ""),
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> PgDiagnostics | None:
        """Diagnostics of a pg8000 DatabaseError (its first arg is the field dict), else None."""
        args = getattr(exc, "args", ())
        if args and isinstance(args[0], dict) and "C" in args[0]:
            return cls.from_fields(args[0])
        return None


_EMPTY_DIAGNOSTICS: dict[str, Any] = {
    "severity": "", "sqlstate": "", "message": "", "detail": "", "hint": "", "where": "", "position": None,
    "internal_position": None, "internal_query": "",
}


class PgmiError(Exception):
    """A failure with a user-facing one-line message and the markers that classify it.

    `details` holds extra structured facts for the --json envelope (e.g. `line`,
    `failedFile`); `pg` holds the server's diagnostics when the cause was a server error.
    """

    default_markers: tuple[Marker, ...] = ()
    #: Prefix the message carries (users and docs grep for it); added once, here.
    PREFIX = ""

    def __init__(
        self,
        message: str,
        *,
        markers: Iterable[Marker] = (),
        pg: PgDiagnostics | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if self.PREFIX and not message.startswith(self.PREFIX):
            message = self.PREFIX + message
        super().__init__(message)
        self.message = message
        self.markers: set[Marker] = set(self.default_markers) | set(markers)
        self.pg = pg
        self.details: dict[str, Any] = dict(details or {})
        # Extra lines printed after the message (LOCATION/LINE/caret blocks, remedies).
        self.trailer: list[str] = []

    def mark(self, *markers: Marker) -> PgmiError:
        self.markers.update(markers)
        return self

    def wrap(self, prefix: str) -> PgmiError:
        """Prefix the message (`prefix: message`), keeping markers and diagnostics."""
        self.message = f"{prefix}: {self.message}"
        self.args = (self.message,)
        return self

    def __str__(self) -> str:
        return self.message


class ConfigError(PgmiError):
    """Rejected before running user SQL (exit 10). The message names the file/flag/key.

    Messages read `invalid configuration: ...` (users and docs grep for that prefix); it is
    added here once, so raisers write only the specific part.
    """

    default_markers = (Marker.CONFIG,)
    PREFIX = "invalid configuration: "


class UsageError(PgmiError):
    """A bad command line (exit 2): unknown flag, bad flag value, missing argument."""

    default_markers = (Marker.USAGE,)
    PREFIX = "usage error: "


class ConnectionFailed(PgmiError):
    default_markers = (Marker.CONNECTION,)


class ExecutionFailed(PgmiError):
    default_markers = (Marker.EXECUTION,)


class LockRiskFound(PgmiError):
    """`--rehearse --fail-on-lock-risk`: the rehearsal succeeded but rewrote or exclusively locked a
    relation above the size threshold (exit 17, for CI gates)."""

    default_markers = (Marker.LOCK_RISK,)


class ApprovalDenied(PgmiError):
    default_markers = (Marker.APPROVAL_DENIED,)


class ConcurrentDeploy(PgmiError):
    default_markers = (Marker.CONCURRENT,)


class DeploySqlMissing(PgmiError):
    default_markers = (Marker.DEPLOY_SQL_MISSING,)


class DeadlineExceeded(PgmiError):
    default_markers = (Marker.DEADLINE,)


class Interrupted(PgmiError):
    default_markers = (Marker.INTERRUPTED,)


def exit_code(error: BaseException | None) -> Exit:
    """Map an error to its exit code (the documented first-match-wins classification)."""
    if error is None:
        return Exit.SUCCESS
    if isinstance(error, KeyboardInterrupt):
        return Exit.INTERRUPTED
    markers = error.markers if isinstance(error, PgmiError) else set()
    for marker, code in _CLASSIFICATION:
        if marker in markers:
            return code
    return Exit.GENERAL


def go_quote(text: str) -> str:
    """Double-quote like Go's %q, so messages read `database "app" does not exist`."""
    import json

    return json.dumps(text, ensure_ascii=False)


def printable(text: str, limit: int | None = None) -> str:
    """Someone else's text (a token endpoint's error, an MCP client's name, another session's
    query) as pgmi quotes it in its own messages: control and format characters, line breaks and
    lone surrogates written as escapes (`\\x1b`, `\\u202e`), so nothing reaches a terminal that
    renders it; with `limit`, cut to that many characters and marked with `…`."""
    cut = text if limit is None else text[:limit]
    if cut.isprintable():
        out = cut
    else:
        import unicodedata

        chars = []
        for ch in cut:
            if ch == " " or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
                chars.append(ch)
            elif ord(ch) < 0x100:
                chars.append(f"\\x{ord(ch):02x}")
            else:
                chars.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        out = "".join(chars)
    return out + ("…" if limit is not None and len(text) > limit else "")
