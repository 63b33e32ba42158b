"""`--rehearse`: the atomic head runs (migrations, the test gate) and is rolled back."""

from __future__ import annotations

import json
import textwrap

import pytest
from projects import query, write_project

from pgmilib.deploy.rehearse import head_without_terminator, opens_transaction, terminator_span
from pgmilib.errors import ConfigError
from pgmilib.sqllex import split_units

GATED = textwrap.dedent("""\
    BEGIN;
    CREATE TABLE account(id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
    INSERT INTO account VALUES (1, 10);
    CALL pgmi_test();
    COMMIT;
""")
PASSING_TEST = "DO $$ BEGIN IF (SELECT balance FROM account WHERE id = 1) <> 10 THEN RAISE 'bad'; END IF; END $$;\n"
FAILING_TEST = "DO $$ BEGIN RAISE EXCEPTION 'balance check failed'; END $$;\n"



def test_rehearsal_runs_migrations_and_tests_then_rolls_back(tmp_path, pg, fresh_db, run_pgmi):
    proj = write_project(tmp_path / "p", {"__test__/test_balance.sql": PASSING_TEST}, GATED)
    r = run_pgmi("deploy", str(proj), "-d", fresh_db, "--rehearse")
    assert r.returncode == 0, r.stderr
    assert "Rehearsing" in r.stderr and "rolled back, nothing was changed" in r.stderr
    assert "1 test macro(s) expanded" in r.stderr and "1 test(s) passed" in r.stderr  # what ran: the test gate
    assert query(pg, fresh_db, "SELECT to_regclass('account') IS NULL") == [[True]]
    r = run_pgmi("deploy", str(proj), "-d", fresh_db, "--rehearse", "--json")
    envelope = json.loads(r.stdout)
    assert envelope["rehearsed"] is True and envelope["unitsCommitted"] == 0 and envelope["status"] == "success"
    assert envelope["testsPassed"] == 1
    # the real deploy afterwards applies it
    assert run_pgmi("deploy", str(proj), "-d", fresh_db).returncode == 0
    assert query(pg, fresh_db, "SELECT balance FROM account") == [[10]]


def test_failing_test_gate_fails_the_rehearsal(tmp_path, pg, fresh_db, run_pgmi):
    proj = write_project(tmp_path / "p", {"__test__/test_balance.sql": FAILING_TEST}, GATED)
    r = run_pgmi("deploy", str(proj), "-d", fresh_db, "--rehearse")
    assert r.returncode == 13, r.stderr
    assert "balance check failed" in r.stderr
    r = run_pgmi("deploy", str(proj), "-d", fresh_db, "--rehearse", "--json")
    assert r.returncode == 13 and json.loads(r.stdout)["rehearsed"] is True
    assert query(pg, fresh_db, "SELECT to_regclass('account') IS NULL") == [[True]]


def test_script_without_a_terminator_is_rolled_back_too(tmp_path, pg, fresh_db, run_pgmi):
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE implicit_tx(id int);\nINSERT INTO implicit_tx VALUES (1)")
    r = run_pgmi("deploy", str(proj), "-d", fresh_db, "--rehearse")
    assert r.returncode == 0, r.stderr
    assert query(pg, fresh_db, "SELECT to_regclass('implicit_tx') IS NULL") == [[True]]


def test_tail_units_are_refused_up_front_with_the_reason(tmp_path, pg, run_pgmi):
    import uuid

    missing = "reh_" + uuid.uuid4().hex[:10]
    script = "BEGIN;\nCREATE TABLE t(id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY t_id ON t(id);\n"
    proj = write_project(tmp_path / "p", {}, script)
    r = run_pgmi("deploy", str(proj), "-d", missing, "--rehearse")
    assert r.returncode == 10, r.stderr
    assert "cannot rehearse" in r.stderr and "from line 4" in r.stderr and "--ephemeral" in r.stderr
    assert "Traceback" not in r.stderr
    # refused before connecting: the database was not even created
    assert query(pg, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{missing}'") == [[0]]


def test_rehearsal_never_creates_the_database(tmp_path, pg, run_pgmi):
    import uuid

    missing = "reh_" + uuid.uuid4().hex[:10]
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    r = run_pgmi("deploy", str(proj), "-d", missing, "--rehearse")
    assert r.returncode == 11, r.stderr
    assert query(pg, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{missing}'") == [[0]]


@pytest.mark.parametrize("flag", ["--overwrite", "--ephemeral"])
def test_rehearse_refuses_flags_that_change_or_replace_the_server(tmp_path, fresh_db, run_pgmi, flag):
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    args = ["deploy", str(proj), "--rehearse", flag, "--force"] + ([] if flag == "--ephemeral" else ["-d", fresh_db])
    r = run_pgmi(*args)
    assert r.returncode == 10, r.stderr
    assert f"--rehearse cannot be combined with {flag}" in r.stderr


def test_fleet_rehearsal_changes_no_target(tmp_path, pg, create_database, run_pgmi):
    dbs = [create_database() for _ in range(3)]
    proj = write_project(tmp_path / "p", {"__test__/test_balance.sql": PASSING_TEST}, GATED)
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n" + "".join(f"  - name: t{i}\n    connection: {{database: {db}}}\n"
                                              for i, db in enumerate(dbs)))
    r = run_pgmi("deploy", str(proj), "--targets", str(targets), "--rehearse", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["rehearsed"] is True and doc["summary"]["succeeded"] == 3
    assert all(t["rehearsed"] for t in doc["targets"])
    for db in dbs:
        assert query(pg, db, "SELECT to_regclass('account') IS NULL") == [[True]]


# ---- the transformation itself (pure) --------------------------------------------------------


@pytest.mark.parametrize("script, expected", [
    ("BEGIN;\nCREATE TABLE a();\nCOMMIT;\n", "BEGIN;\nCREATE TABLE a();"),
    ("BEGIN; SELECT 1; END", "BEGIN; SELECT 1;"),
    ("BEGIN; SELECT 1; COMMIT AND CHAIN;", "BEGIN; SELECT 1;"),
    ("BEGIN; SELECT 'COMMIT;'; -- COMMIT;\nCOMMIT;", "BEGIN; SELECT 'COMMIT;';"),
])
def test_the_terminator_is_cut_off(script, expected):
    head = split_units(script)[0].text
    assert head_without_terminator(head) == expected


def test_a_begin_atomic_body_end_is_no_terminator():
    script = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\n"
    assert terminator_span(script) is None
    assert head_without_terminator(script) == script
    assert not opens_transaction(script)  # pgmi opens the rehearsal's transaction itself


@pytest.mark.parametrize("script, opens", [
    ("BEGIN;\nSELECT 1;", True),
    ("SET search_path = app;\nSTART TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;", True),
    ("-- BEGIN;\nSELECT 'BEGIN';\nDO $$ BEGIN PERFORM 1; END $$;", False),
    ("SELECT 1", False),
])
def test_whether_the_head_opens_its_own_transaction(script, opens):
    assert opens_transaction(script) is opens


def test_positions_before_the_terminator_are_unchanged():
    script = "BEGIN;\nSELECT x FROM nowhere;\nCOMMIT;\n"
    rehearsal = head_without_terminator(split_units(script)[0].text)
    assert rehearsal.index("nowhere") == script.index("nowhere")


def test_refuse_tail_names_the_line():
    from pgmilib.deploy.rehearse import refuse_tail

    refuse_tail("BEGIN; SELECT 1; COMMIT;\n")  # no tail: fine
    with pytest.raises(ConfigError, match="1 statement"):
        refuse_tail("BEGIN; SELECT 1; COMMIT;\nVACUUM;\n")
