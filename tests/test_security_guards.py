"""Guards that stop a destructive or unsupported run, and the exit codes scripts branch on.

Each rule is pinned by a test that fails when the rule is broken (docs/RELIABILITY.md, mutation):
the overwrite approver (a bare Enter never approves the DROP; names are compared exactly), the
MCP `confirmDatabaseName`, the session API versions, the server-version floor, the exit-code
classification (every pair of markers), `init` into a dangling symlink, the plan's file summary.
"""

from __future__ import annotations

import io
import itertools
import os
import select
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

import pytest

from pgmilib.cli.approvers import InteractiveApprover, choose_approver
from pgmilib.deploy import session
from pgmilib.deploy.dbadmin import RefusingApprover
from pgmilib.errors import (
    ApprovalDenied,
    ConcurrentDeploy,
    ConfigError,
    ConnectionFailed,
    DeadlineExceeded,
    DeploySqlMissing,
    ExecutionFailed,
    Exit,
    Interrupted,
    Marker,
    PgmiError,
    UsageError,
    exit_code,
)
from pgmilib.output import Output
from tests.projects import query, run_cli, write_project

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- the overwrite approver ---------------------------------------------------------------------


def _out() -> Output:
    return Output(stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.parametrize("typed", ["\n", "\r\n", "   \n", "y\n", "yes\n", "Orders\n".lower(), "Order\n",
                                   "Orders2\n", "\"Orders\"\n"])
def test_interactive_approver_denies_anything_but_the_exact_name(typed):
    out = _out()
    with pytest.raises(ApprovalDenied) as info:
        InteractiveApprover(out, io.StringIO(typed)).approve("Orders")
    assert exit_code(info.value) == Exit.APPROVAL_DENIED
    assert "was not confirmed" in str(info.value) and "Cancelled." in out.stderr.getvalue()
    assert "Confirmed." not in out.stderr.getvalue()


def test_interactive_approver_accepts_the_exact_name_only():
    out = _out()
    InteractiveApprover(out, io.StringIO("Orders\n")).approve("Orders")
    assert "Type the database name to confirm: " in out.stderr.getvalue()
    assert out.stderr.getvalue().rstrip().endswith("Confirmed.")


def test_interactive_approver_end_of_input_denies():
    out = _out()
    with pytest.raises(ApprovalDenied) as info:
        InteractiveApprover(out, io.StringIO("")).approve("Orders")
    assert "no confirmation" in str(info.value) and "--force" in out.stderr.getvalue()


def test_refusing_approver_names_force():
    with pytest.raises(ApprovalDenied) as info:
        RefusingApprover().approve("Orders")
    assert "--force" in str(info.value) and '"Orders"' in str(info.value)
    assert isinstance(choose_approver(False, False, _out()), RefusingApprover)


def _read_until(fd: int, marker: bytes, limit: float = 60.0) -> bytes:
    seen = b""
    until = time.monotonic() + limit
    while marker not in seen:
        left = until - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} in {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {marker!r}: {seen[-500:]!r}")
            seen += chunk
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_enter_at_the_terminal_never_approves_the_drop(pg, create_database, tmp_path):
    import pty

    name = create_database()
    query(pg, name, "CREATE TABLE keep_me (x int)")
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_PG_")}
    env.pop("CI", None)
    env.pop("PGMI_NON_INTERACTIVE", None)
    env.update(pg.env(), PGMI_NO_BANNER="1", TERM="dumb")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "pgmi.py"), "deploy", str(project), "-d", name,
                             "--overwrite"], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    try:
        _read_until(master, b"Type the database name to confirm: ")
        os.write(master, b"\r")  # Enter, as a terminal sends it
        proc.wait(timeout=60)
        rest = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            rest += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == Exit.APPROVAL_DENIED, rest
    assert b"not confirmed" in rest
    assert query(pg, name, "SELECT to_regclass('keep_me') IS NOT NULL") == [[True]]  # nothing was dropped


