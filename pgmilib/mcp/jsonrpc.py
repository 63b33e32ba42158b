"""JSON-RPC 2.0 framing: the one reader (`parse`) and the one writer (`encode`) of `pgmi serve`.

Neither can raise, whatever the bytes: the reader turns every line into a request or into
the error to answer, the writer turns every message into one line of strict JSON.

The reader's rules: a line that is not JSON gets a -32700 answer with id
null and the session goes on; a wrong `jsonrpc` version or a malformed id gets -32600 (the
id of the answer is null when the id itself was the problem); a message without `id` is a
notification and never gets an answer, even when it is invalid. What Python's json module
would accept but JSON does not is a parse error too: `NaN`/`Infinity`, a number too large
for a float (`1e400` would become infinity), an integer of more than 4,300 digits (Python
cannot print it back), nesting deeper than the interpreter's recursion allows.

The writer's rules: compact JSON, one line, LF-terminated, UTF-8; never `NaN` (allow_nan is
off); a lone surrogate (which the client can send as `"\\ud800"`) is written back as the
same escape, so ids round-trip exactly and the line stays valid UTF-8; a message that cannot
be encoded at all (a bug) becomes an internal-error answer for the same id.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pgmilib.errors import printable
from pgmilib.records import field, record

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: CPython's default limit for int <-> str conversion: a longer integer could not be written back.
MAX_INT_DIGITS = 4300
_MISSING = object()


@record
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


# ---- the writer ---------------------------------------------------------------------------

def _dumps(message: Any, *, ascii_only: bool) -> str:
    return json.dumps(message, ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"))


def _to_line(message: Any) -> bytes:
    text = _dumps(message, ascii_only=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: \uXXXX escapes keep it exact and the line valid UTF-8
        return _dumps(message, ascii_only=True).encode("ascii") + b"\n"


def encode(message: dict[str, Any]) -> bytes:
    """One line of output: compact strict JSON (json escapes newlines), LF-terminated. Never raises."""
    try:
        return _to_line(message)
    except Exception as error:  # noqa: BLE001 -- a value JSON cannot hold (a bug): answer that instead
        request_id = message.get("id") if isinstance(message, dict) else None
        try:
            _to_line(request_id)
        except Exception:  # noqa: BLE001 -- not even the id can be written: JSON-RPC's null
            request_id = None
        problem = ProtocolError(INTERNAL_ERROR, f"internal error: the answer is not encodable as JSON "
                                                f"({type(error).__name__})")
        return _to_line(error_response(request_id, problem))


# ---- the reader ---------------------------------------------------------------------------

class _NotJson(ValueError):
    """What json.loads accepts but RFC 8259 JSON does not (or Python could not write back)."""


def _constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NotJson(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"number {text[:40]} is out of range")
    return value


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_float)


def _valid_id(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def parse(line: bytes) -> Request | dict[str, Any] | None:
    """A Request, an error response to send back, or None (nothing to answer). Never raises."""
    try:
        message = _loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError and _NotJson are ValueErrors
        return error_response(None, ProtocolError(PARSE_ERROR, f"parse error: {str(error)[:200]}"))
    except RecursionError:
        return error_response(None, ProtocolError(PARSE_ERROR, "parse error: nested too deeply"))
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


def id_key(request_id: Any) -> tuple[str, Any] | None:
    """The in-flight key of a valid id (None for anything else, e.g. a cancel's `requestId: [1]`).

    Ids 1 and "1" are different requests; 1 and 1.0 are the same number (Python's int/float
    equality and hash are exact, with no overflow for 10**400).
    """
    if not _valid_id(request_id):
        return None
    return ("s", request_id) if isinstance(request_id, str) else ("n", request_id)


_SHOWN_LIMIT = 200


def shown(text: str) -> str:
    """A client's text as pgmi quotes it in its own messages: escaped (errors.printable) and at
    most 200 characters (a 50 MB method name is not echoed back whole)."""
    return printable(text, limit=_SHOWN_LIMIT)
