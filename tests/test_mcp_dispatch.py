"""The MCP server without a client library: framing, dispatch rules and bad input.

Each test feeds raw lines to `Server` over in-memory byte streams and reads back the
lines it wrote, so what is asserted is exactly what a client would receive on stdout.
"""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from pgmilib import __version__
from pgmilib.mcp.dispatch import Dispatcher, all_tools
from pgmilib.mcp.server import Server
from pgmilib.mcp.tools import CallContext, Tool

TOOL_NAMES = ["ai_contract", "ai_overview", "ai_skill", "ai_skills", "deploy", "init", "metadata_plan",
              "metadata_validate", "templates_list"]


def serve(*lines: str | bytes, dispatcher: Dispatcher | None = None) -> list[dict]:
    """Run the server over these input lines to EOF; the output lines, decoded."""
    data = b"".join(line if isinstance(line, bytes) else line.encode() + b"\n" for line in lines)
    stdout = io.BytesIO()
    assert Server(io.BytesIO(data), stdout, dispatcher).serve() == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def rpc(method: str, params: dict | None = None, id: object = 1) -> str:
    message = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message)


def call(name: str, arguments: dict | None = None, id: object = 1) -> dict:
    [answer] = serve(rpc("tools/call", {"name": name, "arguments": arguments or {}}, id))
    return answer


# ---- protocol ---------------------------------------------------------------------------

@pytest.mark.parametrize("requested, answered", [("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-03-26"),
                                                 ("2024-11-05", "2024-11-05"), ("1999-01-01", "2025-06-18"),
                                                 ("", "2025-06-18")])
def test_initialize_negotiates_the_version(requested, answered):
    [answer] = serve(rpc("initialize", {"protocolVersion": requested, "capabilities": {}}))
    assert answer == {"jsonrpc": "2.0", "id": 1, "result": {
        "protocolVersion": answered, "capabilities": {"tools": {}},
        "serverInfo": {"name": "pgmi", "version": __version__}}}


def test_initialize_without_protocol_version_is_invalid_params():
    [answer] = serve(rpc("initialize", {"capabilities": {}}))
    assert answer["error"] == {"code": -32602, "message": "missing required parameter: protocolVersion"}


def test_ping_and_notifications():
    answers = serve(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}),
                    json.dumps({"jsonrpc": "2.0", "method": "tools/list"}),  # no id: a notification, no answer
                    rpc("ping", id="p"))
    assert answers == [{"jsonrpc": "2.0", "id": "p", "result": {}}]


def test_invalid_json_line_answers_and_keeps_serving():
    answers = serve("{not json", rpc("ping", id=2))
    assert answers[0]["id"] is None and answers[0]["error"]["code"] == -32700
    assert answers[0]["error"]["message"].startswith("parse error: ")
    assert answers[1] == {"jsonrpc": "2.0", "id": 2, "result": {}}


def test_invalid_utf8_is_a_parse_error():
    [answer] = serve(b'{"jsonrpc":"2.0","id":1,"method":"\xff"}\n')
    assert answer["error"]["code"] == -32700 and answer["id"] is None


def test_wrong_jsonrpc_version():
    answers = serve(json.dumps({"jsonrpc": "1.0", "id": 5, "method": "ping"}),
                    json.dumps({"jsonrpc": "1.0", "method": "ping"}),  # a notification: silence
                    json.dumps({"id": 6, "method": "ping"}))
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(5, -32600), (6, -32600)]


@pytest.mark.parametrize("bad_id", [None, True, False, {"a": 1}, [1]])
def test_id_of_a_wrong_type(bad_id):
    [answer] = serve(json.dumps({"jsonrpc": "2.0", "id": bad_id, "method": "ping"}))
    assert answer == {"jsonrpc": "2.0", "id": None,
                      "error": {"code": -32600, "message": "invalid request: id must be a string or number"}}


def test_string_and_number_ids_round_trip():
    answers = serve(rpc("ping", id="abc"), rpc("ping", id=7), rpc("ping", id=1.5))
    assert [a["id"] for a in answers] == ["abc", 7, 1.5]


def test_unknown_method():
    [answer] = serve(rpc("resources/list"))
    assert answer == {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "method not found: resources/list"}}


def test_non_object_messages():
    answers = serve("[1, 2]", "42", '"text"')
    assert [a["error"]["code"] for a in answers] == [-32600, -32600, -32600]


def test_blank_lines_ignored_and_last_line_without_newline_handled():
    answers = serve("", "   ", rpc("ping", id=1).encode())  # no trailing newline
    assert answers == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


