"""The typed boundary of a deployment: `DeployRequest` in, `DeployResult` out.

Everything a deploy needs is in the request (no argparse, no process state): the CLI, the
MCP server, fleet deploys and the tests all build one and call `pgmilib.deploy.deploy()`.
The result carries what happened and, already redacted with the run's own secrets, what
to show: the `--json` envelope, the human summary line and the error block, all three
written by `describe()` below (the one renderer of a result).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pgmilib.conn.resolve import ConnectionFlags
from pgmilib.errors import Exit, PgmiError, exit_code
from pgmilib.output import cut_lines, format_error, shown_in_envelope
from pgmilib.records import field, record
from pgmilib.redact import redact, redact_nested

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

    from pgmilib.deploy.dbadmin import Approver
    from pgmilib.deploy.lockreport import LockReport
    from pgmilib.project.scan import Project


@record(frozen=True)
class DeployRequest:
    """One deployment, as `pgmi deploy` flags describe it, with typed values."""

    project_path: str
    connection: ConnectionFlags = field(default_factory=ConnectionFlags)
    #: The environment this run sees (PG* variables, cloud settings...). None: an empty one
    #: (the core never reads the process's; the CLI and the MCP server pass a copy of it).
    #: The project's .env is merged into a copy; the mapping given here is never modified.
    environ: Mapping[str, str] | None = None
    #: The largest project file read, in bytes (`pgmilib.project.root.max_file_size_from`); None: 10 MiB.
    max_file_size: int | None = None
    #: Where normalized checksums are remembered across runs
    #: (`pgmilib.project.root.cache_dir_from`); None: no cache.
    cache_dir: Path | None = None
    params: Mapping[str, str] = field(default_factory=dict)  # --param (highest precedence)
    params_files: Sequence[str] = ()  # --params-file, later files win
    #: Duration text, or seconds already parsed (`config.parse_timeout`); None: pgmi.yaml `timeout`, then 3m.
    timeout: str | float | None = None
    lock_wait: str = "0"  # duration text
    overwrite: bool = False
    force: bool = False  # never wait for a confirmation
    #: Asked before --overwrite drops the database (pgmilib/deploy/dbadmin.py `Approver`; the
    #: CLI's ask at the terminal). None: `force` approves, otherwise the overwrite is refused.
    approver: Approver | None = None
    compat: str = ""  # session API version; "" = latest
    ephemeral: bool = False
    keep: bool = False
    test_reports: Sequence[str] = ()  # FORMAT:PATH items
    # -- fleet deploys, rehearsals, lock retries (docs/FLEET.md) ---------------------------
    #: A project already scanned (`pgmilib.project.scan.scan()`): a fleet scans once for all targets.
    project: Project | None = None
    #: Parameters between pgmi.yaml's and --params-file/--param (a fleet target's `params:`).
    target_params: Mapping[str, str] = field(default_factory=dict)
    #: Run the atomic head and end it with ROLLBACK instead of its COMMIT (pgmilib/deploy/rehearse.py).
    rehearse: bool = False
    #: Retry the atomic head this many times after 55P03/40P01 (pgmilib/deploy/retry.py); 0 = never.
    retry_lock: int = 0
    #: The live watcher's settings (pgmilib/observe/watch.py WatchSettings); None: pgmi's defaults.
    watch: Any = None
    # -- the rehearsal's lock report (pgmilib/deploy/lockreport.py) ------------------------
    #: How long a rehearsal waits for each lock (duration text; "0" = no limit). The default is
    #: long enough for short transactions to finish and short enough that the readers queued
    #: behind the rehearsal's own lock request wait at most this.
    rehearse_lock_timeout: str = "2s"
    #: Fail a rehearsal (exit 17) on a rewrite or ACCESS EXCLUSIVE lock of a relation of at
    #: least this many bytes; None = never.
    fail_on_lock_risk: int | None = None


@record
class DeployResult:
    """What a deployment did. `envelope`, `summary` and `error_text` are safe to show as they are."""

    exit_code: Exit = Exit.SUCCESS
    error: PgmiError | None = None
    database: str = ""
    duration: float = 0.0
    deployer_ran: bool = False  # deploy.sql started running: full envelope from here on
    files_loaded: int = 0
    test_macros: int = 0
    units_total: int | None = None
    units_committed: int = 0
    ephemeral_server: str = ""  # which server --ephemeral used
    envelope: dict[str, Any] = field(default_factory=dict)  # the --json envelope (redacted)
    summary: str = ""  # the human summary line, without its ✓/✗ icon ('' if none is shown)
    error_text: str = ""  # the `pgmi: error:` block without that prefix (redacted)
    rehearsed: bool = False  # --rehearse: the head ran and was rolled back
    tests_passed: int = 0  # --rehearse: tests that passed inside the rolled-back head
    lock_retries: int = 0  # --retry-lock-timeout: how many times the head was run again
    lock_report: LockReport | None = None  # --rehearse: the lock report, None if none was made
    lock_lines: list[str] = field(default_factory=list)  # its human table, printed after the summary (redacted)

    @property
    def ok(self) -> bool:
        return self.exit_code == Exit.SUCCESS

    @classmethod
    def failed(cls, error: PgmiError) -> DeployResult:
        """The result of a deploy that failed before it started (a malformed flag, a bad target
        file, a cancelled wizard), described like every other result."""
        result = cls(error=error, exit_code=exit_code(error))
        describe(result)
        return result


# ---- the one renderer of a result: the --json envelope, the summary line, the error block ----

def describe(result: DeployResult) -> None:
    """Fill the envelope, summary and error text (inside the run's secret scope: redacted).

    One key per concept, shared with the fleet's document (pgmilib/fleet/report.py): `rehearsed`.
    """
    error, code = result.error, result.exit_code
    database = result.database or "?"
    envelope: dict[str, Any] = {"status": "success" if error is None else "failed", "exitCode": int(code)}
    if result.deployer_ran:
        envelope.update(database=database, durationMs=int(result.duration * 1000), filesLoaded=result.files_loaded,
                        testMacros=result.test_macros)
        if result.units_total is not None:
            envelope.update(executionUnits=result.units_total,
                            unitsCommitted=result.units_committed if error else result.units_total)
    if result.rehearsed:  # the head ran and was rolled back: nothing was committed
        envelope.update(rehearsed=True, unitsCommitted=0, testsPassed=result.tests_passed)
    if result.lock_retries:
        envelope["lockRetries"] = result.lock_retries
    if result.lock_report is not None:  # the rehearsal's lock report (pgmilib/deploy/lockreport.py)
        from pgmilib.deploy import lockreport

        envelope["locks"] = redact_nested(lockreport.as_json(result.lock_report))
        envelope["relationsCreated"] = result.lock_report.created
        result.lock_lines = [redact(line) for line in lockreport.render(result.lock_report)]
    if error is not None:
        envelope["error"] = error.message
        if error.pg is not None:
            envelope.update(sqlstate=error.pg.sqlstate, detail=error.pg.detail, hint=error.pg.hint,
                            where=cut_lines(error.pg.where) if error.pg.where else "")
        envelope.update({k: v for k, v in error.details.items() if k not in envelope or not envelope[k]})
        if code not in (Exit.EXECUTION, Exit.TIMEOUT, Exit.INTERRUPTED):
            envelope.pop("executionMode", None)
        result.error_text = format_error(error)
    result.envelope = {k: (redact(v) if isinstance(v, str) else v) for k, v in envelope.items()
                       if shown_in_envelope(k, v)}
    if result.deployer_ran:
        if error is None:
            tests = f", {result.test_macros} test macro(s) expanded" if result.test_macros else ""
            result.summary = f"{database}: {result.files_loaded} files loaded{tests} in {result.duration:.2f}s"
            if result.lock_retries:
                result.summary += f" after {result.lock_retries} lock retry(ies)"
            if result.rehearsed:
                result.summary = (f"rehearsal of {result.summary}: {result.tests_passed} test(s) passed; the atomic "
                                  "head ran and was rolled back, nothing was changed")
            result.summary = redact(result.summary)  # the database name can be a secret's value too
        else:
            tail = ""
            committed = result.units_committed
            if result.units_total and committed and error.details.get("executionMode") == "psql":
                tail = (f" (unit {committed + 1} of {result.units_total} failed; "
                        f"{committed} earlier unit(s) already committed)")
            result.summary = redact(f"{database}: failed after {result.duration:.2f}s{tail}")
