"""A catalogue of token-endpoint misbehaviours against every provider's HTTP calls, through real pgmi runs.

Each case points one provider's credential flow at `tests/hostile_http.py` (raw sockets on
127.0.0.1) doing one thing wrong, and runs `pgmi deploy --<provider> --timeout 3s` against a
closed database port (a token that is accepted then meets "connection refused"). Every run
must: exit 11 or 16, within `--timeout` + 5 s of its first `-v` line (where its clock starts);
print one `pgmi: error:` line and
no traceback; never show the client secret sent or the token answered (both canaries, so the
session's final scan counts them too), nor a raw control character.

Fast slice: each misbehaviour once, the provider chosen by the seed; full: every pair.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
from pathlib import Path

import pytest
from harness import CANARY_PASSWORD, CANARY_TOKEN, FIGURES, FULL, SEED, assert_clean, base_env, error_lines
from timed_run import run_timed

from tests.cloudfakes import closed_port_url
from tests.hostile_http import (
    HostileEndpoint,
    answer,
    drip,
    endless,
    http_response,
    reset,
    silent,
    slow,
)

TIMEOUT = 3.0
BOUND = TIMEOUT + 5.0

# What a well-behaved endpoint of each provider would answer (the token is the canary).
_TOKEN = json.dumps({"access_token": CANARY_TOKEN, "token_type": "Bearer", "expires_in": 3600}).encode()
_AWS = json.dumps({"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": CANARY_TOKEN, "Token": CANARY_TOKEN + "-session",
                   "Expiration": "2099-01-01T00:00:00Z"}).encode()
_META = {"Metadata-Flavor": "Google"}


def _good(provider: str) -> bytes:
    body = _AWS if provider.startswith("aws") else _TOKEN
    return http_response(200, body, headers=_META if provider == "google-metadata" else None)


def _imds(ex) -> None:
    """A well-behaved EC2 instance metadata service: session token, role name, credentials."""
    line = ex.read_request().split(b"\r\n", 1)[0]
    if line.startswith(b"PUT /latest/api/token"):
        ex.send(http_response(200, b"imds-session-token", content_type="text/plain"))
    elif line.startswith(b"GET /latest/meta-data/iam/security-credentials/ "):
        ex.send(http_response(200, b"deploy-role", content_type="text/plain"))
    else:
        ex.send(_good("aws-imds"))


MISBEHAVIOURS = {
    "slow": lambda p: slow(_good(p), TIMEOUT + 10),
    "silent": lambda p: silent,
    "drip": lambda p: drip(_good(p), 0.1),
    "reset": lambda p: reset,
    "redirect": lambda p: answer(http_response(302, b"", headers={"Location": "http://127.0.0.1:1/steal"})),
    "bom-json": lambda p: answer(http_response(200, b"\xef\xbb\xbf" + (_AWS if p.startswith("aws") else _TOKEN),
                                               headers=_META if p == "google-metadata" else None)),
    "bom-garbage": lambda p: answer(http_response(200, b"\xef\xbb\xbf<p>" + CANARY_TOKEN.encode() + b"</p>",
                                                  headers=_META if p == "google-metadata" else None)),
    "huge": lambda p: answer(http_response(200, b"{" + b" " * (5 << 20) + b"}")),
    "endless": lambda p: endless(b"x" * 65536, http_response(200, b"", length=False)),
    "control-characters": lambda p: answer(http_response(
        400, b'{"error": "denied\\u001b]0;owned\\u0007", "error_description": "\\u001b[2Jcleared"}')),
    "wrong-content-type": lambda p: answer(http_response(200, b"<html>" + CANARY_TOKEN.encode() + b"</html>",
                                                        content_type="text/html",
                                                        headers=_META if p == "google-metadata" else None)),
    "not-http": lambda p: answer(b"SSH-2.0-OpenSSH_9.6\r\n\x1b[2J\x07\r\n"),
}


def _env(provider: str, url: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """(pgmi flags, environment) routing `provider`'s token fetch to `url`."""
    hostport = url.removeprefix("http://")
    env = {"HOME": str(tmp), "CLOUDSDK_CONFIG": str(tmp / "gcloud"), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none")}
    if provider == "azure":
        return ["--azure"], {**env, "AZURE_AUTHORITY_HOST": url, "AZURE_CLIENT_SECRET": CANARY_PASSWORD,
                             "AZURE_TENANT_ID": "contoso.com", "AZURE_CLIENT_ID": "app-id"}
    if provider == "azure-app-service":
        return ["--azure"], {**env, "IDENTITY_ENDPOINT": url + "/msi/token", "IDENTITY_HEADER": CANARY_PASSWORD}
    if provider == "aws":
        return ["--aws", "--aws-region", "eu-west-1"], {
            **env, "AWS_CONTAINER_CREDENTIALS_FULL_URI": url + "/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": CANARY_PASSWORD}
    if provider == "aws-imds":
        env.pop("AWS_EC2_METADATA_DISABLED")
        return ["--aws", "--aws-region", "eu-west-1"], {**env, "AWS_EC2_METADATA_SERVICE_ENDPOINT": url}
    if provider == "google":
        creds = tmp / "user.json"
        creds.write_text(json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": CANARY_PASSWORD,
                                     "refresh_token": CANARY_PASSWORD + "-refresh", "token_uri": url + "/token"}))
        return ["--google", "--google-instance", "p:r:i"], {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(creds)}
    assert provider == "google-metadata"
    return ["--google", "--google-instance", "p:r:i"], {**env, "GCE_METADATA_HOST": hostport}


