"""`pgmi deploy`: the pipeline from a project directory to the SQL the server runs.

Read top to bottom, `cmd_deploy` is the whole story (cli.md §5 gives the order, which
also decides which exit code wins when several things are wrong at once):

1. `.env` and `pgmi.yaml` of the project, parameters, timeout     (errors: exit 10)
2. the connection (flags > env > pgmi.yaml > defaults)            (exit 10)
3. scan the project, offline, before any connection               (exit 14 / 10 / 1)
4. create or overwrite the target database                         (exit 11 / 12 / 15)
5. one session: version check, deploy lock, session API, files    (exit 10 / 11 / 15)
6. expand `CALL pgmi_test()`, split deploy.sql into units, run them (exit 13)
7. summary line or --json envelope; cleanup always runs

A deadline (`--timeout`) and SIGINT/SIGTERM share one `Watchdog`: it cancels the running
statement with a real CancelRequest and marks the failure as timeout (16) or
interrupted (130).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

from pgmilib import SUPPORTED_COMPAT
from pgmilib.errors import (
    ConfigError,
    DeadlineExceeded,
    ExecutionFailed,
    Exit,
    Interrupted,
    Marker,
    PgmiError,
    UsageError,
    exit_code,
    go_quote,
)
from pgmilib.output import Output, is_interactive

EPHEMERAL_DEFAULT_DB = "pgmi_ephemeral"
_MISSING_PATH = (
    "missing required argument: <project_path>\n\nUsage: pgmi deploy <project_path> [flags]\n\n"
    "Example:\n  pgmi deploy . -d mydb"
)


@dataclass
class RunFacts:
    """What the summary line and the --json envelope report."""

    database: str = ""
    deployer_ran: bool = False  # reached step 11 (cli.md §5): full envelope from here on
    files_loaded: int = 0
    test_macros: int = 0
    units_total: int | None = None
    units_committed: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class Watchdog:
    """One cancellation path for --timeout and SIGINT/SIGTERM.

    `trip()` records why, sends a CancelRequest for the statement in flight, and closes
    the socket if the server has not answered within a grace period. The pipeline calls
    `check()` between steps and `mark()` on failures, so the error carries the marker
    that maps it to 16 or 130.
    """

    GRACE_SECONDS = 5.0

    def __init__(self, out: Output) -> None:
        self.out = out
        self.reason: Marker | None = None
        self.conn: Any = None  # the connection whose statement a trip cancels
        self._timer: threading.Timer | None = None

    def start_deadline(self, seconds: float | None) -> None:
        if seconds:
            self._timer = threading.Timer(seconds, self.trip, args=(Marker.DEADLINE,))
            self._timer.daemon = True
            self._timer.start()

    def trip(self, reason: Marker) -> None:
        if self.reason is None:
            self.reason = reason
        conn = self.conn
        if conn is None:
            return
        try:
            conn.cancel()
        except OSError:  # the server may already be unreachable; the close below still ends the wait
            pass
        closer = threading.Timer(self.GRACE_SECONDS, _force_close, args=(conn,))
        closer.daemon = True
        closer.start()

    def check(self) -> None:
        if self.reason is Marker.INTERRUPTED:
            raise Interrupted("interrupted")
        if self.reason is Marker.DEADLINE:
            raise DeadlineExceeded("deployment timed out (--timeout)")

    def mark(self, error: PgmiError) -> PgmiError:
        if self.reason is not None:
            error.mark(self.reason)
        return error

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()


def _force_close(conn: Any) -> None:
    sock = getattr(conn, "_usock", None)
    try:
        if sock is not None:
            import socket

            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Signals:
    """SIGINT/SIGTERM during the run: say so once, trip the watchdog (exit 130)."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.watchdog.reason is None
        if first:
            self.watchdog.out.info("pgmi: interrupted, cancelling deployment...")
        self.watchdog.trip(Marker.INTERRUPTED)
        if self.watchdog.conn is None and first:
            raise Interrupted("interrupted")  # nothing in flight to cancel: stop right here

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def cmd_deploy(args: argparse.Namespace, out: Output) -> int:
    """`pgmi deploy <project_path>`: returns the exit code; prints the summary or envelope."""
    if not args.project_path:
        raise UsageError(f"usage error: {_MISSING_PATH}")
    facts = RunFacts()
    started = time.monotonic()
    watchdog = Watchdog(out)
    error: PgmiError | None = None
    try:
        # `cleanup` stops an --ephemeral server however the run ends (unless --keep).
        with contextlib.ExitStack() as cleanup, _Signals(watchdog):
            try:
                _run(args, out, facts, watchdog, cleanup)
            finally:
                watchdog.stop()
            if watchdog.reason is Marker.INTERRUPTED:  # exit 130 even if the deploy had just succeeded
                raise Interrupted("interrupted")
    except PgmiError as failure:
        error = watchdog.mark(failure)
    except KeyboardInterrupt:
        error = Interrupted("interrupted")
    code = exit_code(error)
    _finish(out, facts, error, code, time.monotonic() - started, json_mode=args.json)
    return code