def test_one_megabyte_lines():
    padding = "x" * (1024 * 1024)
    big_valid = json.dumps({"jsonrpc": "2.0", "id": "big", "method": "ping", "params": {"pad": padding}})
    big_garbage = "{" + padding
    answers = serve(big_valid, big_garbage, rpc("ping", id="after"))
    assert answers[0] == {"jsonrpc": "2.0", "id": "big", "result": {}}
    assert answers[1]["error"]["code"] == -32700 and len(json.dumps(answers[1])) < 10_000
    assert answers[2]["id"] == "after"


# ---- tools ------------------------------------------------------------------------------

def test_tools_list_sorted_with_schemas():
    [answer] = serve(rpc("tools/list"))
    tools = answer["result"]["tools"]
    assert [t["name"] for t in tools] == TOOL_NAMES
    for tool in tools:
        assert tool["description"] and tool["inputSchema"]["type"] == "object"
        if "outputSchema" in tool:
            assert tool["outputSchema"]["type"] == "object" and len(tool["outputSchema"]["anyOf"]) == 2
    by_name = {t["name"]: t for t in tools}
    assert "outputSchema" not in by_name["ai_overview"] and "outputSchema" not in by_name["ai_skill"]
    assert by_name["deploy"]["inputSchema"]["required"] == ["path", "connection", "database"]
    assert by_name["ai_skill"]["inputSchema"]["required"] == ["name"]


def test_unknown_tool_is_invalid_params():
    answer = call("drop_everything")
    assert answer["error"] == {"code": -32602, "message": "unknown tool: drop_everything"}


def test_tools_call_without_name():
    [answer] = serve(rpc("tools/call", {"arguments": {}}))
    assert answer["error"]["code"] == -32602


def test_argument_of_a_wrong_type_is_invalid_params():
    answer = call("metadata_plan", {"path": 5})
    assert answer["error"] == {"code": -32602, "message": "invalid params: argument 'path' must be of type string"}
    answer = call("deploy", {"path": "p", "connection": "c", "database": "d", "params": {"k": 1}})
    assert answer["error"]["code"] == -32602 and "params.k" in answer["error"]["message"]


@pytest.mark.parametrize("tool, arguments, missing", [
    ("ai_skill", {}, "name"), ("ai_skill", {"name": ""}, "name"), ("metadata_plan", {}, "path"),
    ("metadata_validate", {}, "path"), ("init", {}, "path"),
    ("deploy", {"connection": "c", "database": "d"}, "path"),
    ("deploy", {"path": "p", "database": "d"}, "connection"),
    ("deploy", {"path": "p", "connection": "c"}, "database"),
])
def test_missing_required_argument_is_a_tool_error(tool, arguments, missing):
    result = call(tool, arguments)["result"]
    assert result["isError"] is True
    assert result["content"] == [{"type": "text", "text": f"{missing} is required"}]
    assert result["structuredContent"] == {"message": f"{missing} is required", "exitCode": 2}


def test_text_tools():
    overview = call("ai_overview")["result"]
    assert overview["content"][0]["text"].startswith("# pgmi — guide for AI coding assistants")
    assert "structuredContent" not in overview and "isError" not in overview
    skill = call("ai_skill", {"name": "pgmi-debug-deploy"})["result"]
    assert skill["content"][0]["text"].startswith("---\nname: pgmi-debug-deploy")
    contract = json.loads(call("ai_contract")["result"]["content"][0]["text"])
    assert {c["code"] for c in contract["exit_codes"]} >= {0, 13, 130}


def test_unknown_skill_is_a_tool_error_not_a_protocol_error():
    result = call("ai_skill", {"name": "nope"})["result"]
    assert result["isError"] is True and result["structuredContent"]["exitCode"] == 1  # as the original
    assert result["content"][0]["text"].startswith("skill 'nope' not found. Available skills: ")


def test_structured_tool_result_carries_text_and_structured_content():
    result = call("ai_skills")["result"]
    skills = result["structuredContent"]["skills"]
    assert len(skills) == 16 and {"name", "description", "scope", "filePath"} == set(skills[0])
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
    assert result["content"][0]["text"].startswith('{\n  "skills"')


def test_metadata_tools_match_the_cli(run_pgmi, tmp_path):
    from projects import write_project

    root = write_project(tmp_path / "p", {
        "deploy.sql": "SELECT 1;",
        "b.sql": "/*\n<pgmi-meta id=\"11111111-1111-4111-8111-111111111111\" idempotent=\"false\">\n"
                 "<description>bee</description><sortKeys><key>001</key></sortKeys></pgmi-meta>\n*/\nSELECT 1;",
        "a.sql": "SELECT 2;",
        "notes.md": "# not sql",
    })
    plan = call("metadata_plan", {"path": str(root)})["result"]["structuredContent"]
    assert plan == json.loads(run_pgmi("metadata", "plan", str(root), "--json").stdout)
    assert [e["path"] for e in plan["plan"]] == ["./a.sql", "./b.sql"]
    validate = call("metadata_validate", {"path": str(root)})["result"]["structuredContent"]
    assert validate == json.loads(run_pgmi("metadata", "validate", str(root), "--json").stdout)


