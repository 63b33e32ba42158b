"""A password or token that cannot be sent (a control character against SCRAM, a NUL, a lone
surrogate): exit 11 and one line that says why without showing it, against a real SCRAM server."""

from __future__ import annotations

from pathlib import Path

import pg8000.native
import pytest

from pgmilib.errors import Exit
from pgmilib.server.cluster import Cluster
from tests.cloudfakes import FakeCloud, json_reply
from tests.projects import own_cluster, run_cli, write_project

ROLE, RIGHT = "scram_user", "right-password-1"


@pytest.fixture(scope="module")
def scram_server():
    """A throwaway cluster that requires SCRAM over TCP (trust over the socket for the test's own queries)."""
    with own_cluster(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{RIGHT}'",
                     hba="local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
                     listen_tcp=True, settings={"password_encryption": "scram-sha-256"}) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _no_libpq_env(monkeypatch):
    for name in ("PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGSSLMODE", "PGDATABASE", "DATABASE_URL",
                 "PGMI_CONNECTION_STRING", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_SECRET",
                 "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def _databases(cluster: Cluster) -> set[str]:
    admin = pg8000.native.Connection(**cluster.conn_kwargs())
    try:
        return {row[0] for row in admin.run("SELECT datname FROM pg_database")}
    finally:
        admin.close()


def _deploy(cluster: Cluster, tmp_path: Path, capsys, *extra: str) -> tuple[int, str]:
    project = write_project(tmp_path / "p", {}, deploy_sql="CREATE TABLE t (id int);\n")
    code, out, err = run_cli(["deploy", str(project), *extra], capsys)
    assert "Traceback" not in out + err
    return code, out + err


def _one_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("pgmi: error:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(("password", "why"), [
    ("Sek\x01ret-value", "contains a control character, which SCRAM authentication (SASLprep) does not allow"),
    ("Sek\x1bret-value", "contains a control character, which SCRAM authentication (SASLprep) does not allow"),
])
def test_pgpassword_with_a_control_character(scram_server, tmp_path, capsys, monkeypatch, password, why):
    monkeypatch.setenv("PGPASSWORD", password)
    code, text = _deploy(scram_server, tmp_path, capsys, "-d", "never_created", "--host", "127.0.0.1", "--port",
                         str(scram_server.port), "-U", ROLE, "--sslmode", "disable")
    assert code == Exit.CONNECTION
    assert _one_error(text) == (f'pgmi: error: cannot log in as "{ROLE}" at 127.0.0.1:{scram_server.port}: '
                                f"the password {why}")
    assert "Sek" not in text and "ret-value" not in text
    assert "never_created" not in _databases(scram_server)


@pytest.mark.parametrize(("encoded", "why"), [("Sek%0Aret-value", "contains a control character"),
                                              ("Sek%00ret-value", "contains a NUL character")])
def test_uri_password_with_an_encoded_control_character(scram_server, tmp_path, capsys, encoded, why):
    url = f"postgresql://{ROLE}:{encoded}@127.0.0.1:{scram_server.port}/never_created?sslmode=disable"
    code, text = _deploy(scram_server, tmp_path, capsys, "--connection", url)
    assert code in (Exit.CONNECTION, Exit.CONFIG), text
    assert why in _one_error(text) or "%00" in _one_error(text)
    assert "ret-value" not in text and "never_created" not in _databases(scram_server)


@pytest.mark.parametrize(("token", "why"), [("tok\nen-secret-value", "contains a control character"),
                                            ("tok\x00en-secret-value", "contains a NUL character")])
def test_cloud_token_with_a_control_character(scram_server, tmp_path, capsys, monkeypatch, token, why):
    fake = FakeCloud()
    try:
        fake.routes[("GET", "/msi/token")] = lambda r: json_reply({"access_token": token, "expires_in": 3600})
        monkeypatch.setenv("IDENTITY_ENDPOINT", fake.url + "/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "hdr-secret-value")
        code, text = _deploy(scram_server, tmp_path, capsys, "-d", "never_created", "--host", "127.0.0.1", "--port",
                             str(scram_server.port), "-U", ROLE, "--azure", "--sslmode", "disable")
    finally:
        fake.close()
    assert code == Exit.CONNECTION
    line = _one_error(text)
    assert line.startswith(f'pgmi: error: cannot log in as "{ROLE}" at 127.0.0.1:{scram_server.port}: the token {why}')
    assert "en-secret-value" not in text and "hdr-secret-value" not in text
    assert len(fake.requests) == 1  # refused, not retried: a malformed token does not heal


def test_the_right_password_still_logs_in(scram_server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", RIGHT)
    code, text = _deploy(scram_server, tmp_path, capsys, "-d", "auth_ok", "--host", "127.0.0.1", "--port",
                         str(scram_server.port), "-U", ROLE, "--sslmode", "disable")
    assert code == Exit.SUCCESS, text
    assert "auth_ok" in _databases(scram_server)
