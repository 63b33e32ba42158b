"""Fleet input a CI job can get wrong, and a secret shaped like a database name.

`--shard ""` is what an unset CI variable gives: an error, never "no sharding" (every job
would deploy the whole list); a 5,000-digit shard is a usage error, not a crash. A targets
file with a stray key or a NUL byte: one line naming the file, the line and the problem.
A target whose database is named like its password: the name is a secret's value, so the
fleet's lines, table and JSON never show it.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from projects import query, write_project

from pgmilib.errors import UsageError
from pgmilib.fleet import parse_shard


@pytest.mark.parametrize("text, says", [
    ("", "--shard is empty"), ("  ", "--shard is empty"),
    ("1/" + "9" * 5000, "at most 9 digits"), ("9" * 5000 + "/2", "at most 9 digits"),
    ("١/٢", "expected I/N"),  # Arabic-Indic digits are not I/N
])
def test_bad_shards_are_usage_errors(text, says):
    with pytest.raises(UsageError, match=says) as raised:
        parse_shard(text)
    assert len(str(raised.value)) < 200


def _one_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_an_empty_shard_on_the_command_line(tmp_path, run_pgmi):
    project = write_project(tmp_path / "p", {"deploy.sql": "SELECT 1;\n"})
    (tmp_path / "t.yaml").write_text("targets:\n  - name: a\n    connection: {database: nowhere}\n")
    fleet = run_pgmi("deploy", str(project), "--targets", str(tmp_path / "t.yaml"), "--shard", "")
    assert fleet.returncode == 2 and "--shard is empty" in _one_line(fleet)
    single = run_pgmi("deploy", str(project), "-d", "nowhere", "--shard", "")
    assert single.returncode == 2 and "--shard needs a list of targets" in _one_line(single)
    huge = run_pgmi("deploy", str(project), "--targets", str(tmp_path / "t.yaml"), "--shard", "1/" + "7" * 5000)
    assert huge.returncode == 2 and "at most 9 digits" in _one_line(huge)


@pytest.mark.parametrize("body, says", [
    (b"targets:\n  - name: a\n    connection: {database: x}\nextra: 1\n",
     'line 4: unknown key "extra" in targets file: only `targets:` belongs here'),
    (b"targets:\n  - name: a\x00\n    connection: {database: x}\n",
     "line 2: character #x0000 is not allowed in YAML"),
])
def test_a_broken_targets_file_is_one_line(tmp_path, run_pgmi, body, says):
    project = write_project(tmp_path / "p", {"deploy.sql": "SELECT 1;\n"})
    (tmp_path / "t.yaml").write_bytes(body)
    proc = run_pgmi("deploy", str(project), "--targets", str(tmp_path / "t.yaml"))
    assert proc.returncode == 10
    line = _one_line(proc)
    assert line.startswith("pgmi: error: invalid configuration: failed to load targets file: ") and says in line
    assert "allowed: host" not in line  # not pgmi.yaml's connection keys


def test_a_database_named_like_its_password_is_never_shown(tmp_path, pg, run_pgmi):
    import uuid

    secret = "same_" + uuid.uuid4().hex[:12]  # the database name and the password
    parts = urlsplit(pg.url(secret))
    user = parts.username or "postgres"
    host = parts.netloc.rsplit("@", 1)[-1]
    url = urlunsplit((parts.scheme, f"{quote(user, safe='')}:{secret}@{host}", parts.path, parts.query, ""))
    project = write_project(tmp_path / "p", {"deploy.sql": "CREATE TABLE deployed (v int);\n"})
    (tmp_path / "t.yaml").write_text(f"targets:\n  - name: tenant\n    connection: '{url}'\n")
    try:
        proc = run_pgmi("deploy", str(project), "--targets", str(tmp_path / "t.yaml"), "--json", "-v")
        assert proc.returncode == 0, proc.stderr
        assert query(pg, secret, "SELECT count(*) FROM deployed") == [[0]]  # it really went there
        assert secret not in proc.stdout and secret not in proc.stderr
        [target] = json.loads(proc.stdout)["targets"]
        assert target["status"] == "success" and target["database"] == "[redacted]"
    finally:
        query(pg, "postgres", f'DROP DATABASE IF EXISTS "{secret}" WITH (FORCE)')
