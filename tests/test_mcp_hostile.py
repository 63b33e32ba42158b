"""A hostile MCP client: messages a well-behaved client never sends, answered without a crash.

The contract of `pgmi serve` (pgmilib/mcp/jsonrpc.py, server.py): every line in gives at most
one line out, every request exactly one answer, stdout is strict JSON (no NaN, valid UTF-8,
one message per line), and the session goes on. The cases are the ones that once ended the
server (exit 3, every call in flight lost) or left a request unanswered: odd cancel ids,
integers beyond 4,300 digits, deep nesting, lone surrogates, NaN ids, duplicate ids in
flight, a worker that dies, megabytes of notices. First in-process over byte streams, then
as raw bytes to the real `pgmi serve` process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pgmilib.mcp.dispatch import Dispatcher, all_tools
from pgmilib.mcp.server import Server
from pgmilib.mcp.tools import CallContext, Tool

REPO = Path(__file__).resolve().parent.parent


def strict(line: bytes) -> dict:
    """One output line as a client must read it: UTF-8, RFC 8259 JSON (no NaN/Infinity), an object."""
    def refuse(name):
        raise AssertionError(f"non-JSON constant {name} in {line[:200]!r}")

    message = json.loads(line.decode("utf-8"), parse_constant=refuse)
    assert isinstance(message, dict) and message["jsonrpc"] == "2.0" and "id" in message, line[:200]
    return message


def serve(data: bytes, dispatcher: Dispatcher | None = None) -> list[dict]:
    stdout = io.BytesIO()
    assert Server(io.BytesIO(data), stdout, dispatcher).serve() == 0
    raw = stdout.getvalue()
    assert raw == b"" or raw.endswith(b"\n")
    return [strict(line) for line in raw.split(b"\n")[:-1]]


def ping(id: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "ping"}).encode() + b"\n"


def cancel(request_id: str) -> bytes:
    return (f'{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{request_id}}}}}\n').encode()


BIG = "9" * 5000
# (line, expected answers: None = no answer (a notification), else (id, error code or None for a result))
HOSTILE = [
    (cancel("null"), None),
    (cancel("[1]"), None),
    (cancel("{}"), None),
    (cancel("1" + "0" * 400), None),
    (cancel(BIG), None),  # not JSON pgmi can hold: a parse error, answered with id null
    (b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}\n', None),
    (b'{"jsonrpc":"2.0","id":1' + b"0" * 400 + b',"method":"ping"}\n', (10 ** 400, None)),
    (b'{"jsonrpc":"2.0","id":' + BIG.encode() + b',"method":"ping"}\n', (None, -32700)),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"n":' + BIG.encode() + b"}}\n", (None, -32700)),
    (b"[" * 100_000 + b"\n", (None, -32700)),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", (None, -32700)),
    (b'{"jsonrpc":"2.0","id":2,"method":"\\ud800"}\n', (2, -32601)),
    (b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}\n', ("\ud800", None)),
    (b'{"jsonrpc":"2.0","id":"\\udfff\\ud800x","method":"nope"}\n', ("\udfff\ud800x", -32601)),
    (b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}\n', (None, -32700)),
    (b'{"jsonrpc":"2.0","id":Infinity,"method":"ping"}\n', (None, -32700)),
    (b'{"jsonrpc":"2.0","id":-Infinity,"method":"ping"}\n', (None, -32700)),
    (b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}\n', (None, -32700)),
    (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"\\ud800"}}\n', (3, -32602)),
    (b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ai_skill","arguments":{"name":"\\ud800"}}}\n',
     (4, -32602)),
    ((b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"metadata_plan","arguments":'
     b'{"path":"/tmp/\\udcff"}}}\n'), (5, -32602)),
    ((b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"deploy","arguments":'
     b'{"path":"p","connection":"c","database":"d","params":{"k":"\\ud800"}}}}\n'), (6, -32602)),
    (b'{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"init","arguments":{"path":"x\\udcffy"}}}\n',
     (10, -32602)),
    (b'{"jsonrpc":"2.0","id":7,"method":"\\u001b]0;owned\\u0007"}\n', (7, -32601)),
    (b'[{"jsonrpc":"2.0","id":8,"method":"ping"}]\n', (None, -32600)),
]


@pytest.mark.parametrize("line, expected", HOSTILE, ids=[f"case{n}" for n in range(len(HOSTILE))])
def test_hostile_line_is_answered_and_the_session_goes_on(line, expected):
    answers = serve(line + ping("after"))
    after = {"jsonrpc": "2.0", "id": "after", "result": {}}
    assert after in answers, "the session did not go on"  # a tool call's answer may come after it (a worker)
    rest = [a for a in answers if a != after]
    if expected is None:
        assert rest == [] or rest[0]["error"]["code"] == -32700  # a notification is never answered...
        return
    [answer] = rest  # ...and a request exactly once
    request_id, code = expected
    assert answer["id"] == request_id
    if code is None:
        assert answer["result"] == {}
    else:
        assert answer["error"]["code"] == code, answer


def test_client_text_in_messages_is_escaped_and_bounded():
    [answer] = serve(b'{"jsonrpc":"2.0","id":1,"method":"\\u001b]0;owned\\u0007' + b"m" * 1_000_000 + b'"}\n')
    message = answer["error"]["message"]
    assert "\x1b" not in message and "\x07" not in message and "\\x1b]0;owned\\x07" in message
    assert len(message) < 300


def test_a_lone_surrogate_id_round_trips_as_an_escape():
    stdout = io.BytesIO()
    Server(io.BytesIO(ping("\ud800")), stdout).serve()
    assert stdout.getvalue() == b'{"jsonrpc":"2.0","id":"\\ud800","result":{}}\n'


def _slow_dispatcher(started: threading.Event, runs: list) -> Dispatcher:
    def slow(arguments, context: CallContext):
        runs.append(arguments.get("n"))
        started.set()
        assert context.cancelled.wait(10), "cancellation never arrived"
        return "cancelled"

    return Dispatcher({"slow": Tool("slow", "waits for a cancel", slow)})


def test_a_duplicate_id_in_flight_is_refused_not_run():
    started, runs = threading.Event(), []
    r, w = os.pipe()
    read_end, write_end = os.fdopen(r, "rb"), os.fdopen(w, "wb")
    stdout = io.BytesIO()
    server = Server(read_end, stdout, _slow_dispatcher(started, runs))
    thread = threading.Thread(target=server.serve)
    thread.start()
    try:
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "slow", "arguments": {"n": 1}}}
        write_end.write(json.dumps(call).encode() + b"\n")
        write_end.flush()
        assert started.wait(10)
        call["id"], call["params"]["arguments"]["n"] = 7.0, 2  # 7 and 7.0 are the same id
        write_end.write(json.dumps(call).encode() + b"\n" + cancel("7"))
    finally:
        write_end.close()
        thread.join(20)
    assert not thread.is_alive()
    answers = [strict(line) for line in stdout.getvalue().splitlines()]
    assert runs == [1]
    refused, finished = answers
    assert refused["id"] == 7 and refused["error"]["code"] == -32600 and "still running" in refused["error"]["message"]
    assert finished["id"] == 7 and finished["result"]["content"][0]["text"] == "cancelled"


def test_an_id_is_free_again_once_answered():
    tools = {"echo": Tool("echo", "", lambda arguments, context: "ok")}
    line = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}\n'
    stdout = io.BytesIO()
    server = Server(io.BytesIO(b""), stdout, Dispatcher(tools))
    server.handle_line(line)
    server.wait(10)
    server.handle_line(line)
    server.wait(10)
    assert [strict(x)["result"]["content"][0]["text"] for x in stdout.getvalue().splitlines()] == ["ok", "ok"]


@pytest.mark.parametrize("fatal", [SystemExit(3), KeyboardInterrupt()])
def test_a_worker_that_dies_still_answers(fatal):
    def die(arguments, context):
        raise fatal

    answers = serve(b'{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"die"}}\n' + ping(2),
                    Dispatcher({"die": Tool("die", "", die)}))
    by_id = {a["id"]: a for a in answers}
    assert by_id["w"]["error"]["code"] == -32603
    assert by_id[2]["result"] == {}


def test_an_unencodable_result_becomes_an_internal_error_for_its_id():
    answers = serve(b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"nan"}}\n',
                    Dispatcher({"nan": Tool("nan", "", lambda a, c: {"x": float("nan")})}))
    assert answers == [{"jsonrpc": "2.0", "id": 9, "error": {
        "code": -32603, "message": "internal error: the answer is not encodable as JSON (ValueError)"}}]


def test_a_bug_in_the_loop_is_answered_and_the_loop_goes_on(monkeypatch):
    from pgmilib.mcp import jsonrpc

    real = jsonrpc.parse

    def flaky(line):
        if b"boom" in line:
            raise RuntimeError("boom")
        return real(line)

    monkeypatch.setattr(jsonrpc, "parse", flaky)
    answers = serve(b'{"boom":1}\n' + ping(1))
    assert answers[0]["id"] is None and answers[0]["error"]["code"] == -32603
    assert answers[1] == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_notices_are_bounded_in_bytes_as_well_as_lines():
    from pgmilib.errors import PgDiagnostics
    from pgmilib.mcp.tool_deploy import NOTICE_BYTES, NOTICE_LINE_BYTES, NoticeOutput

    stderr = io.StringIO()
    out = NoticeOutput(stderr)
    for n in range(20):
        out.notice(PgDiagnostics(message=f"{n}:" + "é" * 500_000))  # 1 MB of UTF-8 each
    captured = out.captured()
    size = sum(len(line.encode("utf-8")) for line in captured["notices"])
    assert size <= NOTICE_BYTES
    assert captured["notices"][-1].startswith("19:") and "[cut: 1000003 bytes in all]" in captured["notices"][-1]
    assert all(len(line.encode("utf-8")) < NOTICE_LINE_BYTES + 40 for line in captured["notices"])
    out.notice(PgDiagnostics(message="x" * (NOTICE_LINE_BYTES - 20) + " password=hunter2-secret"))
    assert "hunter2-secret" not in out.captured()["notices"][-1]  # redacted across the cut
    assert len(captured["notices"]) == 20 and "noticesTruncated" not in captured
    assert len(stderr.getvalue()) > 20 * 500_000  # stderr still gets every notice whole
    for n in range(100):  # more long lines than the byte budget holds: the oldest go, and are counted
        out.notice(PgDiagnostics(message=f"more {n}:" + "x" * 100_000))
    captured = out.captured()
    assert sum(len(line.encode("utf-8")) for line in captured["notices"]) <= NOTICE_BYTES
    assert captured["notices"][-1].startswith("more 99:")
    assert captured["noticesTruncated"] == 121 - len(captured["notices"]) > 0


# ---- the real process --------------------------------------------------------------------

def test_raw_bytes_to_the_real_server(tmp_path):
    """Every hostile line above, then a ping, to `pgmi serve`: exit 0, one answer per request."""
    data = b"".join(line for line, _ in HOSTILE) + b"\xff\xfe not utf-8\n" + ping("last")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run([sys.executable, str(REPO / "pgmi.py"), "serve"], input=data, capture_output=True,
                          timeout=120, check=False, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in proc.stderr
    answers = [strict(line) for line in proc.stdout.split(b"\n")[:-1]]
    expected_requests = sum(1 for _, e in HOSTILE if e is not None) + 2  # the invalid UTF-8 line and the ping
    parse_errors_for_notifications = 1  # cancel(BIG) is not JSON pgmi can hold
    assert len(answers) == expected_requests + parse_errors_for_notifications
    assert {"jsonrpc": "2.0", "id": "last", "result": {}} in answers


def test_tool_registry_unchanged():
    assert "deploy" in all_tools()


def _tool(name: str, arguments: dict) -> dict:
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode() + b"\n"
    [answer] = serve(line)
    return answer["result"]


@pytest.mark.parametrize("database, confirm", [("Orders", "orders"), ("orders", "Orders"), ("orders", "orders "),
                                               ("orders", "ORDERS")])
def test_confirm_database_name_must_match_exactly(database, confirm):
    """Checked before anything connects: the connection names a port nobody listens on."""
    result = _tool("deploy", {"path": ".", "connection": "postgresql://u@127.0.0.1:1/x", "database": database,
                              "overwrite": True, "confirmDatabaseName": confirm})
    assert result["isError"] is True and result["structuredContent"]["exitCode"] == 1  # as the original reports a refused confirmation
    assert result["content"][0]["text"].endswith("does not match database " + json.dumps(database)
                                                 + ": nothing was deployed or dropped")


def test_init_tool_into_a_dangling_symlink(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    result = _tool("init", {"path": str(tmp_path / "link")})
    assert result["isError"] is True and result["structuredContent"]["exitCode"] == 2
    assert "is a dangling symbolic link" in result["content"][0]["text"]
    assert sorted(os.listdir(tmp_path)) == ["link"]


def test_a_skill_name_is_quoted_escaped_and_short():
    result = _tool("ai_skill", {"name": "\x1b]0;owned\x07" + "k" * 100_000})
    text = result["content"][0]["text"]
    assert result["isError"] is True and text.startswith("skill '\\x1b]0;owned\\x07kkk")
    assert "\x1b" not in text and len(text) < 1000
    assert _tool("ai_skill", {"name": "pgmi-sql"})["content"][0]["text"].startswith("---")
