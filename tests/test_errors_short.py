"""Errors stay short: long CONTEXT is cut, an unknown line is said to be unknown (JSON null)."""

from __future__ import annotations

import json
import uuid

import pytest
from projects import EXECUTE_LOOP, write_project

from pgmilib.output import cut_lines


def _db() -> str:
    return "e_" + uuid.uuid4().hex[:10]


def _big_migration(missing: str) -> str:
    """A 774-line migration whose one failing statement (line 400) names a missing table."""
    lines = [f"CREATE TABLE t{i} (id int);" for i in range(1, 400)]
    lines.append(f"ALTER TABLE {missing}\n  ADD COLUMN note text;")
    lines += [f"COMMENT ON TABLE t{i} IS 'table {i}';" for i in range(1, 374)]
    return "\n".join(lines) + "\n"


def test_cut_lines_keeps_head_and_tail_and_counts() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 101))
    cut = cut_lines(text)
    assert cut.splitlines() == ["line 1", "line 2", "line 3", "line 4", "line 5", "... (92 lines left out) ...",
                                "line 98", "line 99", "line 100"]
    assert cut_lines("a\nb\nc") == "a\nb\nc"
    assert cut_lines("x" * 1000).endswith("... (600 more characters)")


def test_error_in_a_big_executed_file_is_short_and_names_the_line(tmp_path, run_pgmi):
    proj = write_project(tmp_path / "p", {"migrations/001_big.sql": _big_migration("audit_log")}, EXECUTE_LOOP)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == 13, result.stderr
    assert len(result.stderr.splitlines()) < 30, result.stderr
    assert "lines left out" in result.stderr
    assert 'CANDIDATE: ./migrations/001_big.sql:400:13 (names "audit_log" from the error)' in result.stderr
    env = json.loads(result.stdout)
    assert env["file"] == "./migrations/001_big.sql"
    assert (env["fileLine"], env["locatedBy"], env["fileExact"]) == (400, "name", False)
    assert len(env["where"].splitlines()) <= 9
    assert env["unitsCommitted"] == 0


def test_missing_extension_candidate(tmp_path, run_pgmi):
    migration = "CREATE TABLE a (id int);\nCREATE EXTENSION no_such_ext_xyz;\nCREATE TABLE b (id int);\n"
    proj = write_project(tmp_path / "p", {"migrations/001.sql": migration}, EXECUTE_LOOP)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == 13, result.stderr
    env = json.loads(result.stdout)
    assert (env["fileLine"], env["locatedBy"]) == (2, "name")


def test_timeout_inside_an_executed_file_has_no_made_up_line(tmp_path, run_pgmi):
    migration = "CREATE TABLE a (id int);\nSELECT pg_sleep(5);\nCREATE TABLE b (id int);\n"
    script = "SET statement_timeout = '300ms';\n" + EXECUTE_LOOP
    proj = write_project(tmp_path / "p", {"migrations/001.sql": migration}, script)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == 13, result.stderr
    env = json.loads(result.stdout)
    assert env["sqlstate"] == "57014"
    assert env["fileLine"] is None and env["locatedBy"] == "statement"  # no name, several statements


# ---- psql-only syntax in project files -------------------------------------------------------

DUMP = ("CREATE TABLE t (a int, b text);\n\nCOPY public.t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\n\n"
        "CREATE TABLE u (a int);\n")


@pytest.mark.parametrize("content, line, feature", [
    ("CREATE TABLE a (id int);\n\\connect other\nCREATE TABLE b (id int);\n", 2, "psql meta-command \\connect"),
    (DUMP, 4, "this looks like the data of a COPY ... FROM stdin block"),
    ("CREATE TABLE a (id int);\nSELECT :limit_rows;\n", 2, "psql variable :limit_rows"),
    ("CREATE TABLE a (id int);\nSELECT :'name';\n", 2, "psql variable :'name'"),
])
def test_psql_only_syntax_in_a_project_file_gets_a_hint(tmp_path, run_pgmi, content, line, feature):
    proj = write_project(tmp_path / "p", {"migrations/001.sql": content}, EXECUTE_LOOP)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == 13, result.stderr
    env = json.loads(result.stdout)
    assert (env["file"], env["fileLine"]) == ("./migrations/001.sql", line)
    assert f"HINT: {feature}" in result.stderr
    assert "cannot run through EXECUTE" in result.stderr and feature in env["psqlOnly"]


def test_psql_meta_command_in_deploy_sql_gets_a_hint(tmp_path, run_pgmi):
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n\\set ON_ERROR_STOP on\nSELECT 2;\n")
    result = run_pgmi("deploy", str(proj), "-d", _db())
    assert result.returncode == 13, result.stderr
    assert "HINT: psql meta-command \\set cannot run in deploy.sql" in result.stderr


def test_ordinary_syntax_error_gets_no_psql_hint(tmp_path, run_pgmi):
    proj = write_project(tmp_path / "p", {"migrations/001.sql": "CREATE TABLE a (id int);\nSELEC 1;\n"}, EXECUTE_LOOP)
    result = run_pgmi("deploy", str(proj), "-d", _db(), "--json")
    assert result.returncode == 13, result.stderr
    assert "psql" not in result.stderr
    assert "psqlOnly" not in json.loads(result.stdout)
