"""The typed core `deploy(DeployRequest, Output) -> DeployResult`, as serve, fleet and tests call it."""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from projects import query, write_project

from pgmilib.deploy import Cancellation, ConnectionFlags, DeployRequest, deploy
from pgmilib.errors import Exit
from pgmilib.output import Output


def _db() -> str:
    return "api_" + uuid.uuid4().hex[:10]



def _out() -> Output:
    return Output(json_mode=True, stdout=io.StringIO(), stderr=io.StringIO())


def _environ(pg) -> dict[str, str]:
    """The test server's connection variables only: nothing inherited from this process."""
    return {"HOME": "/nonexistent-home", "USER": "tester", **pg.env()}


def test_deploy_returns_a_result_matching_the_database(tmp_path, pg):
    db = _db()
    proj = write_project(tmp_path / "p", {}, "CREATE TABLE made_by_api(id int);\nINSERT INTO made_by_api VALUES (1);\n")
    out = _out()
    result = deploy(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=db),
                                  environ=_environ(pg)), out)
    assert result.ok and result.exit_code == Exit.SUCCESS and result.error is None
    assert result.database == db and result.deployer_ran and result.units_total == 1
    assert result.envelope["status"] == "success" and result.envelope["unitsCommitted"] == 1
    assert result.summary.startswith(f"{db}: 0 files loaded")
    assert out.stdout.getvalue() == ""  # deploy() prints no data; the caller decides what to show
    assert query(pg, db, "SELECT count(*) FROM made_by_api") == [[1]]


def test_deploy_failure_is_a_result_not_an_exception(tmp_path, pg):
    result = deploy(DeployRequest(project_path=str(tmp_path / "missing"), connection=ConnectionFlags(database=_db()),
                                  environ=_environ(pg)), _out())
    assert result.exit_code == Exit.CONFIG and not result.ok
    assert result.envelope["status"] == "failed" and result.envelope["exitCode"] == 10
    assert "missing" in result.error_text and "Traceback" not in result.error_text


def _notice_project(root: Path, database: str, token_of_other: str) -> Path:
    """A project whose .env names its own database and whose deploy.sql echoes its settings."""
    deploy_sql = (
        "DO $$ BEGIN\n"
        "  RAISE NOTICE 'db=% token=% other=%', current_database(), current_setting('pgmi.api_token'),\n"
        f"    '{token_of_other}';\n"
        "  PERFORM pg_sleep(0.5);\n"  # make the two runs overlap
        "END $$;\n"
        "CREATE TABLE marker(project text);\n"
        f"INSERT INTO marker VALUES ('{root.name}');\n"
    )
    proj = write_project(root, {}, deploy_sql)
    (proj / ".env").write_text(f"PGDATABASE={database}\nPGAPPNAME=app-{root.name}\n", encoding="utf-8")
    return proj


