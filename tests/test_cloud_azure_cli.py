"""Azure CLI and azd sign-in: a fake `az` / `azd` on PATH (shell scripts this test writes), real PostgreSQL."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pgmilib.conn.auth.azure import RESOURCE, SCOPE, AzureAuth
from pgmilib.conn.auth.http import TokenError
from pgmilib.conn.connect import open_connection
from pgmilib.conn.deadline import Deadline
from pgmilib.conn.params import ConnParams
from pgmilib.errors import Exit, Marker, exit_code
from pgmilib.output import format_error
from tests.cloudfakes import closed_port_url, create_login, json_reply, start_tls_cluster, whoami
from tests.projects import run_cli, write_project

CLI_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "Q0xJ" * 300 + ".c2ln"  # "CLI..." base64, ~1.2 KB
TOOL = """#!/bin/sh
printf '%s\\n' "$@" > "$0.args"
[ -f "$0.hang" ] && { sleep 30 & echo $! > "$0.child"; wait; }
[ -f "$0.out" ] && cat "$0.out"
[ -f "$0.err" ] && cat "$0.err" >&2
exit "$(cat "$0.rc" 2>/dev/null || echo 0)"
"""


class Tool:
    """A fake CLI on PATH: its output, error output, exit status and a hang are files next to it."""

    def __init__(self, bindir: Path, name: str) -> None:
        self.path = bindir / name
        self.path.write_text(TOOL)
        self.path.chmod(0o755)

    def answer(self, out: str = "", err: str = "", rc: int = 0) -> None:
        Path(f"{self.path}.out").write_text(out)
        Path(f"{self.path}.err").write_text(err)
        Path(f"{self.path}.rc").write_text(str(rc))

    def hang(self) -> None:
        Path(f"{self.path}.hang").write_text("")

    @property
    def args(self) -> list[str]:
        return Path(f"{self.path}.args").read_text().splitlines()

    @property
    def called(self) -> bool:
        return Path(f"{self.path}.args").exists()


@pytest.fixture
def bindir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    return d


def env_for(bindir: Path, **extra: str) -> dict[str, str]:
    """Off Azure (IMDS refuses), the fake tools first on PATH, the system's sh/cat/sleep after them."""
    return {"PATH": f"{bindir}:/usr/bin:/bin", "AZURE_POD_IDENTITY_AUTHORITY_HOST": closed_port_url(), **extra}


def az_json(token: str = CLI_TOKEN, expires_in: int = 3600) -> str:
    return json.dumps({"accessToken": token, "expiresOn": "2026-12-04 21:00:00.000000",
                       "expires_on": int(time.time()) + expires_in, "tenant": "t", "tokenType": "Bearer"})


def test_az_after_unreachable_managed_identity(bindir):
    az = Tool(bindir, "az")
    az.answer(az_json())
    token, expires = AzureAuth(env_for(bindir)).token("contoso.onmicrosoft.com", "")
    assert token == CLI_TOKEN and expires is not None and expires > time.time() + 3000
    assert az.args == ["account", "get-access-token", "--output", "json", "--resource", RESOURCE,
                       "--tenant", "contoso.onmicrosoft.com"]


def test_az_expires_on_local_time_when_epoch_is_missing(bindir):
    Tool(bindir, "az").answer(json.dumps({"accessToken": CLI_TOKEN, "expiresOn": "2030-01-02 03:04:05.123456789"}))
    _, expires = AzureAuth(env_for(bindir)).token("", "")
    assert expires is not None and time.localtime(expires)[:6] == (2030, 1, 2, 3, 4, 5)


def test_managed_identity_answering_wins_over_az(bindir, fake):
    az = Tool(bindir, "az")
    az.answer(az_json())
    fake.routes[("GET", "/metadata/identity/oauth2/token")] = lambda r: json_reply(
        {"access_token": "mi-token-value", "expires_in": "3600"})
    token, _ = AzureAuth(env_for(bindir, AZURE_POD_IDENTITY_AUTHORITY_HOST=fake.url)).token("", "")
    assert token == "mi-token-value" and not az.called


def test_managed_identity_failing_for_real_does_not_fall_back(bindir, fake):
    az = Tool(bindir, "az")
    az.answer(az_json())
    fake.routes[("GET", "/metadata/identity/oauth2/token")] = lambda r: json_reply({"error": "forbidden"}, 403)
    with pytest.raises(TokenError, match=r"managed identity \(IMDS\) .*HTTP 403"):
        AzureAuth(env_for(bindir, AZURE_POD_IDENTITY_AUTHORITY_HOST=fake.url)).token("", "")
    assert not az.called


def test_azd_when_az_is_missing(bindir):
    azd = Tool(bindir, "azd")
    azd.answer(json.dumps({"token": CLI_TOKEN, "expiresOn": "2030-01-02T03:04:05.1234567Z"}))
    token, expires = AzureAuth(env_for(bindir)).token("tenant-1", "")
    assert token == CLI_TOKEN and expires == 1893553445.123456
    assert azd.args == ["auth", "token", "--output", "json", "--scope", SCOPE, "--tenant-id", "tenant-1"]


