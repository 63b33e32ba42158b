"""The tool registry: schemas, argument checks, and the shapes of results and errors.

A tool handler takes the checked arguments and a `CallContext` and returns a string
(sent as text content) or a dict (sent as indented JSON text plus `structuredContent`).
It fails by raising: a `PgmiError` becomes an `isError` result whose text is exactly what
the CLI would print and whose `structuredContent` is the error detail; `ToolFailure` lets
a tool add fields to that detail (the deploy tool's notices); anything else is a bug,
reported as an `isError` result with `panic: true` and the traceback, and the session
goes on.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from pgmilib.errors import Exit, Marker, PgmiError, exit_code
from pgmilib.mcp.jsonrpc import INVALID_PARAMS, ProtocolError
from pgmilib.output import format_error
from pgmilib.records import field, record
from pgmilib.redact import redact

#: The detail of a failed tool call; published in every structured tool's outputSchema.
ERROR_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "exitCode": {"type": "integer"},
        "sqlstate": {"type": "string"},
        "detail": {"type": "string"},
        "hint": {"type": "string"},
        "where": {"type": "string"},
        "failedFile": {"type": "string"},
        "script": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "sourceLine": {"type": "string"},
        "scriptExpanded": {"type": "boolean"},
        "panic": {"type": "boolean"},
        "stack": {"type": "string"},
    },
    "required": ["message", "exitCode"],
}
_DETAIL_KEYS = ("failedFile", "script", "line", "column", "sourceLine", "scriptExpanded")


class CallContext:
    """Per-call state a tool can use: cancellation requested by the client, the request's `_meta`
    and `notify` (sends a JSON-RPC notification to the client; None when there is no client)."""

    def __init__(self, notify: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.notify = notify
        self.meta: dict[str, Any] = {}
        self.cancelled = threading.Event()
        self._callbacks: list[Callable[[], Any]] = []
        self._lock = threading.Lock()

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Run `callback` when the client cancels (at once if it already did)."""
        with self._lock:
            self._callbacks.append(callback)
            already = self.cancelled.is_set()
        if already:
            callback()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()


class ToolFailure(Exception):
    """A failed call with a ready text and structured detail (e.g. a DeployResult's)."""

    def __init__(self, text: str, structured: dict[str, Any]) -> None:
        super().__init__(text)
        self.text = text
        self.structured = structured


Handler = Callable[[dict[str, Any], CallContext], "str | dict[str, Any]"]


@record(frozen=True)
class Tool:
    name: str
    description: str
    handler: Handler
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None  # the success shape; None for text tools

    def listing(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "description": self.description, "inputSchema": self.input_schema}
        if self.output_schema is not None:
            entry["outputSchema"] = {"type": "object", "anyOf": [self.output_schema, ERROR_DETAIL_SCHEMA]}
        return entry


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "boolean": (bool,), "object": (dict,),
                                             "integer": (int,), "array": (list,)}


def _unicode(value: Any) -> bool:
    """False for a string holding a lone surrogate (JSON's "\\ud800"): no file name, SQL text or
    message can carry it. Checked for strings and for the string values of an object."""
    values = value.values() if isinstance(value, dict) else (value,)
    for item in values:
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def check_arguments(tool: Tool, arguments: Any) -> dict[str, Any]:
    """Types are a protocol matter (-32602); a missing required argument is a tool error (usage)."""
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ProtocolError(INVALID_PARAMS, "invalid params: arguments must be an object")
    properties = tool.input_schema.get("properties", {})
    for name, value in arguments.items():
        spec = properties.get(name)
        if spec is None or value is None:
            continue
        if not _unicode(value):
            raise ProtocolError(INVALID_PARAMS, f"invalid params: argument '{name}' is not valid Unicode "
                                                "(it holds a lone surrogate)")
        expected = _JSON_TYPES.get(spec.get("type", ""), (object,))
        if not isinstance(value, expected) or (spec.get("type") == "integer" and isinstance(value, bool)):
            raise ProtocolError(INVALID_PARAMS, f"invalid params: argument '{name}' must be of type {spec['type']}")
        if spec.get("type") == "object" and "additionalProperties" in spec:
            inner = _JSON_TYPES.get(spec["additionalProperties"].get("type", ""), (object,))
            bad = [k for k, v in value.items() if not isinstance(v, inner)]
            if bad:
                raise ProtocolError(INVALID_PARAMS, f"invalid params: '{name}.{bad[0]}' must be of type "
                                                    f"{spec['additionalProperties']['type']}")
    return arguments


def rejected(message: str) -> PgmiError:
    """A bad tool argument: exit code 2 (usage), worded without the CLI's "usage error:" prefix."""
    return PgmiError(message, markers=(Marker.USAGE,))


def require(arguments: dict[str, Any], *names: str) -> None:
    for name in names:
        value = arguments.get(name)
        if value is None or value == "":
            raise rejected(f"{name} is required")


def error_detail(error: BaseException) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": redact(str(error) or type(error).__name__), "exitCode": int(exit_code(error))}
    if isinstance(error, PgmiError):
        if error.pg is not None:
            for key in ("sqlstate", "detail", "hint", "where"):
                value = getattr(error.pg, key)
                if value:
                    detail[key] = redact(value)
        for key in _DETAIL_KEYS:
            value = error.details.get(key)
            if value not in (None, ""):
                detail[key] = redact(value) if isinstance(value, str) else value
    return detail


def success(value: str | dict[str, Any]) -> dict[str, Any]:
    import json

    if isinstance(value, str):
        return {"content": [{"type": "text", "text": value}]}
    return {"content": [{"type": "text", "text": json.dumps(value, indent=2, ensure_ascii=False)}],
            "structuredContent": value}


def failure(text: str, structured: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": True}


def call(tool: Tool, arguments: Any, context: CallContext) -> dict[str, Any]:
    """Run a tool; every outcome but a bad-params protocol error is a tool result."""
    checked = check_arguments(tool, arguments)
    try:
        return success(tool.handler(checked, context))
    except ToolFailure as failed:
        return failure(failed.text, failed.structured)
    except PgmiError as error:
        return failure(format_error(error), error_detail(error))
    except Exception as error:  # noqa: BLE001 -- a bug in a tool must not end the session
        stack = redact("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        return failure(f"panic: {redact(str(error))}",
                       {"message": redact(f"panic: {error}"), "exitCode": int(Exit.PANIC), "panic": True,
                        "stack": stack})
