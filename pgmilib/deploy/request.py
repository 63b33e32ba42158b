"""The typed boundary of a deployment: `DeployRequest` in, `DeployResult` out.

Everything a deploy needs is in the request (no argparse, no process state): the CLI, the
MCP server, fleet deploys and the tests all build one and call `pgmilib.deploy.deploy()`.
The result carries what happened and, already redacted with the run's own secrets, what
to show: the `--json` envelope, the human summary line and the error block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgmilib.conn.resolve import ConnectionFlags
from pgmilib.errors import Exit, PgmiError

if TYPE_CHECKING:
    from pgmilib.deploy.dbadmin import Approver


@dataclass(frozen=True)
class DeployRequest:
    """One deployment, as `pgmi deploy` flags describe it, with typed values."""

    project_path: str
    connection: ConnectionFlags = field(default_factory=ConnectionFlags)
    #: The environment this run sees (PG* variables, cloud settings...). None: an empty one
    #: (the core never reads the process's; the CLI and the MCP server pass a copy of it).
    #: The project's .env is merged into a copy; the mapping given here is never modified.
    environ: Mapping[str, str] | None = None
    #: The largest project file read, in bytes (`pgmilib.project.scan.max_file_size_from`); None: 10 MiB.
    max_file_size: int | None = None
    #: Where normalized checksums are remembered across runs
    #: (`pgmilib.project.checksums.cache_dir_from`); None: no cache.
    cache_dir: Path | None = None
    params: Mapping[str, str] = field(default_factory=dict)  # --param (highest precedence)
    params_files: Sequence[str] = ()  # --params-file, later files win
    timeout: str | None = None  # duration text; None: pgmi.yaml `timeout`, then 3m
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
    # -- fleet deploys, rehearsals, lock retries (issue 15) --------------------------------
    #: A project already scanned (`pgmilib.project.scan.scan()`): a fleet scans once for all targets.
    project: Any = None
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


@dataclass
class DeployResult:
    """What a deployment did. `envelope`, `summary` and `error_text` are safe to show as they are."""

    exit_code: Exit = Exit.SUCCESS
    error: PgmiError | None = None
    database: str = ""
    duration: float = 0.0
    deployer_ran: bool = False  # reached the deployer (cli.md §5 step 11): full envelope from here on
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
    lock_report: Any = None  # --rehearse: the LockReport (pgmilib/deploy/lockreport.py), None if none was made
    lock_lines: list[str] = field(default_factory=list)  # its human table, printed after the summary (redacted)

    @property
    def ok(self) -> bool:
        return self.exit_code == Exit.SUCCESS
