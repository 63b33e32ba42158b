"""The developer sign-ins of Azure's default chain: the Azure CLI (`az`), then the Azure Developer CLI (`azd`).

Both run as child processes (never through a shell) with the caller's environment, each
under one wait of the run's deadline: the step's own limit (CLI_TIMEOUT) capped by
`--timeout`, and Ctrl-C ends it at once. When the wait passes, the whole process group is
killed (`az` is a shell script that starts Python: killing only the script would leave
its child holding the output pipe open).

What pgmi reads back is the tools' JSON contract and nothing else:
- `az account get-access-token --output json --resource R [--tenant T]`:
  `accessToken`, `expires_on` (epoch seconds, newer CLIs) or `expiresOn` (local time);
- `azd auth token --output json --scope R/.default [--tenant-id T]`: `token`, `expiresOn`
  (RFC 3339).
The token is registered as a secret the moment the JSON is parsed; output that is not that
JSON is never quoted (it may hold the token in a shape pgmi does not know).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from pgmilib.conn.auth.http import TokenError, parse_timestamp
from pgmilib.conn.deadline import CANCELLED, TIMED_OUT, Deadline
from pgmilib.errors import Interrupted, Marker, printable
from pgmilib.redact import redact, register_secret

CLI_TIMEOUT = 10.0  # az starts a Python interpreter and may refresh its token over the network
_NOT_LOGGED_IN = re.compile(r"az login|azd auth login|not logged in|no subscription found|"
                            r"AADSTS700082|AADSTS50173|refresh token has expired", re.IGNORECASE)


class Unavailable(Exception):
    """The tool is not installed or not signed in: the chain moves on (the reason is kept)."""


def tool_path(environ: Mapping[str, str], name: str) -> str | None:
    """`name` on the PATH of the provider's environment (never the process's own, when a mapping is given)."""
    path = environ.get("PATH")
    return shutil.which(name, path=path) if path else None


def az_token(environ: Mapping[str, str], deadline: Deadline | None, fail: Callable[[str, str], TokenError],
             resource: str, tenant: str, timeout: float = CLI_TIMEOUT) -> tuple[str, float | None]:
    """A token from `az account get-access-token`; Unavailable when az is missing or not signed in."""
    exe = tool_path(environ, "az")
    if exe is None:
        raise Unavailable("`az` is not on PATH")
    argv = [exe, "account", "get-access-token", "--output", "json", "--resource", resource]
    if tenant:
        argv += ["--tenant", tenant]
    step = "Azure CLI (az account get-access-token)"
    doc = _run_json(argv, environ, deadline, fail, step, timeout, "run `az login`")
    token = doc.get("accessToken")
    if not isinstance(token, str) or not token:
        raise fail(step, "the output has no 'accessToken'")
    expires = _epoch(doc.get("expires_on"))
    if expires is None:
        expires = _when(doc.get("expiresOn"), naive_is_utc=False)  # az: local time
    return token, expires


def azd_token(environ: Mapping[str, str], deadline: Deadline | None, fail: Callable[[str, str], TokenError],
              scope: str, tenant: str, timeout: float = CLI_TIMEOUT) -> tuple[str, float | None]:
    """A token from `azd auth token`; Unavailable when azd is missing or not signed in."""
    exe = tool_path(environ, "azd")
    if exe is None:
        raise Unavailable("`azd` is not on PATH")
    argv = [exe, "auth", "token", "--output", "json", "--scope", scope]
    if tenant:
        argv += ["--tenant-id", tenant]
    step = "Azure Developer CLI (azd auth token)"
    doc = _run_json(argv, environ, deadline, fail, step, timeout, "run `azd auth login`")
    token = doc.get("token")
    if not isinstance(token, str) or not token:
        raise fail(step, "the output has no 'token'")
    return token, _when(doc.get("expiresOn"), naive_is_utc=True)  # azd: RFC 3339


def _run_json(argv: list[str], environ: Mapping[str, str], deadline: Deadline | None,
              fail: Callable[[str, str], TokenError], step: str, timeout: float, login_hint: str) -> dict[str, Any]:
    """Run `argv` under the deadline and return its stdout's JSON object, its token fields registered first."""
    deadline = deadline or Deadline(None)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(environ), start_new_session=True)
    except OSError as error:
        raise fail(step, f"cannot start {os.path.basename(argv[0])}: {error.strerror or error}") from None
    with deadline.wait(lambda: _kill_group(proc), timeout) as wait:
        if wait.limit is not None and wait.limit <= 0:
            wait.fire(TIMED_OUT)
        try:
            out, err = proc.communicate()
        finally:
            _kill_group(proc)  # a grandchild may still run (and hold a pipe) after the tool exited
            proc.wait()
    if wait.reason == CANCELLED:
        raise Interrupted("interrupted")
    if wait.reason is not None:
        failure = fail(step, f"timed out after {wait.elapsed():.1f}s")
        if wait.by_deadline:
            failure.markers.discard(Marker.CONNECTION)
            failure.markers.add(Marker.DEADLINE)
        raise failure
    try:
        doc = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict):
        for key in ("accessToken", "token", "access_token", "refreshToken"):
            if isinstance(doc.get(key), str):
                register_secret(doc[key])
    if proc.returncode != 0:
        message = _first_line(err.decode("utf-8", "replace"))
        if _NOT_LOGGED_IN.search(message):
            raise Unavailable(f"not signed in; {login_hint}")
        raise fail(step, f"exit status {proc.returncode}" + (f": {message}" if message else ""))
    if not isinstance(doc, dict):  # never quoted: it may carry a token in a shape pgmi does not know
        raise fail(step, f"the output is not the JSON object expected ({len(out):,} bytes)")
    return doc


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _first_line(text: str) -> str:
    """The first non-empty line of an error output: redacted, escaped, short."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = printable(redact(line))
    return line if len(line) <= 200 else line[:200] + "…"


def _epoch(value: object) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _when(value: object, *, naive_is_utc: bool) -> float | None:
    when = parse_timestamp(value, naive_is_utc=naive_is_utc)
    return when.timestamp() if when else None
