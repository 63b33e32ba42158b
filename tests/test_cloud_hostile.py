"""A hostile token endpoint against the cloud HTTP client: real sockets on 127.0.0.1, no mocks.

Each test reproduces one way an endpoint broke pgmi: an answer dripping one byte at a time
past `--timeout`, a silent endpoint, Ctrl-C during the fetch, a BOM before the JSON, a body
over 1 MiB, control characters in the error text, an answer that is not HTTP, and the
Azure App Service endpoint over plain HTTP to another host.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pgmilib.conn.auth.aws import AwsIamAuth
from pgmilib.conn.auth.azure import AzureAuth
from pgmilib.conn.auth.http import MAX_BODY, CloudHttp, TokenError, is_local_host, is_loopback_host, printable
from pgmilib.conn.deadline import Deadline
from pgmilib.errors import ConfigError, Exit, Interrupted, Marker, exit_code
from pgmilib.redact import redact, secret_scope
from tests.cloudfakes import closed_port_url
from tests.hostile_http import (
    HostileEndpoint,
    answer,
    drip,
    endless,
    http_response,
    reset,
    silent,
    token_json,
)
from tests.projects import run_cli, write_project

REPO = Path(__file__).resolve().parents[1]

LIVE = "LIVE-TOKEN-5f8a2c9e"  # what a real endpoint would hand out: must never be printed


@pytest.fixture(autouse=True)
def _own_secrets():
    """Secrets these tests register (tokens parsed from answers) stay inside each test."""
    with secret_scope():
        yield


@pytest.fixture
def endpoint():
    """endpoint(behaviour, tls_dir=None) -> a started HostileEndpoint, closed after the test."""
    started: list[HostileEndpoint] = []

    def start(behaviour, tls_dir=None) -> HostileEndpoint:
        server = HostileEndpoint(behaviour, tls_dir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def _figure(error: BaseException) -> float:
    match = re.search(r"timed out after (\d+\.\d)s$", str(error))
    assert match, str(error)
    return float(match.group(1))


# ---- one deadline for the whole exchange --------------------------------------------------


def test_a_drip_endpoint_ends_at_the_run_deadline_as_a_timeout(endpoint):
    server = endpoint(drip(http_response(200, token_json(LIVE)), 0.05))  # ~8 s for the whole answer
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}, deadline=Deadline(1.0)).json("token", "GET", server.url + "/token", timeout=15)
    error = info.value
    assert 0 < server.exchanges[0].sent < 160  # bytes kept coming: no single read ever waited long
    assert exit_code(error) == Exit.TIMEOUT and Marker.CONNECTION not in error.markers
    assert 1.0 <= _figure(error) < 6.0  # the figure is what the exchange took, not a limit
    assert "\n" not in str(error) and LIVE not in str(error)


def test_a_silent_endpoint_ends_at_the_step_limit_without_a_run_deadline(endpoint):
    server = endpoint(silent)
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).request("metadata", "GET", server.url + "/x", timeout=0.5)
    assert exit_code(info.value) == Exit.CONNECTION
    assert 0.5 <= _figure(info.value) < 5.5


def test_cancel_during_the_fetch_says_interrupted_not_timed_out(endpoint):
    server = endpoint(silent)
    deadline = Deadline(None)

    def cancel_once_asked() -> None:
        for _ in range(500):
            if server.exchanges:
                break
            time.sleep(0.01)
        deadline.cancel()

    canceller = threading.Thread(target=cancel_once_asked)
    canceller.start()
    try:
        with pytest.raises(Interrupted) as info:
            CloudHttp("Demo", {}, deadline=deadline).request("token", "GET", server.url + "/x", timeout=30)
    finally:
        canceller.join()
    assert str(info.value) == "interrupted" and exit_code(info.value) == Exit.INTERRUPTED
    with pytest.raises(Interrupted):  # a cancelled run starts no new exchange
        CloudHttp("Demo", {}, deadline=deadline).request("token", "GET", server.url + "/x", timeout=30)
    assert len(server.exchanges) == 1


def test_a_deadline_already_spent_sends_nothing(endpoint):
    server = endpoint(silent)
    deadline = Deadline(0.0)
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}, deadline=deadline).request("token", "GET", server.url + "/x")
    assert exit_code(info.value) == Exit.TIMEOUT and server.exchanges == []


# ---- what an answer may contain ------------------------------------------------------------


def test_a_bom_before_the_json_is_accepted(endpoint):
    server = endpoint(answer(http_response(200, b"\xef\xbb\xbf" + token_json(LIVE))))
    doc = CloudHttp("Demo", {}).json("token", "GET", server.url + "/t")
    assert doc["access_token"] == LIVE
    assert redact(f"x {LIVE} y") == "x [redacted] y"  # registered while parsing


@pytest.mark.parametrize("body", [
    b"\xef\xbb\xbf<html>" + LIVE.encode() + b"</html>",
    b'{"access_token": "' + LIVE.encode() + b'", oops',
    b"\xff\xfe" + LIVE.encode("utf-16-le"),
])
def test_a_body_that_is_not_json_is_never_quoted(endpoint, body):
    server = endpoint(answer(http_response(200, body, content_type="text/html")))
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).json("token", "GET", server.url + "/t")
    text = str(info.value)
    assert "malformed JSON in response" in text and f"{len(body):,} bytes" in text
    assert LIVE not in text and "LIVE" not in text and "\n" not in text


def test_a_body_over_1_mib_is_refused_from_its_length_unread(endpoint):
    big = 64 * MAX_BODY
    server = endpoint(endless(b"x" * 65536, http_response(200, b"", headers=None).replace(
        b"Content-Length: 0", f"Content-Length: {big}".encode())))
    with pytest.raises(TokenError, match=r"the answer is 67,108,864 bytes; more than 1,048,576 is refused unread$"):
        CloudHttp("Demo", {}).request("token", "GET", server.url + "/t")
    server.close()
    assert server.exchanges[0].sent < big  # pgmi hung up long before the end


def test_a_body_over_1_mib_without_a_length_is_refused_after_1_mib(endpoint):
    server = endpoint(endless(b"{" * 65536, http_response(200, b"", length=False)))
    with pytest.raises(TokenError, match=r"the answer is longer than 1,048,576 bytes; refused$"):
        CloudHttp("Demo", {}).json("token", "GET", server.url + "/t")  # an endless answer: it cannot read it all


# ---- control characters and answers that are not HTTP ---------------------------------------


@pytest.mark.parametrize("body", [
    b'{"error": "bad\\u001b]0;pwned\\u0007", "error_description": "x\\u001b[2J\\u202eevil"}',
    b"bad\x1b]0;pwned\x07 x\x1b[2J\xe2\x80\xaeevil",
])
def test_control_characters_in_error_text_are_escaped(endpoint, body):
    server = endpoint(answer(http_response(400, body, content_type="text/plain")))
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).request("token", "GET", server.url + "/t")
    text = str(info.value)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\n" not in text
    assert "bad\\x1b]0;pwned\\x07" in text and "x\\x1b[2J\\u202eevil" in text


@pytest.mark.parametrize("reply", [b"SSH-2.0-OpenSSH_9.6\r\n\x1b[2J\r\nmore\r\n", b"\x00\x01\x02\x03" * 100,
                                   b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"])
def test_an_answer_that_is_not_http_is_one_line(endpoint, reply):
    server = endpoint(answer(reply))
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).request("token", "GET", server.url + "/t")
    text = str(info.value)
    assert text.endswith(("not valid HTTP (BadStatusLine)", "not valid HTTP (HTTPException)")), text
    assert "\n" not in text and "\x1b" not in text and exit_code(info.value) == Exit.CONNECTION


def test_a_reset_and_a_redirect_are_one_line_each(endpoint):
    server = endpoint(reset)
    with pytest.raises(TokenError) as info:
        CloudHttp("Demo", {}).request("token", "GET", server.url + "/t")
    assert str(info.value).endswith(": Connection reset by peer") or "closed the connection" in str(info.value)
    server = endpoint(answer(http_response(307, b"", headers={"Location": "http://127.0.0.1:1/steal"})))
    with pytest.raises(TokenError, match=r"HTTP 307 \(redirects are not followed\)$"):
        CloudHttp("Demo", {}).request("token", "GET", server.url + "/t")
    assert len(server.exchanges) == 1


def test_printable_escapes_only_what_a_terminal_would_obey():
    assert printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
    assert printable("a\x1b[2Jb\x07\x00\x7f\x9b\u202e\u2028") == "a\\x1b[2Jb\\x07\\x00\\x7f\\x9b\\u202e\\u2028"


# ---- plain HTTP only to this machine ---------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("localhost.evil.example", False), ("evil-localhost", False), ("127.0.0.1.nip.io", False), ("0.0.0.0", False),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("169.254.169.254", False), ("", False),
])
def test_loopback_is_defined_strictly(host, loopback):
    assert is_loopback_host(host) is loopback
    assert is_local_host(host) is (loopback or host == "169.254.169.254")


@pytest.mark.parametrize("endpoint_url", ["http://localhost.evil.example/msi/token", "http://10.1.2.3:8081/msi",
                                          "http://169.254.169.254/msi", "ftp://127.0.0.1/msi"])
def test_azure_identity_header_never_travels_over_plain_http_to_another_host(endpoint_url):
    env = {"IDENTITY_ENDPOINT": endpoint_url, "IDENTITY_HEADER": "hdr-secret-value"}
    with pytest.raises(ConfigError) as info:
        AzureAuth(env).token("", "")
    assert exit_code(info.value) == Exit.CONFIG and "IDENTITY_ENDPOINT" in str(info.value)
    assert "hdr-secret-value" not in str(info.value)


def test_azure_identity_endpoint_on_localhost_is_used(endpoint):
    server = endpoint(answer(http_response(200, token_json(LIVE))))
    env = {"IDENTITY_ENDPOINT": f"http://localhost:{server.port}/msi/token", "IDENTITY_HEADER": "hdr-secret-value"}
    token, _ = AzureAuth(env).token("", "")
    assert token == LIVE and b"x-identity-header: hdr-secret-value" in server.exchanges[0].request.lower()


def test_aws_full_uri_on_a_name_that_only_starts_with_localhost_is_refused():
    env = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://localhost.evil.example/c"}
    with pytest.raises(ConfigError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        AwsIamAuth(env).credentials("eu-west-1")


# ---- end to end: the command line's --timeout and Ctrl-C ----------------------------------------


def _azure_env(url: str) -> dict[str, str]:
    return {"AZURE_AUTHORITY_HOST": url, "AZURE_CLIENT_SECRET": "sp-secret-value-1", "AZURE_TENANT_ID": "contoso.com",
            "AZURE_CLIENT_ID": "app-id"}


def test_cli_timeout_bounds_a_drip_token_endpoint(endpoint, monkeypatch, capsys, tmp_path):
    server = endpoint(drip(http_response(200, token_json(LIVE)), 0.05))
    for name, value in _azure_env(server.url).items():
        monkeypatch.setenv(name, value)
    port = closed_port_url().rsplit(":", 1)[1]
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    code, out, err = run_cli(["deploy", str(project), "-d", "app", "--host", "127.0.0.1", "--port", port, "-U", "u",
                              "--azure", "--timeout", "2s"], capsys)
    assert code == Exit.TIMEOUT, err
    lines = [line for line in err.splitlines() if line.startswith("pgmi: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.match(r"pgmi: error: deployment timed out after 2s \(--timeout\): failed to acquire Azure Entra ID "
                    r"token: client secret token request \(POST http://127\.0\.0\.1:\d+/contoso\.com/oauth2/v2\.0/"
                    r"token\): timed out after \d+\.\ds$", lines[0]), lines[0]
    assert 1.0 <= _figure(lines[0]) < 7.0 and server.exchanges[0].sent > 0
    assert "sp-secret-value-1" not in out + err and LIVE not in out + err


def test_ctrl_c_during_a_token_fetch_is_interrupted(endpoint, tmp_path):
    server = endpoint(silent)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    port = closed_port_url().rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AZURE_", "IDENTITY_"))}
    env.update(_azure_env(server.url), PGMI_NON_INTERACTIVE="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(project), "-d", "app", "--host",
                             "127.0.0.1", "--port", port, "-U", "u", "--azure", "--timeout", "60s"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):
            if server.exchanges or proc.poll() is not None:
                break
            time.sleep(0.01)
        assert server.exchanges, "pgmi never asked the token endpoint"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == Exit.INTERRUPTED, err
    assert "timed out" not in err and "Traceback" not in err
    assert [line for line in err.splitlines() if "interrupted" in line][-1] == "pgmi: error: interrupted"