PROVIDERS = ("azure", "azure-app-service", "aws", "aws-imds", "google", "google-metadata")
_rng = random.Random(SEED)
CASES = ([(p, m) for m in MISBEHAVIOURS for p in PROVIDERS] if FULL
         else [(_rng.choice(PROVIDERS), m) for m in MISBEHAVIOURS])


def _run(provider: str, misbehaviour: str, project: Path, tmp: Path) -> dict:
    server = HostileEndpoint(MISBEHAVIOURS[misbehaviour](provider))
    try:
        flags, extra = _env(provider, server.url, tmp)
        port = closed_port_url().rsplit(":", 1)[1]
        args = ["deploy", str(project), "-d", "app", "--host", "127.0.0.1", "--port", port, "-U", "app_user",
                "--sslmode", "disable", "--timeout", f"{TIMEOUT:g}s", *flags]
        run = run_timed([*args, "-v"], base_env(extra), BOUND + 30)
    finally:
        server.close()
    return {"rc": run.rc, "stdout": run.stdout, "stderr": run.stderr, "elapsed": run.elapsed,
            "asked": len(server.exchanges), "hung": run.hung}


def test_token_endpoint_misbehaviours(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "deploy.sql").write_text("SELECT 1;\n")

    def one(case: tuple[str, str]) -> tuple[str, str, dict]:
        provider, misbehaviour = case
        home = tmp_path / f"{provider}-{misbehaviour}"
        home.mkdir()
        return provider, misbehaviour, _run(provider, misbehaviour, project, home)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, CASES))
    problems = []
    slowest = 0.0
    for provider, misbehaviour, result in results:
        where = f"{provider} / {misbehaviour} (seed {SEED})"
        rc, stderr = result["rc"], result["stderr"]
        FIGURES["token endpoint cases"] += 1
        slowest = max(slowest, result["elapsed"])
        assert_clean(where, result["stdout"], stderr)  # no traceback, no canary (secret sent or token answered)
        errors = error_lines(stderr)
        if result["asked"] == 0:
            problems.append(f"{where}: pgmi never reached the endpoint\n{stderr}")
        if rc not in (11, 16):
            problems.append(f"{where}: exit {rc}, expected 11 or 16\n{stderr}")
        if result["hung"] or result["elapsed"] > BOUND:
            problems.append(f"{where}: took {result['elapsed']:.1f}s, bound --timeout + 5s = {BOUND:g}s")
        if len(errors) != 1:
            problems.append(f"{where}: expected one error line\n{stderr}")
        if any(ch in stderr for ch in "\x1b\x07\x00"):
            problems.append(f"{where}: a raw control character reached the terminal\n{stderr!r}")
        FIGURES[f"token endpoint exit {rc}"] += 1
    FIGURES["token endpoint slowest run (s)"] = round(slowest, 1)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_good_answer_reaches_the_database_step(provider, tmp_path):
    """The catalogue's control: the well-behaved answer is accepted, so each failure above is the endpoint's."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "deploy.sql").write_text("SELECT 1;\n")
    server_ok = _imds if provider == "aws-imds" else answer(_good(provider))
    MISBEHAVIOURS["_control"] = lambda p: server_ok
    try:
        result = _run(provider, "_control", project, tmp_path)
    finally:
        del MISBEHAVIOURS["_control"]
    assert_clean(f"{provider} control", result["stdout"], result["stderr"])
    assert result["rc"] == 11 and "connection refused to 127.0.0.1" in result["stderr"], result["stderr"]
