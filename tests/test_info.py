"""`pgmi info`: offline project summary (template detection, counts, pgmi.yaml status)."""

from __future__ import annotations

import json
import os

import pytest
from projects import run_cli

UID = "550e8400-e29b-41d4-a716-446655440000"
META = f'/* <pgmi-meta id="{UID}" idempotent="true"></pgmi-meta> */\nSELECT 1;\n'


def write(root, rel, text):
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def run(argv, capsys):
    return run_cli(argv, capsys)


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "p"
    write(root, "deploy.sql", "BEGIN; COMMIT;\n")
    write(root, "migrations/001.sql", META)
    write(root, "migrations/002.PGSQL", "SELECT 2;\n")
    write(root, "migrations/003.sql.bak", "old\n")
    write(root, "__test__/test_a.sql", "SELECT 1;\n")
    write(root, "README.md", "hi\n")
    write(root, ".git/config", "hidden, not counted\n")
    return root


def test_info_json_counts_and_key_order(proj, capsys):
    code, out, err = run(["info", str(proj), "--json"], capsys)
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert list(doc) == ["path", "template", "deploySql", "configFile", "totalFiles", "sqlFiles", "testFiles",
                         "metadataWith", "directories"]
    assert doc == {
        "path": os.path.abspath(proj), "template": "basic", "deploySql": True, "configFile": "absent",
        "totalFiles": 5, "sqlFiles": 3, "testFiles": 1, "metadataWith": 1,
        "directories": {".": 1, "__test__": 1, "migrations": 3},
    }


def test_info_human(proj, capsys):
    code, out, _ = run(["info", str(proj)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"Project: {os.path.abspath(proj)}"
    assert lines[1] == "Template: basic"
    assert lines[2].startswith("deploy.sql: ") and lines[2].endswith(" present")
    assert "pgmi.yaml: absent" in lines
    assert "  Metadata: 1 / 5" in lines and "  SQL:      3" in lines
    assert f"  {'migrations':<30} 3 files" in lines
    assert lines.index("Directories") > lines.index("Files")


def test_template_detection_and_missing_deploy_sql(tmp_path, capsys):
    write(tmp_path, "x.sql", "SELECT 1;\n")
    doc = json.loads(run(["info", str(tmp_path), "--json"], capsys)[1])
    assert doc["template"] == "unknown" and doc["deploySql"] is False
    code, out, _ = run(["info", str(tmp_path)], capsys)
    assert code == 0 and "missing" in out.splitlines()[2]
    (tmp_path / "lib" / "api").mkdir(parents=True)
    write(tmp_path, "deploy.sql", "SELECT 1;\n")
    assert json.loads(run(["info", str(tmp_path), "--json"], capsys)[1])["template"] == "advanced"


def test_config_status_ok_and_error(proj, capsys):
    write(proj, "pgmi.yaml", "params:\n  env: dev\n")
    assert json.loads(run(["info", str(proj), "--json"], capsys)[1])["configFile"] == "ok"
    write(proj, "pgmi.yaml", "params: [unclosed\n")
    status = json.loads(run(["info", str(proj), "--json"], capsys)[1])["configFile"]
    assert status.startswith("error: ") and "pgmi.yaml" in status


def test_empty_project_omits_directories_section(tmp_path, capsys):
    code, out, _ = run(["info", str(tmp_path)], capsys)
    assert code == 0 and "Directories" not in out and "  Total:    0" in out


def test_scan_failures(tmp_path, capsys):
    code, _, err = run(["info", str(tmp_path / "missing")], capsys)
    assert code == 10 and "does not exist" in err
    write(tmp_path, "bad.sql", "/* <pgmi-meta id='x' idempotent='true'/> */")
    code, _, err = run(["info", str(tmp_path)], capsys)
    assert code == 10 and "./bad.sql" in err
    (tmp_path / "bad.sql").unlink()
    (tmp_path / "bin.dat").write_bytes(b"a\x00b")
    code, _, err = run(["info", str(tmp_path)], capsys)
    assert code == 1 and "NUL" in err


def test_default_path_is_current_directory(proj, capsys, monkeypatch):
    monkeypatch.chdir(proj)
    doc = json.loads(run(["info", "--json"], capsys)[1])
    assert doc["path"] == os.path.abspath(proj) and doc["totalFiles"] == 5
