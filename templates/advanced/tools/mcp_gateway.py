#!/usr/bin/env python3
"""Serve this project's MCP handlers (tools, resources, prompts) to an MCP client over stdio.

The MCP server itself is SQL: `api.mcp_handle_request(message, context)` answers one
JSON-RPC message. This script is only the transport. It reads newline-delimited JSON-RPC
from stdin, runs each message through the deployed database in its own transaction, and
writes the answer to stdout (nothing for a notification). Diagnostics go to stderr.

It needs nothing but Python 3.9+ and `psql` (the PostgreSQL client every PostgreSQL
user has): each message is one short `psql` run, so no driver has to be installed.

    DATABASE_URL=postgresql://gateway@localhost/mydb python3 tools/mcp_gateway.py

Register it with a client, e.g. `claude mcp add mydb -- python3 tools/mcp_gateway.py`.

Environment:
  DATABASE_URL        connection string or URL (else the PG* variables / ~/.pgpass apply)
  MCP_IDP_SUBJECT     the identity requests run as ('provider|subject', e.g. 'apikey|1a2b3c4d5e6f');
                      unset = anonymous: only entries registered with requiresAuth false
  MCP_ISOLATION       transaction isolation for every request (default: the server's)
  MCP_MAX_ATTEMPTS    tries for serialization failures / deadlocks (default 3)
  PSQL                the psql binary (default: psql on PATH)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from typing import Any

RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock: the whole transaction is retried
ISOLATIONS = {"read committed", "repeatable read", "serializable"}


class DatabaseError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def dollar_quote(text: str) -> str:
    """`text` as a dollar-quoted SQL literal whose tag does not occur in it."""
    while True:
        tag = "$g" + secrets.token_hex(6) + "$"
        if tag not in text:
            return tag + text + tag


def request_script(message: str, subject: str | None, isolation: str | None) -> str:
    """One transaction: set the identity, answer the message, commit. Only the answer is printed."""
    begin = "BEGIN ISOLATION LEVEL " + isolation.upper() if isolation else "BEGIN"
    lines = [begin + ";"]
    if subject:
        lines.append(f"SELECT set_config('auth.idp_subject', {dollar_quote(subject)}, true) AS subject_set \\gset")
    lines.append(f"SELECT api.mcp_handle_request({dollar_quote(message)}::jsonb);")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def run_psql(script: str) -> dict | None:
    """Run the script; the answer as a dict, None when the database answered NULL."""
    argv = [os.environ.get("PSQL", "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-v", "VERBOSITY=verbose", "-P", "pager=off"]
    url = os.environ.get("DATABASE_URL")
    if url:
        argv += ["-d", url]
    done = subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        found = re.search(r"ERROR:\s+([0-9A-Z]{5}):\s*(.*)", done.stderr)
        if found:
            raise DatabaseError(found.group(1), found.group(2))
        raise DatabaseError("", done.stderr.strip().splitlines()[0] if done.stderr.strip() else "psql failed")
    out = done.stdout.strip()
    return json.loads(out) if out else None


def error(request_id: Any, code: int, message: str, data: dict | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if data:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def answer(line: str, subject: str | None, isolation: str | None, attempts: int) -> dict | None:
    """The reply to one input line (None: nothing to write)."""
    try:
        message = json.loads(line)
    except ValueError as exc:
        return error(None, -32700, f"Parse error: {exc}")
    request_id = message.get("id") if isinstance(message, dict) else None
    script = request_script(json.dumps(message), subject, isolation)
    for attempt in range(1, attempts + 1):
        try:
            return run_psql(script)
        except DatabaseError as exc:
            if exc.sqlstate in RETRYABLE and attempt < attempts:
                time.sleep(min(1.0, 0.05 * 2 ** attempt) * secrets.SystemRandom().random())
                continue
            sys.stderr.write(f"mcp_gateway: database error {exc.sqlstate}: {exc}\n")
            data = {"sqlstate": exc.sqlstate, "attempts": attempt} if exc.sqlstate in RETRYABLE else None
            return error(request_id, -32603, "Internal error", data)
        except OSError as exc:
            sys.stderr.write(f"mcp_gateway: cannot run psql: {exc}\n")
            return error(request_id, -32603, "Internal error")
    return None  # not reached: the loop always returns


def main() -> int:
    subject = os.environ.get("MCP_IDP_SUBJECT") or None
    isolation = (os.environ.get("MCP_ISOLATION") or "").strip().lower() or None
    if isolation is not None and isolation not in ISOLATIONS:
        sys.stderr.write(f"mcp_gateway: MCP_ISOLATION must be one of {', '.join(sorted(ISOLATIONS))}\n")
        return 2
    try:
        attempts = max(1, int(os.environ.get("MCP_MAX_ATTEMPTS", "3")))
    except ValueError:
        sys.stderr.write("mcp_gateway: MCP_MAX_ATTEMPTS must be a whole number\n")
        return 2
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = answer(line, subject, isolation, attempts)
        if reply is not None:
            sys.stdout.write(json.dumps(reply, separators=(",", ":")) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