def _run(args: argparse.Namespace, out: Output, facts: RunFacts, watchdog: Watchdog,
         cleanup: contextlib.ExitStack) -> None:
    """Steps 2-16 of cli.md §5."""
    from pgmilib.config import settings as config
    from pgmilib.conn import conninfo as connstr
    from pgmilib.deploy import testing

    project_dir = args.project_path
    # -- configuration (before the deadline starts) -------------------------------------
    warning = config.load_dotenv(project_dir, os.environ)
    if warning:
        out.warn(warning)
    project_config = config.load_project_config(project_dir)
    if args.keep and not args.ephemeral:
        raise ConfigError("--keep only applies together with --ephemeral")
    if args.ephemeral:
        params = _ephemeral(args, out, cleanup)
    else:
        params = connstr.resolve(args, os.environ, project_config.connection if project_config else None)
    facts.database = params.database
    _verbose_connection(out, params)
    deploy_params = _parameters(args, project_config, out)
    for spec in args.test_report:  # a bad --test-report is a config error before anything runs
        testing.parse_report_spec(spec)
    timeout = config.resolve_timeout(args.timeout or "3m", args.timeout is not None, project_config)
    lock_wait = _duration_flag("--lock-wait", args.lock_wait)

    # -- the deployer runs: everything below is inside the deadline ----------------------
    facts.deployer_ran = True
    watchdog.start_deadline(timeout)
    deploy_into(params, project_dir, deploy_params, args=args, out=out, facts=facts, watchdog=watchdog,
                lock_wait=lock_wait, timeout=timeout)


def deploy_into(params, project_dir: str, deploy_params: dict[str, str], *, args: argparse.Namespace, out: Output,
                facts: RunFacts, watchdog: Watchdog, lock_wait: float, timeout: float | None) -> None:
    """Scan, prepare the database, open the session and run deploy.sql (steps 12-16)."""
    from pgmilib.conn.connect import Deadline, open_connection
    from pgmilib.deploy import dbadmin
    from pgmilib.project import scan as projects

    deadline = Deadline(timeout)
    # Offline first: a missing deploy.sql or a bad file fails before any connection.
    out.verbose(f"Scanning {project_dir}")
    project = projects.scan(project_dir)
    out.verbose(f"Found {len(project.files)} files to load")
    if args.compat not in ("", *SUPPORTED_COMPAT):
        raise ConfigError(
            f"invalid configuration: unsupported API version {go_quote(args.compat)}; "
            f"supported: [{' '.join(SUPPORTED_COMPAT)}]"
        )
    target, maintenance = params.database, params.maintenance_database or "postgres"

    def connect(database: str, **kw: Any):
        watchdog.check()
        return open_connection(params, database, deadline=deadline, on_notice=out.notice, out=out, **kw)

    if args.overwrite:
        dbadmin.check_overwrite_allowed(target, maintenance)
        approver = dbadmin.choose_approver(args.force, is_interactive(), out)
        dbadmin.overwrite_database(connect, target, maintenance, approver, out)
        conn = connect(target)
    else:
        conn = dbadmin.open_target(connect, target, maintenance, out)
    watchdog.conn = conn
    out.info("Preparing session: scanning files, loading parameters")
    locked = False
    try:
        _check_server_version(conn)
        dbadmin.acquire_lock(conn, target, lock_wait, out)
        locked = True
        if out.verbose_mode:
            conn.run("SET client_min_messages = 'debug'")
        _prepare_and_execute(conn, project, deploy_params, args=args, out=out, facts=facts, watchdog=watchdog)
    finally:
        watchdog.conn = None
        if locked:
            dbadmin.release(conn)
        else:
            _close_quietly(conn)