def test_mcp_confirm_database_name_is_case_sensitive(pg, create_database, tmp_path):
    from pgmilib.mcp.tool_deploy import deploy_tool
    from pgmilib.mcp.tools import CallContext

    name = create_database()  # lower case, like `orders`
    query(pg, name, "CREATE TABLE keep_me (x int)")
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    base = {"path": str(project), "connection": pg.url("postgres"), "database": name, "overwrite": True}
    for confirm in (name.upper(), name.capitalize(), name + " ", " " + name, "", None):
        with pytest.raises(PgmiError) as info:
            deploy_tool({**base, "confirmDatabaseName": confirm}, CallContext())
        assert exit_code(info.value) == Exit.GENERAL, confirm  # 1, as the original reports it
        assert "nothing was deployed or dropped" in str(info.value)
        assert query(pg, name, "SELECT to_regclass('keep_me') IS NOT NULL") == [[True]]
    result = deploy_tool({**base, "confirmDatabaseName": name}, CallContext())
    assert result.get("isError") is not True
    assert query(pg, name, "SELECT to_regclass('keep_me') IS NOT NULL") == [[False]]  # dropped and recreated


def test_mcp_overwrite_confirmation_needs_the_exact_mixed_case_name():
    from pgmilib.mcp.tool_deploy import deploy_tool

    base = {"path": "/nonexistent", "connection": "postgresql://u@h/d", "database": "Orders", "overwrite": True}
    with pytest.raises(PgmiError) as info:
        deploy_tool({**base, "confirmDatabaseName": "orders"}, None)
    assert str(info.value).startswith('confirmDatabaseName "orders" does not match database "Orders"')


# ---- session API versions and the server-version floor ------------------------------------------


@pytest.mark.parametrize("compat", ["1.5", "10", "01", "1.0", " 1", "1 ", "2", "0", "latest"])
def test_unsupported_compat_levels_are_refused(compat):
    with pytest.raises(ConfigError) as info:
        session.check_compat(compat)
    assert exit_code(info.value) == Exit.CONFIG
    assert f'unsupported API version "{compat}"; supported: [1]' in str(info.value)


def test_supported_compat_levels():
    assert session.check_compat("") == "1"
    assert session.check_compat("1") == "1"


@pytest.mark.parametrize("compat", ["1.5", "10"])
def test_cli_compat_refused_before_anything_is_created(pg, conn, tmp_path, capsys, monkeypatch, compat):
    for key, value in pg.env().items():
        monkeypatch.setenv(key, value)
    name = "t_" + uuid.uuid4().hex[:12]
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    code, _out, err = run_cli(["deploy", str(project), "-d", name, "--compat", compat], capsys)
    assert code == Exit.CONFIG and f'unsupported API version "{compat}"' in err
    assert conn.run("SELECT count(*) FROM pg_database WHERE datname = :d", d=name) == [[0]]


@pytest.mark.parametrize(("number", "text", "ok"), [
    (110000, "11.0", True), (109999, "10.99", False), (100023, "10.23", False), (180001, "18.1", True),
])
def test_server_version_floor_at_its_boundary(conn, monkeypatch, number, text, ok):
    """What an older server would report, at start-up and when asked, given by the real one."""
    real = session.read_sql_section
    asked = []

    def section(name: str, part: str) -> str:
        if (name, part) == ("session_load.sql", "server_version"):
            asked.append(part)
            return f"SELECT {number}, '{text}'"
        return real(name, part)

    monkeypatch.setattr(session, "read_sql_section", section)
    monkeypatch.setitem(conn.parameter_statuses, "server_version", text)
    if ok:
        session.check_server_version(conn)
        assert asked == []  # the start-up report was enough
        return
    with pytest.raises(ConfigError) as info:
        session.check_server_version(conn)
    assert asked == ["server_version"]  # a refusal is the server's own answer, asked for
    assert str(info.value).endswith(f"this server reports PostgreSQL {text}, and pgmi requires 11 or newer")
    assert exit_code(info.value) == Exit.CONFIG