def test_two_deploys_in_one_process_do_not_share_env_params_secrets_or_notices(tmp_path, pg):
    """Threads of one process (pgmi serve, fleet): each run sees only its own .env, parameters and secrets."""
    token = {"a": "tok-a-" + uuid.uuid4().hex, "b": "tok-b-" + uuid.uuid4().hex}
    dbs = {"a": _db(), "b": _db()}
    projects = {"a": _notice_project(tmp_path / "a", dbs["a"], token["b"]),
                "b": _notice_project(tmp_path / "b", dbs["b"], token["a"])}
    outs = {name: Output(stdout=io.StringIO(), stderr=io.StringIO()) for name in projects}
    results: dict[str, object] = {}
    environ_before = dict(os.environ)
    start = threading.Barrier(2)

    def run(name: str) -> None:
        start.wait()
        results[name] = deploy(DeployRequest(project_path=str(projects[name]), environ=_environ(pg),
                                             params={"api_token": token[name]}), outs[name])

    threads = [threading.Thread(target=run, args=(name,)) for name in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert dict(os.environ) == environ_before  # no .env value ever reached the process environment
    for name, other in (("a", "b"), ("b", "a")):
        result = results[name]
        assert result.ok, result.error_text
        assert result.database == dbs[name]  # from this project's .env, not the other's
        assert query(pg, dbs[name], "SELECT project FROM marker") == [[name]]
        log = outs[name].stderr.getvalue()
        assert f"db={dbs[name]}" in log and dbs[other] not in log  # only its own notices
        assert token[name] not in log and "token=[redacted]" in log  # its own secret parameter is masked
        # ...and the other run's secret is not this run's: it is shown as the plain text it is here.
        assert f"other={token[other]}" in log


def test_cancellation_stops_the_statement_and_commits_nothing(tmp_path, pg):
    db = _db()
    proj = write_project(tmp_path / "p", {}, "BEGIN;\nCREATE TABLE half(id int);\nSELECT pg_sleep(300);\nCOMMIT;\n")
    cancel = Cancellation()
    threading.Timer(1.5, cancel.cancel).start()
    began = time.monotonic()
    result = deploy(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=db),
                                  environ=_environ(pg)), _out(), cancel=cancel)
    assert result.exit_code == Exit.INTERRUPTED
    assert time.monotonic() - began < 120  # far below the 300 s sleep: the statement was cancelled
    assert result.envelope["unitsCommitted"] == 0
    assert query(pg, db, "SELECT to_regclass('half') IS NULL") == [[True]]
    # the session is gone and its lock with it: nothing idle in transaction is left behind
    # (the server notices a closed socket asynchronously, so give it a moment)
    for _ in range(50):
        if query(pg, "postgres", f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'") == [[0]]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the cancelled deploy's session is still on the server")


@pytest.mark.parametrize("timeout", ["1s"])
def test_timeout_says_so(tmp_path, pg, timeout):
    proj = write_project(tmp_path / "p", {}, "SELECT pg_sleep(30);\n")
    result = deploy(DeployRequest(project_path=str(proj), connection=ConnectionFlags(database=_db()),
                                  environ=_environ(pg), timeout=timeout), _out())
    assert result.exit_code == Exit.TIMEOUT
    assert result.error_text.startswith(f"deployment timed out after {timeout} (--timeout)")
    assert result.envelope["error"].startswith(f"deployment timed out after {timeout} (--timeout)")


def test_an_api_caller_supplies_the_overwrite_approver_and_without_one_the_overwrite_is_refused(tmp_path, pg):
    """The core never asks on a terminal: `DeployRequest.approver` decides; none and no `force` refuses."""
    from pgmilib.errors import ApprovalDenied

    db = _db()
    first = write_project(tmp_path / "a", {}, "CREATE TABLE kept(id int);\n")
    assert deploy(DeployRequest(project_path=str(first), connection=ConnectionFlags(database=db),
                                environ=_environ(pg)), _out()).ok
    second = write_project(tmp_path / "b", {}, "CREATE TABLE fresh(id int);\n")

    refused = deploy(DeployRequest(project_path=str(second), connection=ConnectionFlags(database=db),
                                   environ=_environ(pg), overwrite=True), _out())
    assert refused.exit_code == Exit.APPROVAL_DENIED and "approval denied" in refused.error_text
    assert query(pg, db, "SELECT relname FROM pg_class WHERE relname IN ('kept', 'fresh')") == [["kept"]]

    asked: list[str] = []

    class Declining:
        def approve(self, database: str) -> None:
            asked.append(database)
            raise ApprovalDenied(f"approval denied: {database} is not to be dropped today")

    declined = deploy(DeployRequest(project_path=str(second), connection=ConnectionFlags(database=db),
                                    environ=_environ(pg), overwrite=True, force=True, approver=Declining()), _out())
    assert asked == [db]  # the caller's approver wins over `force`
    assert declined.exit_code == Exit.APPROVAL_DENIED and "not to be dropped today" in declined.error_text
    assert query(pg, db, "SELECT relname FROM pg_class WHERE relname IN ('kept', 'fresh')") == [["kept"]]

    class Accepting:
        def approve(self, database: str) -> None:
            asked.append(database)

    done = deploy(DeployRequest(project_path=str(second), connection=ConnectionFlags(database=db),
                                environ=_environ(pg), overwrite=True, approver=Accepting()), _out())
    assert done.ok and asked == [db, db]
    assert query(pg, db, "SELECT relname FROM pg_class WHERE relname IN ('kept', 'fresh')") == [["fresh"]]
