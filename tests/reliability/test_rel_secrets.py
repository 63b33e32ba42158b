"""Canary secrets through the paths most likely to leak them: test reports and the panic path.

Every other test of this suite already runs pgmi with the canary password and token and
records all output (harness.capture); the session end scans it all (conftest.py). This file
adds the outputs nothing else produces: JUnit/TAP/JSON test reports of a run whose failing
test quotes the token, and pgmi's crash report (exit 3) for an unexpected exception whose
text carries both secrets -- raised after the run registered them, so only a redaction
that outlives the run's secret scope keeps them out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from harness import CANARY_PASSWORD, CANARY_TOKEN, FIGURES, REPO, assert_clean, base_env, run_pgmi, secret_hits


def _project(root: Path) -> Path:
    (root / "__test__").mkdir(parents=True)
    (root / "deploy.sql").write_text("BEGIN;\nCREATE TABLE t (x int);\nCALL pgmi_test();\nCOMMIT;\n")
    (root / "__test__" / "test_ok.sql").write_text("SELECT 1;\n")
    (root / "__test__" / "test_leaky.sql").write_text(
        "DO $$ BEGIN RAISE NOTICE 'using %', current_setting('pgmi.api_token');\n"
        "RAISE EXCEPTION 'token % rejected', current_setting('pgmi.api_token')\n"
        "USING DETAIL = 'detail ' || current_setting('pgmi.api_token'), HINT = current_setting('pgmi.api_token');\n"
        "END $$;\n")
    return root


def test_test_reports_hold_no_secret(rel_server, tmp_path):
    project = _project(tmp_path / "p")
    reports = {fmt: tmp_path / f"report.{fmt}" for fmt in ("junit", "tap", "json")}
    db = rel_server.create_database()
    try:
        proc = run_pgmi(["deploy", str(project), "--json", "-v", "--connection", rel_server.url(db), "--param",
                         f"api_token={CANARY_TOKEN}", *[f"--test-report={fmt}:{path}" for fmt, path in reports.items()]],
                        base_env(), label="secrets reports")
    finally:
        rel_server.drop_database(db)
    assert proc.returncode == 13, proc.stderr
    assert "rejected" in proc.stderr  # the failure itself is reported, only the secret is masked
    for fmt, path in reports.items():
        text = path.read_text(encoding="utf-8")
        assert "rejected" in text, f"{fmt} report does not show the failing test"
        FIGURES["test reports scanned"] += 1
        # Counted apart from the session's scan while finding R6 is open (see docs/RELIABILITY.md).
        FIGURES["secret hits in open findings (R5, R6)"] += secret_hits(text)
    leaks = [fmt for fmt, path in reports.items() if secret_hits(path.read_text(encoding="utf-8"))]
    assert not leaks, f"canary in the {', '.join(leaks)} report(s)"


def test_panic_report_holds_no_secret(rel_server, tmp_path):
    """An unexpected exception after connecting: exit 3, a bug report, and no secret in it."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.sql").write_text("SELECT 1;\n")
    db = rel_server.create_database()
    crash = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import pgmilib.deploy.execute as execute\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('unexpected state ' + sys.argv[2] + ' / ' + sys.argv[3])\n"
        "execute.run_units = broken\n"
        "from pgmilib.cli import main\n"
        "sys.exit(main(sys.argv[4:]))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", crash, str(REPO), CANARY_PASSWORD, CANARY_TOKEN, "deploy",
                               str(project), "--connection", rel_server.url(db), "--param", f"api_token={CANARY_TOKEN}"],
                              env=base_env(), capture_output=True, text=True, timeout=120, check=False)
    finally:
        rel_server.drop_database(db)
    assert proc.returncode == 3, proc.stderr
    assert "this is a bug" in proc.stderr
    FIGURES["panic reports scanned"] += 1
    # Counted apart from the session's scan while finding R5 is open (see docs/RELIABILITY.md).
    FIGURES["secret hits in open findings (R5, R6)"] += secret_hits(proc.stderr)
    assert secret_hits(proc.stderr) == 0, proc.stderr[-1500:]


def test_canaries_are_detected(tmp_path):
    """The scan itself can fail: a text holding a canary is counted (a scan that never hits proves nothing)."""
    assert secret_hits(f"x {CANARY_PASSWORD} y {CANARY_TOKEN}") == 2
    with pytest.raises(AssertionError):
        assert_clean("self-check", "", f"pgmi: error: {CANARY_TOKEN}")
    from harness import CAPTURED

    CAPTURED.pop()  # the self-check's deliberate leak is not part of the figures
    CAPTURED.pop()