def _prepare_and_execute(conn, project, deploy_params: dict[str, str], *, args: argparse.Namespace, out: Output,
                         facts: RunFacts, watchdog: Watchdog) -> None:
    from pgmilib import sqllex
    from pgmilib.deploy import execute, session, testing
    from pgmilib.project.scan import read_deploy_sql

    events = testing.TestEvents(out)
    conn.on_notice = lambda diag: events.on_notice(diag) or out.notice(diag)
    failure: BaseException | None = None
    try:
        session.prepare(conn, project, deploy_params, compat=args.compat or SUPPORTED_COMPAT[0],
                        verbose=out.verbose_mode, out=out)
        facts.files_loaded = len(project.files)
        watchdog.check()
        out.info("Executing deploy.sql")
        text = read_deploy_sql(project)
        expanded, facts.test_macros = testing.expand_macros(conn, text)
        if facts.test_macros:
            out.verbose(f"Expanded {facts.test_macros} test macro(s) in deploy.sql")
        units = sqllex.split_units(expanded)
        facts.units_total = len(units)
        try:
            result = execute.run_units(_Guarded(conn, watchdog), units, out=out, script_text=expanded,
                                       script_expanded=facts.test_macros > 0,
                                       files=project.contents())
        except ExecutionFailed as failed:
            facts.units_committed = failed.details.get("unitsCommitted", 0)
            # The server's syntax error points at the end of input; say where the quote opened.
            problem = sqllex.unterminated(text) if failed.pg and failed.pg.sqlstate == "42601" else None
            if problem:
                failed.trailer.append(f"NOTE: deploy.sql has an {problem}")
            raise
        facts.units_committed = result.units_committed
        if conn.transaction_status != "I":
            # Diverges from the original on purpose: it reported success and then rolled the
            # open transaction back, so a forgotten COMMIT silently deployed nothing.
            raise ExecutionFailed(
                "execution failed: deploy.sql ended inside an open transaction (BEGIN without COMMIT); "
                "it was rolled back, so nothing since that BEGIN was applied",
                details={"executionUnits": len(units), "unitsCommitted": result.units_committed},
            )
    except BaseException as error:
        failure = error
        raise
    finally:
        if args.test_report:
            events.write_reports(args.test_report, failure)


