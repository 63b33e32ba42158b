"""The MCP tools' argument checks, each pinned by a test that fails when the check is broken.

Types are a protocol matter (JSON-RPC -32602, nothing runs); a missing or empty required argument,
an unconfirmed overwrite or a bad timeout is a tool error with exit code 2 before anything
connects; error details never carry a secret.
"""

from __future__ import annotations

import pytest

from pgmilib.errors import Exit, Marker, PgDiagnostics, PgmiError, exit_code
from pgmilib.mcp.jsonrpc import INVALID_PARAMS, ProtocolError
from pgmilib.mcp.tool_deploy import deploy_tool
from pgmilib.mcp.tools import Tool, check_arguments, error_detail, rejected, require
from pgmilib.redact import REDACTED, register_secret

SCHEMA = {"type": "object", "properties": {
    "s": {"type": "string"}, "b": {"type": "boolean"}, "o": {"type": "object"}, "i": {"type": "integer"},
    "a": {"type": "array"}, "p": {"type": "object", "additionalProperties": {"type": "string"}},
    "free": {"description": "no type"},
}}
TOOL = Tool(name="t", description="d", handler=lambda arguments, context: "", input_schema=SCHEMA)


def test_arguments_of_the_right_types_pass_unchanged():
    good = {"s": "x", "b": False, "o": {"k": 1}, "i": 3, "a": [1], "p": {"k": "v"}, "free": 1.5, "unknown": [1],
            "s2": None}
    assert check_arguments(TOOL, good) is good
    assert check_arguments(TOOL, {"s": None, "i": None}) == {"s": None, "i": None}  # null = not given
    assert check_arguments(TOOL, None) == {}
    assert check_arguments(Tool(name="n", description="", handler=TOOL.handler), {"x": 1}) == {"x": 1}


@pytest.mark.parametrize(("name", "value", "kind"), [
    ("s", 1, "string"), ("s", ["x"], "string"), ("b", "true", "boolean"), ("b", 1, "boolean"),
    ("o", [], "object"), ("o", "x", "object"), ("i", True, "integer"), ("i", False, "integer"), ("i", "1", "integer"),
    ("i", 1.0, "integer"), ("a", {}, "array"), ("a", "x", "array"),
])
def test_a_wrong_type_is_a_protocol_error_naming_the_argument(name, value, kind):
    with pytest.raises(ProtocolError) as info:
        check_arguments(TOOL, {"s": "fine", name: value})
    assert info.value.code == INVALID_PARAMS
    assert info.value.message == f"invalid params: argument '{name}' must be of type {kind}"


def test_every_argument_is_checked_after_an_unknown_or_null_one():
    for first in ({"unknown": 1}, {"s": None}, {"free": "x"}):
        with pytest.raises(ProtocolError):
            check_arguments(TOOL, {**first, "i": "not a number"})


def test_object_values_are_checked_too():
    with pytest.raises(ProtocolError) as info:
        check_arguments(TOOL, {"p": {"ok": "v", "bad": 1}})
    assert info.value.code == INVALID_PARAMS and info.value.message == "invalid params: 'p.bad' must be of type string"
    check_arguments(TOOL, {"o": {"any": 1}})  # no additionalProperties: anything goes
    untyped = Tool(name="u", description="", handler=TOOL.handler,
                   input_schema={"properties": {"m": {"type": "object", "additionalProperties": {}}}})
    assert check_arguments(untyped, {"m": {"a": 1, "b": [2]}}) == {"m": {"a": 1, "b": [2]}}


@pytest.mark.parametrize("arguments", [[], "x", 1, True])
def test_arguments_that_are_not_an_object(arguments):
    with pytest.raises(ProtocolError) as info:
        check_arguments(TOOL, arguments)
    assert info.value.code == INVALID_PARAMS and info.value.message == "invalid params: arguments must be an object"


def test_require():
    require({"a": "x", "b": 0, "c": False}, "a", "b", "c")
    for arguments in ({}, {"a": None}, {"a": ""}):
        with pytest.raises(PgmiError) as info:
            require({**arguments, "z": "ok"}, "z", "a")
        assert str(info.value) == "a is required" and exit_code(info.value) == Exit.USAGE
    error = rejected("bad thing")
    assert str(error) == "bad thing" and error.markers == {Marker.USAGE}


@pytest.mark.parametrize(("extra", "message"), [
    ({"overwrite": True}, 'overwrite drops and recreates database "Orders": pass confirmDatabaseName="Orders"'),
    ({"overwrite": True, "confirmDatabaseName": ""}, "pass confirmDatabaseName="),
    ({"overwrite": True, "confirmDatabaseName": "orders"}, 'confirmDatabaseName "orders" does not match database'),
    ({"timeout": "soon"}, "invalid timeout: "),
    ({"timeout": "5"}, "invalid timeout: "),
])
def test_deploy_tool_refuses_before_connecting(extra, message):
    arguments = {"path": "/nonexistent", "connection": "postgresql://u:Pw-Never-Used@127.0.0.1:1/x",
                 "database": "Orders", **extra}
    with pytest.raises(PgmiError) as info:
        deploy_tool(arguments, None)  # no context: it must fail before it would need one
    # A refused confirmation is a general error (1), as the original's MCP server reports it;
    # a bad argument value stays a usage error (2).
    expected = Exit.GENERAL if "overwrite" in extra else Exit.USAGE
    assert message in str(info.value) and exit_code(info.value) == expected
    if "overwrite" in extra:
        assert str(info.value).endswith("nothing was deployed or dropped")


