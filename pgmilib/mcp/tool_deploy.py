"""The `deploy` tool: one call of the typed deploy core, isolated from every other call.

Each call builds its own `DeployRequest` (the connection string and database of the
call, a private copy of the server's environment, the call's parameters) and its own
`Output`; the core merges the project's `.env` into that copy and scopes the secrets it
registers to the run, so two calls in one server never see each other's settings.
Nothing reads argv or changes `os.environ`.

Safety before anything connects: `overwrite` needs `confirmDatabaseName` equal to
`database` (exactly: `Orders` is not `orders`); the timeout must parse (the rule of
`--timeout`; when the call gives none, the project's pgmi.yaml `timeout`, then 3m, applies). Server notices are
kept for the result (the last 200 lines, each cut to 8 KiB, at most 256 KiB together, so the
answer stays bounded whatever the SQL raises) and still echoed to stderr whole. A client's `notifications/cancelled` cancels the
running statement on the server through the run's `Cancellation`.
"""

from __future__ import annotations

import collections
import io
import os
import sys
import threading
from typing import Any

from pgmilib.errors import PgmiError, go_quote
from pgmilib.mcp.tools import CallContext, Tool, ToolFailure, require
from pgmilib.output import Output

NOTICE_LIMIT = 200  # lines kept for the result
NOTICE_LINE_BYTES = 8 * 1024  # one kept line, UTF-8
NOTICE_BYTES = 256 * 1024  # all kept lines together

DEPLOY_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "project directory (contains deploy.sql)"},
        "connection": {"type": "string", "description": "connection string (URI or key=value) of the server"},
        "database": {"type": "string", "description": "target database (created if missing)"},
        "overwrite": {"type": "boolean", "description": "drop and recreate the database first (needs "
                                                        "confirmDatabaseName)"},
        "confirmDatabaseName": {"type": "string", "description": "must equal database when overwrite is true"},
        "timeout": {"type": "string", "description": "deadline for the whole deployment, e.g. 30s, 5m; 0 = none "
                                                     "(default: the project's pgmi.yaml timeout, else 3m)"},
        "maintenanceDatabase": {"type": "string", "description": "database used to create/drop the target "
                                                                 "(default postgres)"},
        "params": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "deployment parameters, like --param key=value"},
        "rehearse": {"type": "boolean", "description": "run the atomic head (migrations, tests) and roll it back, "
                                                       "like --rehearse; the result's `locks` lists what it locked "
                                                       "and rewrote (docs/LOCKS.md)"},
    },
    "required": ["path", "connection", "database"],
}
_NOTICES = {"notices": {"type": "array", "items": {"type": "string"}}, "noticesTruncated": {"type": "integer"}}
DEPLOY_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "filesLoaded": {"type": "integer"},
                   "testMacros": {"type": "integer"}, "durationMs": {"type": "integer"},
                   "database": {"type": "string"}, "rehearsed": {"type": "boolean"},
                   "locks": {"type": "array", "items": {"type": "object"}},
                   "relationsCreated": {"type": "integer"}, **_NOTICES},
    "required": ["status", "filesLoaded", "testMacros", "durationMs", "database", "notices"],
}


def _kept(line: str) -> tuple[str, int]:
    """The line redacted and cut to NOTICE_LINE_BYTES (on a character boundary, marked), and its size.

    Only a prefix is redacted, not the megabytes that are cut off anyway: a secret that starts
    before the cut ends within the 4 KiB margin."""
    from pgmilib.redact import redact

    size = len(line.encode("utf-8", "replace"))
    if size <= NOTICE_LINE_BYTES:
        text = redact(line)
        return text, len(text.encode("utf-8", "replace"))
    data = redact(line[:NOTICE_LINE_BYTES + 4096]).encode("utf-8", "replace")
    text = f"{data[:NOTICE_LINE_BYTES].decode('utf-8', 'ignore')}… [cut: {size} bytes in all]"
    return text, len(text.encode("utf-8"))


class NoticeOutput(Output):
    """Output that also keeps the last notice lines of this run, bounded in count and bytes."""

    def __init__(self, stderr: Any) -> None:
        super().__init__(json_mode=True, stdout=io.StringIO(), stderr=stderr)
        self._kept: collections.deque[tuple[str, int]] = collections.deque()
        self._bytes = 0
        self._seen = 0
        self._lock = threading.Lock()

    def notice(self, diag: Any) -> None:
        lines = [diag.message] + [f"{label}: {value}" for label, value in (("DETAIL", diag.detail),
                                                                            ("HINT", diag.hint)) if value]
        with self._lock:
            for line in lines:
                kept = _kept(line)
                self._kept.append(kept)
                self._bytes += kept[1]
                self._seen += 1
                while len(self._kept) > NOTICE_LIMIT or self._bytes > NOTICE_BYTES:
                    self._bytes -= self._kept.popleft()[1]
        super().notice(diag)

    def captured(self) -> dict[str, Any]:
        with self._lock:
            notices = [line for line, _ in self._kept]
            dropped = self._seen - len(notices)
        result: dict[str, Any] = {"notices": notices}
        if dropped:
            result["noticesTruncated"] = dropped
        return result