class _Guarded:
    """The session connection as execute.run_units sees it: checks the watchdog before each unit."""

    def __init__(self, conn: Any, watchdog: Watchdog) -> None:
        self._conn = conn
        self._watchdog = watchdog

    def run(self, sql: str, **kwargs: Any) -> Any:
        self._watchdog.check()
        return self._conn.run(sql, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


# ---------------------------------------------------------------------------------------
# Helpers for the steps above
# ---------------------------------------------------------------------------------------


def _ephemeral(args: argparse.Namespace, out: Output, cleanup: contextlib.ExitStack):
    """--ephemeral: start a throwaway local server and point the deploy at it."""
    from pgmilib.cluster import Cluster
    from pgmilib.conn import conninfo as connstr

    clashing = [flag for flag, value in (("--connection", args.connection), ("--host", args.host),
                                         ("--port", args.port), ("--username", args.username),
                                         ("--overwrite", args.overwrite),
                                         ("--azure", args.azure), ("--aws", args.aws), ("--google", args.google))
                if value]
    if clashing:
        raise ConfigError(f"invalid configuration: --ephemeral starts its own server; drop {', '.join(clashing)}")
    database = args.database or EPHEMERAL_DEFAULT_DB
    out.info("Starting an ephemeral PostgreSQL server ...")
    cluster = Cluster().start()
    if args.keep:
        cluster.detach()
    else:
        cleanup.callback(cluster.stop)
    params = connstr.parse_connection_string(cluster.dsn(database))
    params.application_name = params.application_name or "pgmi"
    params.maintenance_database = "postgres"
    out.info(f"Ephemeral server running; connect with: psql \"{cluster.dsn(database)}\"")
    if args.keep:
        stop = f"{cluster.pg_bin}/pg_ctl -D {cluster.data_dir} stop"
        if os.geteuid() == 0:
            stop = f"runuser -u postgres -- {stop}"
        out.info(f"--keep: the server stays up after the deploy; stop it with: {stop}")
    return params


def _parameters(args: argparse.Namespace, project_config, out: Output) -> dict[str, str]:
    """pgmi.yaml < --params-file (later files win) < --param; validated before connecting."""
    from pgmilib.config import settings as config

    files: dict[str, str] = {}
    for path in args.params_file:
        out.verbose(f"Loading parameters from file: {path}")
        loaded = config.load_params_files([path])
        files.update(loaded)
        out.verbose(f"Loaded {len(loaded)} parameters from file (total: {len(files)})")
    cli = dict(config.parse_param(p) for p in args.param)
    if cli:
        out.verbose(f"CLI parameters override {len(cli)} value(s)")
    merged = config.merge_params(project_config.params if project_config else {}, files, cli)
    config.validate_params(merged)
    return merged


def _duration_flag(flag: str, text: str) -> float:
    from pgmilib.config.settings import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise UsageError(f"usage error: invalid argument {go_quote(text)} for \"{flag}\" flag: {error}") from None
    if seconds < 0:
        raise ConfigError(f"invalid configuration: {flag} cannot be negative")
    return seconds


def _check_server_version(conn: Any) -> None:
    number, text = conn.run("SELECT current_setting('server_version_num')::int, current_setting('server_version')")[0]
    if number < 110000:
        raise ConfigError(
            f"invalid configuration: this server reports PostgreSQL {text}, and pgmi requires 11 or newer"
        )


def _close_quietly(conn: Any) -> None:
    """Close a session that failed before the lock; a broken socket must not hide the real error."""
    with contextlib.suppress(Exception):
        conn.close()


def _verbose_connection(out: Output, params: Any) -> None:
    if not out.verbose_mode:
        return
    method = {"aws": "AWS IAM", "google": "Google IAM", "azure": "Azure Entra ID"}.get(params.auth_method, "Standard")
    lines = [
        "Connection resolved:",
        f"  Host: {params.host}",
        f"  Port: {params.port}",
        f"  User: {params.user}",
        f"  Target Database: {params.database}",
        f"  Maintenance Database: {params.maintenance_database or 'postgres'}",
        f"  SSL Mode: {params.sslmode}",
    ]
    for label, value in (("SSL Cert", params.sslcert), ("SSL Key", params.sslkey), ("SSL Root Cert", params.sslrootcert)):
        if value:
            lines.append(f"  {label}: {value}")
    lines.append(f"  Auth Method: {method}")
    out.verbose("\n".join(lines))


def _finish(out: Output, facts: RunFacts, error: PgmiError | None, code: int, seconds: float, *,
            json_mode: bool) -> None:
    """Summary line (human) or envelope (--json), then the error block."""
    database = facts.database or "?"
    if json_mode:
        envelope: dict[str, Any] = {"status": "success" if error is None else "failed", "exitCode": int(code)}
        if facts.deployer_ran:
            envelope.update(database=database, durationMs=int(seconds * 1000), filesLoaded=facts.files_loaded,
                            testMacros=facts.test_macros)
            if facts.units_total is not None:
                envelope.update(executionUnits=facts.units_total,
                                unitsCommitted=facts.units_committed if error else facts.units_total)
        if error is not None:
            envelope["error"] = error.message
            if error.pg is not None:
                envelope.update(sqlstate=error.pg.sqlstate, detail=error.pg.detail, hint=error.pg.hint,
                                where=error.pg.where)
            envelope.update({k: v for k, v in error.details.items() if k not in envelope or not envelope[k]})
            if code != Exit.EXECUTION and code != Exit.TIMEOUT and code != Exit.INTERRUPTED:
                envelope.pop("executionMode", None)
        out.envelope(envelope)
    elif facts.deployer_ran:
        if error is None:
            tests = f", {facts.test_macros} test macro(s) expanded" if facts.test_macros else ""
            out.summary(True, f"{database}: {facts.files_loaded} files loaded{tests} in {seconds:.2f}s")
        else:
            tail = ""
            committed = facts.units_committed
            if facts.units_total and committed and error.details.get("executionMode") == "psql":
                tail = (f" (unit {committed + 1} of {facts.units_total} failed; "
                        f"{committed} earlier unit(s) already committed)")
            out.summary(False, f"{database}: failed after {seconds:.2f}s{tail}")
    if error is not None:
        out.error(error)


def run(argv: list[str], out: Output | None = None) -> int:
    """Python API: `deploy.run(["./proj", "-d", "app"])` behaves like `pgmi deploy ./proj -d app`."""
    from pgmilib.cli.app import build_parser

    args = build_parser().parse_args(["deploy", *argv])
    return cmd_deploy(args, out or Output(json_mode=args.json, verbose=args.verbose))