@pytest.mark.parametrize("missing", ["path", "connection", "database"])
def test_deploy_tool_required_arguments(missing):
    arguments = {"path": "/p", "connection": "postgresql://h/x", "database": "d", missing: ""}
    with pytest.raises(PgmiError) as info:
        deploy_tool(arguments, None)
    assert str(info.value) == f"{missing} is required"


def test_error_detail_carries_no_secret():
    register_secret("Detail-Secret-42")
    error = PgmiError("failed with Detail-Secret-42", markers=(Marker.EXECUTION,),
                      pg=PgDiagnostics(sqlstate="P0001", detail="d Detail-Secret-42", hint="h Detail-Secret-42",
                                       where="w Detail-Secret-42", message="m"),
                      details={"failedFile": "./Detail-Secret-42.sql", "line": 3, "column": None, "script": "",
                               "sourceLine": "x", "other": "not copied"})
    detail = error_detail(error)
    assert detail == {"message": f"failed with {REDACTED}", "exitCode": 13, "sqlstate": "P0001",
                      "detail": f"d {REDACTED}", "hint": f"h {REDACTED}", "where": f"w {REDACTED}",
                      "failedFile": f"./{REDACTED}.sql", "line": 3, "sourceLine": "x"}
    assert error_detail(RuntimeError()) == {"message": "RuntimeError", "exitCode": 1}
    assert error_detail(PgmiError("x", pg=PgDiagnostics(sqlstate="", detail=""))) == {"message": "x", "exitCode": 1}


@pytest.mark.parametrize("timeout", ["5s", "", "0", None])
def test_deploy_tool_accepts_valid_or_absent_timeouts(timeout, tmp_path):
    from pgmilib.mcp.tools import CallContext

    arguments = {"path": str(tmp_path / "missing"), "connection": "postgresql://u@127.0.0.1:1/x", "database": "d",
                 "timeout": timeout}
    with pytest.raises(Exception) as info:  # it gets past the checks and fails on the missing project
        deploy_tool(arguments, CallContext())
    assert "invalid timeout" not in str(info.value) and "missing" in str(info.value)


@pytest.mark.parametrize(("extra", "message"), [
    ({"overwrite": True}, ('overwrite drops and recreates database "Orders": pass confirmDatabaseName="Orders" to '
                          "confirm; nothing was deployed or dropped")),
    ({"overwrite": True, "confirmDatabaseName": "orders"},
     'confirmDatabaseName "orders" does not match database "Orders": nothing was deployed or dropped'),
    ({"timeout": "5 parsecs"}, 'invalid timeout: time: unknown unit " parsecs" in duration "5 parsecs"'),
])
def test_deploy_tool_refusals_word_for_word(extra, message):
    arguments = {"path": "/nonexistent", "connection": "postgresql://u@127.0.0.1:1/x", "database": "Orders"}
    with pytest.raises(PgmiError) as info:
        deploy_tool({**arguments, **extra}, None)  # refused before it would need a call context
    assert str(info.value) == message
    assert info.value.markers == ({Marker.USAGE} if "timeout" in extra else set())


@pytest.mark.parametrize("extra", [{}, {"overwrite": False, "confirmDatabaseName": "other"},
                                   {"overwrite": True, "confirmDatabaseName": "Orders", "timeout": "1m30s"},
                                   {"timeout": ""}, {"timeout": None}])
def test_deploy_tool_safety_passes_what_is_confirmed(extra):
    from pgmilib.mcp.tool_deploy import _check_safety

    _check_safety({"database": "Orders", **extra})  # no refusal


@pytest.mark.parametrize(("arguments", "name"), [
    ({"s": "a\ud800b"}, "s"),  # a lone surrogate in a string argument
    ({"s": "fine", "p": {"k": "ok", "x": "\udfff"}}, "p"),  # or in a string value of an object
])
def test_arguments_with_a_lone_surrogate_are_refused(arguments, name):
    with pytest.raises(ProtocolError) as info:
        check_arguments(TOOL, arguments)
    assert info.value.code == INVALID_PARAMS
    assert info.value.message == f"invalid params: argument '{name}' is not valid Unicode (it holds a lone surrogate)"


def test_valid_unicode_arguments_pass_the_surrogate_check():
    good = {"s": "café 😀", "p": {"k": "名前", "n": "x"}, "o": {"n": 1, "t": "\u00e9"}, "i": 3}
    assert check_arguments(TOOL, good) is good