def _check_safety(arguments: dict[str, Any]) -> None:
    database = arguments["database"]
    if arguments.get("overwrite"):
        confirm = arguments.get("confirmDatabaseName")
        # A refused safety check is a general error (exit code 1), as in the original; a
        # malformed argument stays a usage error (2).
        if not confirm:
            raise PgmiError(f"overwrite drops and recreates database {go_quote(database)}: pass "
                             f"confirmDatabaseName={go_quote(database)} to confirm; nothing was deployed or dropped")
        if confirm != database:
            raise PgmiError(f"confirmDatabaseName {go_quote(confirm)} does not match database {go_quote(database)}: "
                             "nothing was deployed or dropped")


def _timeout(arguments: dict[str, Any]) -> float | None:
    """The call's explicit timeout in seconds (None: not given, so pgmi.yaml's, then 3m, applies).

    Parsed here, once, by the same rule as `--timeout`: a bad value is refused before anything
    connects, and the deploy core takes the parsed seconds as they are."""
    from pgmilib.config import TIMEOUT_ARGUMENT, parse_timeout

    text = arguments.get("timeout")
    return None if text in (None, "") else parse_timeout(text, TIMEOUT_ARGUMENT)


def deploy_tool(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    require(arguments, "path", "connection", "database")
    _check_safety(arguments)
    timeout = _timeout(arguments)
    from pgmilib.deploy import Cancellation, ConnectionFlags, DeployRequest, deploy
    from pgmilib.observe.notify import mcp_watch
    from pgmilib.project.root import cache_dir_from, max_file_size_from

    flags = ConnectionFlags(connection=arguments["connection"], database=arguments["database"],
                            maintenance_database=arguments.get("maintenanceDatabase") or "")
    environ = dict(os.environ)
    request = DeployRequest(
        project_path=arguments["path"],
        connection=flags,
        environ=environ,  # a private copy: the core merges this project's .env into it
        max_file_size=max_file_size_from(environ),
        cache_dir=cache_dir_from(environ),
        params=dict(arguments.get("params") or {}),
        timeout=timeout,
        overwrite=bool(arguments.get("overwrite")),
        rehearse=bool(arguments.get("rehearse")),
        force=True,  # the confirmation is confirmDatabaseName, checked above
        watch=mcp_watch(context.meta, context.notify),  # notifications/progress with a progressToken
    )
    out = NoticeOutput(sys.stderr)
    cancel = Cancellation()
    context.on_cancel(cancel.cancel)
    result = deploy(request, out, cancel=cancel)
    captured = out.captured()
    if result.ok:
        envelope = result.envelope
        rehearsal = {k: envelope[k] for k in ("rehearsed", "locks", "relationsCreated") if k in envelope}
        return {"status": "success", "filesLoaded": int(envelope.get("filesLoaded", result.files_loaded)),
                "testMacros": int(envelope.get("testMacros", result.test_macros)),
                "durationMs": int(envelope.get("durationMs", int(result.duration * 1000))),
                "database": envelope.get("database", result.database), **rehearsal, **captured}
    # The envelope, not the error object: the core redacted it with this run's own secrets,
    # which are out of scope (and unknown) once deploy() has returned.
    envelope = dict(result.envelope)
    detail: dict[str, Any] = {"message": envelope.pop("error", "") or result.error_text or "deploy failed",
                              "exitCode": int(result.exit_code)}
    envelope.pop("status", None)
    envelope.pop("exitCode", None)
    raise ToolFailure(result.error_text or detail["message"], {**detail, **envelope, **captured})


TOOLS = (
    Tool("deploy", "Deploy a pgmi project into a database: connect, load the project into the session, run its "
         "deploy.sql (tests included), like `pgmi deploy PATH --connection ... -d DATABASE --json`. With "
         "overwrite=true the database is dropped and recreated first, which requires confirmDatabaseName equal "
         "to database. Returns the outcome and the server notices; a failure is an isError result with exit "
         "code, SQLSTATE and failing file.", deploy_tool, input_schema=DEPLOY_INPUT, output_schema=DEPLOY_OUTPUT),
)