def test_metadata_on_a_missing_path_is_a_config_error(tmp_path):
    result = call("metadata_plan", {"path": str(tmp_path / "nowhere")})["result"]
    assert result["isError"] is True and result["structuredContent"]["exitCode"] == 10
    assert str(tmp_path / "nowhere") in result["structuredContent"]["message"]


def test_a_raising_tool_is_a_panic_result_and_the_session_goes_on():
    def boom(arguments, context):
        raise RuntimeError("kaboom")

    dispatcher = Dispatcher({"boom": Tool("boom", "always fails", boom)})
    answers = serve(rpc("tools/call", {"name": "boom"}, id=1), rpc("ping", id=2), dispatcher=dispatcher)
    result = next(a for a in answers if a["id"] == 1)["result"]
    assert result["isError"] is True
    assert result["structuredContent"]["panic"] is True and result["structuredContent"]["exitCode"] == 3
    assert "RuntimeError: kaboom" in result["structuredContent"]["stack"]
    assert any(a["id"] == 2 and a["result"] == {} for a in answers)


def test_cancellation_reaches_the_running_call():
    started = threading.Event()

    def slow(arguments, context: CallContext):
        started.set()
        assert context.cancelled.wait(10), "cancellation never arrived"
        return "cancelled in time"

    dispatcher = Dispatcher({"slow": Tool("slow", "waits for a cancel", slow)})
    read_end, write_end = _pipe()
    stdout = io.BytesIO()
    server = Server(read_end, stdout, dispatcher)
    thread = threading.Thread(target=server.serve)
    thread.start()
    write_end.write(rpc("tools/call", {"name": "slow"}, id="job").encode() + b"\n")
    write_end.flush()
    assert started.wait(10)
    began = time.monotonic()
    write_end.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                "params": {"requestId": "job"}}).encode() + b"\n")
    write_end.close()
    thread.join(10)
    assert time.monotonic() - began < 5
    [answer] = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert answer["id"] == "job" and answer["result"]["content"][0]["text"] == "cancelled in time"


def _pipe():
    import os

    r, w = os.pipe()
    return os.fdopen(r, "rb"), os.fdopen(w, "wb")


def test_tool_registry_is_the_documented_nine():
    assert list(all_tools()) == TOOL_NAMES


def _has_scaffold() -> bool:
    import importlib.util

    return importlib.util.find_spec("pgmilib.scaffold") is not None


def test_init_and_templates_list(tmp_path):
    target = tmp_path / "newproj"
    result = call("init", {"path": str(target)})["result"]
    listing = call("templates_list")["result"]
    if not _has_scaffold():  # a build without templates answers with a structured error, not a crash
        for answer in (result, listing):
            assert answer["isError"] is True
            assert answer["structuredContent"]["message"].startswith("templates are not available in this build")
        return
    assert result["structuredContent"] == {"created": True, "path": str(target.absolute()), "template": "basic"}
    assert (target / "deploy.sql").is_file()
    names = [t["name"] for t in listing["structuredContent"]["templates"]]
    assert names[0] == "basic" and all(t["description"] for t in listing["structuredContent"]["templates"])
    again = call("init", {"path": str(target)})["result"]
    assert again["isError"] is True and "not empty" in again["content"][0]["text"]
    unknown = call("init", {"path": str(tmp_path / "other"), "template": "nope"})["result"]
    assert unknown["isError"] is True and unknown["structuredContent"]["exitCode"] == 2
    assert not (tmp_path / "other").exists()


def test_deploy_notices_keep_the_last_200_lines_and_count_the_rest():
    from pgmilib.errors import PgDiagnostics
    from pgmilib.mcp.tool_deploy import NOTICE_LIMIT, NoticeOutput

    stderr = io.StringIO()
    out = NoticeOutput(stderr)
    for n in range(NOTICE_LIMIT + 49):
        out.notice(PgDiagnostics(message=f"line {n}"))
    out.notice(PgDiagnostics(message="last", detail="the detail", hint="the hint"))
    captured = out.captured()
    assert len(captured["notices"]) == NOTICE_LIMIT
    assert captured["notices"][-3:] == ["last", "DETAIL: the detail", "HINT: the hint"]
    assert captured["noticesTruncated"] == 49 + 3
    assert stderr.getvalue().count("\n") == NOTICE_LIMIT + 49 + 3  # everything is still echoed to stderr
    assert "noticesTruncated" not in NoticeOutput(io.StringIO()).captured()