@pytest.mark.parametrize("reported", [None, "", "devel", "10.23"])
def test_server_version_asked_when_the_report_does_not_settle_it(conn, monkeypatch, reported):
    """No report, an unreadable one or one below the floor: the server's answer decides (here the
    real server's, 11+, so the run goes on; an unreadable report is never a refusal by itself)."""
    if reported is None:
        monkeypatch.delitem(conn.parameter_statuses, "server_version")
    else:
        monkeypatch.setitem(conn.parameter_statuses, "server_version", reported)
    real = session.read_sql_section
    asked = []
    monkeypatch.setattr(session, "read_sql_section", lambda name, part: asked.append(part) or real(name, part))
    session.check_server_version(conn)
    assert asked == ["server_version"]


@pytest.mark.parametrize(("text", "number"), [
    ("15.18 (Debian 15.18-0+deb12u1)", 150018), ("18.1", 180001), ("11.0", 110000), ("10.23", 100023),
    ("9.6.24", 90624), ("9.6", 90600), ("16beta1", 160000), ("18devel", 180000), ("10.1.2", 100102),
    ("", None), ("devel", None), (None, None), ("v15", None),
])
def test_server_version_number_reads_as_libpq(text, number):
    assert session.server_version_number(text) == number


def test_the_real_server_passes_the_floor(conn):
    session.check_server_version(conn)
    assert session.server_version_number(conn.parameter_statuses["server_version"]) == int(
        conn.run("SHOW server_version_num")[0][0])


# ---- the exit-code classification ---------------------------------------------------------------

#: The documented order (docs and the original): first match wins.
ORDER = [
    (Marker.INTERRUPTED, 130), (Marker.CONCURRENT, 15), (Marker.CONFIG, 10), (Marker.DEPLOY_SQL_MISSING, 14),
    (Marker.APPROVAL_DENIED, 12), (Marker.CONNECTION, 11), (Marker.UNSUPPORTED_AUTH, 10),
    (Marker.DEADLINE, 16), (Marker.EXECUTION, 13), (Marker.LOCK_RISK, 17), (Marker.USAGE, 2),
]


def test_exit_code_numbers():
    assert {e.name: int(e) for e in Exit} == {
        "SUCCESS": 0, "GENERAL": 1, "USAGE": 2, "PANIC": 3, "CONFIG": 10, "CONNECTION": 11, "APPROVAL_DENIED": 12,
        "EXECUTION": 13, "DEPLOY_SQL_MISSING": 14, "CONCURRENT": 15, "TIMEOUT": 16, "LOCK_RISK": 17,
        "INTERRUPTED": 130}
    assert {m for m, _ in ORDER} == set(Marker)


@pytest.mark.parametrize(("marker", "code"), ORDER)
def test_each_marker_alone(marker, code):
    assert exit_code(PgmiError("x", markers=[marker])) == code


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(range(len(ORDER)), 2)))
def test_every_pair_of_markers_first_match_wins(first, second):
    (m1, code), (m2, _) = ORDER[first], ORDER[second]
    assert exit_code(PgmiError("x", markers=[m1, m2])) == code
    assert exit_code(PgmiError("x", markers=[m2, m1])) == code
    assert exit_code(PgmiError("x").mark(m2, m1)) == code


def test_errors_without_markers_and_non_pgmi_errors():
    assert exit_code(None) == Exit.SUCCESS
    assert exit_code(PgmiError("x")) == Exit.GENERAL
    assert exit_code(RuntimeError("x")) == Exit.GENERAL
    assert exit_code(KeyboardInterrupt()) == Exit.INTERRUPTED
    assert exit_code(SystemExit(2)) == Exit.GENERAL


