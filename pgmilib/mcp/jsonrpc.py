"""JSON-RPC 2.0 framing: turn one input line into a request, or into the error to answer.

The rules (ai-and-mcp.md §6): a line that is not JSON gets a -32700 answer with id null
and the session goes on; a wrong `jsonrpc` version or a malformed id gets -32600 (the id
of the answer is null when the id itself was the problem); a message without `id` is a
notification and never gets an answer, even when it is invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_MISSING = object()


@dataclass
class Request:
    method: str
    id: Any = None  # str | int | float; meaningful only when not a notification
    params: Any = field(default_factory=dict)
    notification: bool = False


class ProtocolError(Exception):
    """A JSON-RPC error to answer with (`code`, `message`, optional `data`)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def response(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: Any, error: ProtocolError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def encode(message: dict[str, Any]) -> bytes:
    """One line of output: compact JSON, no embedded newlines (json escapes them), LF-terminated."""
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _valid_id(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def parse(line: bytes) -> Request | dict[str, Any] | None:
    """A Request, an error response to send back, or None (nothing to answer)."""
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return error_response(None, ProtocolError(PARSE_ERROR, f"parse error: {error}"))
    if not isinstance(message, dict):
        return error_response(None, ProtocolError(INVALID_REQUEST, "invalid request: expected a JSON object"))
    raw_id = message.get("id", _MISSING)
    notification = raw_id is _MISSING
    if message.get("jsonrpc") != "2.0":
        if notification:
            return None
        answer_id = raw_id if _valid_id(raw_id) else None
        return error_response(answer_id, ProtocolError(INVALID_REQUEST, 'invalid request: jsonrpc must be "2.0"'))
    if not notification and not _valid_id(raw_id):
        return error_response(None, ProtocolError(INVALID_REQUEST, "invalid request: id must be a string or number"))
    method = message.get("method")
    if not isinstance(method, str) or not method:
        if notification:
            return None
        return error_response(raw_id, ProtocolError(INVALID_REQUEST, "invalid request: method must be a string"))
    params = message.get("params", {})
    return Request(method=method, id=None if notification else raw_id, params=params, notification=notification)