def test_az_signed_out_falls_to_azd_then_says_run_az_login(bindir):
    az, azd = Tool(bindir, "az"), Tool(bindir, "azd")
    az.answer(err="ERROR: Please run 'az login' to setup account.\n", rc=1)
    azd.answer(json.dumps({"token": CLI_TOKEN, "expiresOn": "2030-01-02T03:04:05Z"}))
    assert AzureAuth(env_for(bindir)).token("", "")[0] == CLI_TOKEN  # azd signed in: the chain goes on
    azd.answer(err="ERROR: not logged in, run `azd auth login` to login\n", rc=1)
    with pytest.raises(TokenError) as info:
        AzureAuth(env_for(bindir)).token("", "")
    assert str(info.value) == "failed to acquire Azure Entra ID token: Azure CLI: not signed in; run `az login`"
    assert exit_code(info.value) == Exit.CONNECTION


def test_no_tool_installed_keeps_the_managed_identity_error(bindir):
    with pytest.raises(TokenError) as info:
        AzureAuth(env_for(bindir)).token("", "")
    assert str(info.value).endswith("connection refused")
    assert "az login" in format_error(info.value)  # the hint names every way to sign in


def test_garbage_output_is_never_quoted(bindir):
    Tool(bindir, "az").answer(f"WARNING: something\n{CLI_TOKEN}\n")
    with pytest.raises(TokenError) as info:
        AzureAuth(env_for(bindir)).token("", "")
    assert str(info.value).startswith("failed to acquire Azure Entra ID token: Azure CLI (az account get-access-token)"
                                      ": the output is not the JSON object expected (")
    assert "Q0xJ" not in format_error(info.value)


def test_json_without_a_token(bindir):
    Tool(bindir, "az").answer(json.dumps({"tokenType": "Bearer"}))
    with pytest.raises(TokenError, match="the output has no 'accessToken'$"):
        AzureAuth(env_for(bindir)).token("", "")


def test_other_failure_is_one_escaped_redacted_line(bindir):
    Tool(bindir, "az").answer(err=f"ERROR: boom \x1b[31m{CLI_TOKEN}\nTraceback (most recent call last):\n", rc=2)
    from pgmilib.redact import register_secret

    register_secret(CLI_TOKEN)
    with pytest.raises(TokenError) as info:
        AzureAuth(env_for(bindir)).token("", "")
    text = format_error(info.value)
    assert "exit status 2: ERROR: boom \\x1b[31m[redacted]" in text
    assert "Traceback" not in text and "Q0xJ" not in text and "\x1b" not in text


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")  # a zombie: killed, waiting for its parent
    except FileNotFoundError:
        return True


def test_hanging_az_is_bounded_by_the_run_deadline(bindir):
    az = Tool(bindir, "az")
    az.hang()
    az.answer(az_json())
    with pytest.raises(TokenError) as info:
        AzureAuth(env_for(bindir), deadline=Deadline(1.0)).token("", "")
    assert "Azure CLI (az account get-access-token): timed out after" in str(info.value)
    assert Marker.DEADLINE in info.value.markers and exit_code(info.value) == Exit.TIMEOUT
    child = int(Path(f"{az.path}.child").read_text())
    for _ in range(50):  # SIGKILL to the whole group: the script's own child dies too
        if _gone(child):
            break
        time.sleep(0.1)
    assert _gone(child)


# ---------------------------------------------------------------------------------------
# End to end: the CLI's token reaches PostgreSQL, and never the output
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pg(pki):
    cluster = start_tls_cluster(pki)
    create_login(cluster, "dev@contoso", CLI_TOKEN)
    yield cluster
    cluster.stop()


def test_az_token_reaches_postgres(tls_pg, pki, bindir):
    Tool(bindir, "az").answer(az_json())
    params = ConnParams(host="localhost", port=tls_pg.port, user="dev@contoso", database="postgres",
                        auth_method="azure", sslrootcert=str(pki / "ca.crt"))
    conn = open_connection(params, environ=env_for(bindir))
    try:
        assert whoami(conn) == ("dev@contoso", True)
    finally:
        conn.close()


def test_cli_deploy_with_az_never_prints_the_token(tls_pg, pki, bindir, monkeypatch, capsys, tmp_path):
    Tool(bindir, "az").answer(az_json())
    for name in ("AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                 "AZURE_CLIENT_CERTIFICATE_PATH", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env_for(bindir).items():
        monkeypatch.setenv(name, value)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    code, out, err = run_cli(["deploy", str(project), "-d", "postgres", "--host", "localhost", "--port",
                              str(tls_pg.port), "-U", "dev@contoso", "--azure", "--sslrootcert",
                              str(pki / "ca.crt"), "--verbose"], capsys)
    assert code == 0, err
    assert CLI_TOKEN not in out + err and "Q0xJQ0xJ" not in out + err
    Tool(bindir, "az").answer(err="ERROR: Please run 'az login' to setup account.\n", rc=1)
    code, out, err = run_cli(["deploy", str(project), "-d", "postgres", "--host", "localhost", "--port",
                              str(tls_pg.port), "-U", "dev@contoso", "--azure", "--sslrootcert",
                              str(pki / "ca.crt")], capsys)
    assert code == Exit.CONNECTION
    assert "Azure CLI: not signed in; run `az login`" in err and len(err.strip().splitlines()) <= 3
    assert not os.path.exists(f"{bindir}/az.child")