@pytest.mark.parametrize(("cls", "code"), [
    (ConfigError, 10), (UsageError, 2), (ConnectionFailed, 11), (ExecutionFailed, 13), (ApprovalDenied, 12),
    (ConcurrentDeploy, 15), (DeploySqlMissing, 14), (DeadlineExceeded, 16), (Interrupted, 130),
])
def test_error_classes_carry_their_code(cls, code):
    assert exit_code(cls("x")) == code
    # an execution failure that also ran out of time is a timeout; a cancelled one is an interrupt
    assert exit_code(cls("x").mark(Marker.INTERRUPTED)) == 130


def test_execution_failure_past_the_deadline_is_a_timeout():
    assert exit_code(ExecutionFailed("x").mark(Marker.DEADLINE)) == Exit.TIMEOUT
    assert exit_code(ConnectionFailed("x").mark(Marker.DEADLINE)) == Exit.CONNECTION


# ---- init and the plan summary ------------------------------------------------------------------


def test_init_into_a_dangling_symlink_is_refused_and_creates_nothing(tmp_path, capsys):
    link = tmp_path / "proj"
    target = tmp_path / "elsewhere" / "proj"
    link.symlink_to(target)
    code, out, err = run_cli(["init", str(link), "-t", "basic"], capsys)
    assert code == Exit.USAGE and out == ""
    assert "dangling symbolic link" in err and str(link) in err and "Traceback" not in err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert not target.exists() and not target.parent.exists()


def test_plan_summary_orders_files_by_their_smallest_sort_key():
    from pgmilib.project.metadata import ScriptMeta, file_summary

    def sql(path: str, *keys: str) -> SimpleNamespace:
        meta = ScriptMeta(uuid.uuid4(), True, "", tuple(keys)) if keys else None
        return SimpleNamespace(path=path, metadata=meta, is_sql=True, is_test=False)

    files = [sql("./a.sql", "5/m"), sql("./b.sql", "9/z", "1/a"), sql("./c.sql", "5/m"), sql("./d.sql", "B/x"),
             sql("./e.sql", "a/x"), sql("./0.sql")]
    entries = file_summary(files)
    # ./b.sql by "1/a" (its smallest), not "9/z"; equal keys by path; bytewise: "B" < "a"; "./0.sql" (no keys) by path
    assert [e["path"] for e in entries] == ["./0.sql", "./b.sql", "./a.sql", "./c.sql", "./d.sql", "./e.sql"]
    assert entries[1]["sort_keys"] == ["9/z", "1/a"]  # listed as written


def test_interactive_approver_prints_exactly_the_prompt_and_the_verdict():
    out = _out()
    InteractiveApprover(out, io.StringIO("Orders\n")).approve("Orders")
    assert out.stderr.getvalue() == ('\nWARNING: about to DROP and RECREATE database "Orders". This deletes all data.\n'
                                     'Type the database name to confirm: Confirmed.\n')
    out = _out()
    with pytest.raises(ApprovalDenied):
        InteractiveApprover(out, io.StringIO("orders\n")).approve("Orders")
    assert out.stderr.getvalue().endswith('Type the database name to confirm: "orders" does not match "Orders". '
                                          'Cancelled.\n')
    out = _out()
    with pytest.raises(ApprovalDenied):
        InteractiveApprover(out, io.StringIO("")).approve("Orders")
    assert out.stderr.getvalue().endswith("Type the database name to confirm: \nNo input available. Use --force to "
                                          "bypass confirmation in non-interactive mode.\n")


def test_ctrl_c_at_the_confirmation_prompt_aborts():
    class CtrlC:
        def readline(self):
            raise KeyboardInterrupt

    out = _out()
    with pytest.raises(Interrupted) as info:
        InteractiveApprover(out, CtrlC()).approve("Orders")
    assert str(info.value) == 'interrupted: overwrite of "Orders" aborted'
    assert exit_code(info.value) == Exit.INTERRUPTED
    assert out.stderr.getvalue().endswith("Type the database name to confirm: \n")
