"""Generated JSON-RPC traffic against a real `pgmi serve`: >= 100k messages in the full run.

Every message is built with what the server must do about it: answer once with its id,
answer once with id null (it could not tell the id), or stay silent (a notification). The
mix: valid requests and tool calls, wrong types everywhere, huge and deep values, bad
Unicode (invalid UTF-8, lone surrogates, control characters), batches, NaN and out-of-range
numbers, ids reused while a call with that id is in flight, and cancels aimed at running,
finished, absent and malformed ids. They go down one stdin as fast as the server reads,
while another thread reads stdout.

The contract, checked at the end: the server exits 0 at end of input (0 crashes), stdout is
strict JSON one message per line (valid UTF-8, no NaN/Infinity, each an object with
"jsonrpc" and "id"), the multiset of answer ids equals the multiset of expected ids
(every request answered exactly once, nothing answered that was not asked), no traceback on
stderr. Tool calls never reach a database: `deploy` always lacks a usable connection, so it
is refused by its argument checks; `init` and the metadata tools work in a scratch
directory. The seed (harness.SEED) makes a failing mix reproducible.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
from collections import Counter
from typing import Any

from harness import FIGURES, SEED, base_env, capture, crash_marks, pgmi_cmd, scale

MESSAGES = scale(3_000, 100_000)

ANSWER, NULL, SILENT = "answer", "null", "silent"
_ID_POOL = [1, 2, 3, "a", "b", "x-1", 7.5, 0, -1]  # small: ids collide with calls still in flight


def _key(value: Any) -> tuple[str, Any]:
    return ("s", value) if isinstance(value, str) else ("n", value)


class Generator:
    """One message at a time: (line bytes, expectation, id)."""

    def __init__(self, r: random.Random) -> None:
        self.r = r
        self.serial = 0

    def fresh_id(self) -> Any:
        r = self.r
        self.serial += 1
        pick = r.random()
        if pick < 0.15:
            return r.choice(_ID_POOL)  # a collision candidate
        if pick < 0.2:
            return 10 ** r.randrange(20, 4300)  # huge, still printable back
        if pick < 0.25:
            return "id-\ud800-" + str(self.serial)  # a lone surrogate, round-tripped as an escape
        if pick < 0.3:
            return self.serial + 0.5
        return self.serial if pick < 0.65 else f"s{self.serial}"

    def text(self) -> str:
        r = self.r
        pick = r.random()
        if pick < 0.5:
            return "".join(r.choice("abc._- /") for _ in range(r.randrange(12)))
        if pick < 0.7:
            return "".join(chr(r.choice([0, 7, 8, 10, 13, 27, 127, 0x85, 0x2028, 0xFEFF, 0xD800, 0xDFFF, 0x1F600]))
                           for _ in range(r.randrange(1, 6)))
        if pick < 0.8:
            return "x" * r.choice([255, 256, 300, 5000])
        if pick < 0.9:
            return r.choice(["", ".", "..", "deploy.sql", "-t", "$(id)", "; rm -rf x", "%s%n", "null"])
        return "w" * r.randrange(10_000, 200_000)

    def value(self, depth: int = 0) -> Any:
        r = self.r
        pick = r.random()
        if pick < 0.2 or depth > 3:
            return r.choice([None, True, False, 0, -1, 2 ** 63, 1.5e308, -0.0, self.text()])
        if pick < 0.4:
            return self.text()
        if pick < 0.6:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {self.text(): self.value(depth + 1) for _ in range(r.randrange(4))}

    def arguments(self, tool: str) -> Any:
        r = self.r
        if r.random() < 0.15:
            return self.value()  # anything at all, often not an object
        args: dict[str, Any] = {}
        for key in ("path", "name", "template", "connection", "database", "overwrite", "confirmDatabaseName",
                    "timeout", "params", "maintenanceDatabase"):
            if r.random() < 0.3:
                args[key] = self.value() if r.random() < 0.4 else self.text()
        if tool in ("init", "metadata_plan", "metadata_validate") and "path" in args and isinstance(args["path"], str):
            args["path"] = args["path"].replace("/", "_").lstrip(".") or "p"  # stay in the scratch directory
        if tool == "deploy":
            args["connection"] = r.choice([None, 5, [], {}, ""])  # never a server to connect to
        return args

    def request(self) -> tuple[bytes, str, Any]:
        r = self.r
        rid = self.fresh_id()
        method = r.choice(["ping", "tools/list", "initialize", "tools/call", "tools/call", "tools/call",
                           "resources/list", "", "notifications/cancelled"])
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if method == "initialize":
            message["params"] = r.choice([{"protocolVersion": self.value()}, {}, self.value()])
        elif method == "tools/call":
            tool = r.choice(["ai_skills", "templates_list", "ai_skill", "metadata_plan", "metadata_validate",
                             "init", "deploy", "ai_overview", "nope", self.text()])
            params: Any = {"name": tool, "arguments": self.arguments(tool)}
            if r.random() < 0.05:
                params = self.value()
            message["params"] = params
        elif r.random() < 0.3:
            message["params"] = self.value()
        return _dump(message), ANSWER, rid

    def notification(self) -> tuple[bytes, str, Any]:
        r = self.r
        target = r.choice([None, [1], {}, True, 10 ** 400, "a", 1, 7.5, "nope", self.serial])
        message: dict[str, Any] = {"jsonrpc": r.choice(["2.0", "2.0", "1.0", None]),
                                   "method": r.choice(["notifications/cancelled", "notifications/initialized",
                                                       "ping", 5])}
        message["params"] = {"requestId": target} if r.random() < 0.8 else self.value()
        return _dump(message), SILENT, None

    def broken(self) -> tuple[bytes, str, Any]:
        """Lines that cannot yield an id: answered once, with id null."""
        r = self.r
        rid = json.dumps(self.serial)
        return r.choice([
            lambda: b"[" * r.randrange(1000, 100_001),
            lambda: b'{"jsonrpc":"2.0","id":' + b"9" * r.randrange(4301, 6000) + b',"method":"ping"}',
            lambda: b'{"jsonrpc":"2.0","id":%s,"method":"ping","params":[%s]}' % (
                rid.encode(), r.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])),
            lambda: b'{"jsonrpc":"2.0","id":' + r.choice([b"NaN", b"Infinity", b"1e400"]) + b',"method":"ping"}',
            lambda: b'{"jsonrpc":"2.0","id":%s,"method":"ping"' % rid.encode(),  # truncated
            lambda: b'{"jsonrpc":"2.0","id":%s,"method":"\xff\xfe"}' % rid.encode(),  # invalid UTF-8
            lambda: b'{"jsonrpc":"2.0","id":%s,"method":"\xc0\xaf"}' % rid.encode(),  # overlong encoding
            lambda: b'{"jsonrpc":"2.0","id":%s,"method":"a\x01b"}' % rid.encode(),  # raw control character
            lambda: bytes(r.randrange(256) for _ in range(r.randrange(1, 200))).replace(b"\n", b" ") + b"!",
            lambda: _dump([{"jsonrpc": "2.0", "id": self.fresh_id(), "method": "ping"}
                           for _ in range(r.randrange(0, 5))]),  # a batch: one -32600
            lambda: _dump(r.choice(["x", 5, None, True])),
            lambda: _dump({"jsonrpc": "2.0", "id": r.choice([None, True, [1], {"a": 1}]), "method": "ping"}),
            lambda: b'{"jsonrpc":"2.0","id":1,"id":' + b"[" * 50_000 + b"}",  # deep and broken
        ])(), NULL, None

    def wrong_version(self) -> tuple[bytes, str, Any]:
        rid = self.fresh_id()
        message = {"jsonrpc": self.r.choice(["1.0", 2, None, "2.0 "]), "id": rid, "method": "ping"}
        return _dump(message), ANSWER, rid

    def next(self) -> tuple[bytes, str, Any]:
        pick = self.r.random()
        if pick < 0.62:
            return self.request()
        if pick < 0.8:
            return self.notification()
        if pick < 0.95:
            return self.broken()
        return self.wrong_version()


def _dump(value: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as \\ud800 escapes (the only way JSON can carry them)
    return json.dumps(value, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")


def _strict(line: bytes) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    message = json.loads(line.decode("utf-8"), parse_constant=refuse)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or "id" not in message:
        raise ValueError("not a JSON-RPC answer")
    if ("result" in message) == ("error" in message):
        raise ValueError("an answer has exactly one of result and error")
    return message


def test_generated_jsonrpc_traffic(tmp_path):
    r = random.Random(SEED)
    gen = Generator(r)
    expected_ids: Counter = Counter()
    expected_null = 0
    lines: list[bytes] = []
    for _ in range(MESSAGES):
        line, expectation, rid = gen.next()
        lines.append(line + b"\n")
        if expectation == ANSWER:
            expected_ids[_key(rid)] += 1
        elif expectation == NULL:
            expected_null += 1
        if r.random() < 0.01:
            lines.append(b"\n" if r.random() < 0.5 else b"   \t\n")  # blank lines: skipped, never answered
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    proc = subprocess.Popen(pgmi_cmd("serve"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=base_env(), cwd=scratch)
    out_lines: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda: out_lines.extend(proc.stdout)),
               threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))]
    for thread in readers:
        thread.start()
    try:
        try:
            for line in lines:
                proc.stdin.write(line)
            proc.stdin.close()
        except BrokenPipeError:  # the server died: its exit status and stderr say why (below)
            pass
        code = proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for thread in readers:
            thread.join(60)
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    capture("pgmi serve stderr", stderr)
    FIGURES["JSON-RPC messages sent"] += MESSAGES
    FIGURES["JSON-RPC answers checked"] += len(out_lines)
    FIGURES["server crashes"] += int(code != 0)
    assert code == 0, f"seed {SEED}: pgmi serve exited {code}\n{stderr[-3000:]}"
    assert not crash_marks(stderr), f"seed {SEED}: {stderr[-3000:]}"
    answered_ids: Counter = Counter()
    answered_null = 0
    for raw in out_lines:
        assert raw.endswith(b"\n") and b"\n" not in raw[:-1]
        try:
            message = _strict(raw)
        except (ValueError, UnicodeDecodeError) as error:
            FIGURES["non-JSON output lines"] += 1
            raise AssertionError(f"seed {SEED}: not strict JSON ({error}): {raw[:300]!r}") from None
        if message["id"] is None:
            answered_null += 1
        else:
            answered_ids[_key(message["id"])] += 1
    missing = expected_ids - answered_ids
    extra = answered_ids - expected_ids
    FIGURES["requests unanswered"] += sum(missing.values())
    assert not missing and not extra, f"seed {SEED}: unanswered {list(missing.items())[:5]}, " \
                                      f"unexpected {list(extra.items())[:5]}"
    assert answered_null == expected_null, f"seed {SEED}: {answered_null} null-id answers, {expected_null} expected"
