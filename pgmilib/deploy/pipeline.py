"""`deploy(request, out) -> result`: the pipeline from a project directory to the SQL the server runs.

Read top to bottom, `deploy()` is the whole story (cli.md §5 gives the order, which also
decides which exit code wins when several things are wrong at once):

1. `.env` (merged into the run's own environment copy) and `pgmi.yaml`     (exit 10)
2. the connection (flags > env > pgmi.yaml > defaults), parameters, timeout (exit 10 / 2)
3. scan the project, offline, before any connection                         (exit 14 / 10 / 1)
4. create or overwrite the target database                                   (exit 11 / 12 / 15)
5. one session: version check, deploy lock, session API, files              (exit 10 / 11 / 15)
6. expand `CALL pgmi_test()`, split deploy.sql into units, run them         (exit 13)
7. the result: envelope, summary and error text, redacted with this run's secrets

Nothing here touches process state: no argparse, no sys.exit, no os.environ, no stdin, no
signal handlers. Secrets registered during the run belong to it (`redact.secret_scope`).
A `Cancellation` (the CLI's signals, an MCP cancel) and `--timeout` share one `Watchdog`.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from pgmilib.deploy.request import DeployRequest, DeployResult, describe
from pgmilib.deploy.watchdog import Cancellation, Watchdog
from pgmilib.errors import ConfigError, ExecutionFailed, Interrupted, PgmiError, exit_code
from pgmilib.output import Output
from pgmilib.redact import redact, secret_scope

if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams


def deploy(request: DeployRequest, out: Output, *, cancel: Cancellation | None = None) -> DeployResult:
    """Run one deployment and return what happened. Never raises for a classified failure."""
    result = DeployResult()
    started = time.monotonic()
    watchdog = Watchdog()
    cancel = cancel or Cancellation()
    error: PgmiError | None = None
    with secret_scope():
        try:
            cancel._attach(watchdog)
            # `cleanup` stops an --ephemeral server however the run ends (unless --keep).
            with contextlib.ExitStack() as cleanup:
                try:
                    _run(request, out, result, watchdog, cleanup)
                finally:
                    watchdog.stop()
                    cancel._attach(None)
            if cancel.requested:  # exit 130 even if the deploy had just succeeded
                raise Interrupted("interrupted")
        except PgmiError as failure:
            error = watchdog.mark(failure)
        except KeyboardInterrupt:
            error = Interrupted("interrupted")
        except Exception as bug:
            _redact_exception(bug)  # while this run's secrets are still known: the panic report prints it
            raise
        result.duration = time.monotonic() - started
        result.error = error
        result.exit_code = exit_code(error)
        describe(result)
    return result


def _run(request: DeployRequest, out: Output, result: DeployResult, watchdog: Watchdog,
         cleanup: contextlib.ExitStack) -> None:
    """Steps 2-16 of cli.md §5."""
    from pgmilib import config
    from pgmilib.conn.resolve import resolve
    from pgmilib.deploy import testing

    project_dir = request.project_path
    environ = {} if request.environ is None else request.environ
    # -- configuration (before the deadline starts) -------------------------------------
    # A file or a missing path is the first thing to hear about (not a .env or pgmi.yaml oddity).
    from pgmilib.project.scan import validate_root

    validate_root(project_dir, require_deploy_sql=False)
    environ, warning = config.load_dotenv(project_dir, environ)
    if warning:
        out.warn(warning)
    project_config = config.load_project_config(project_dir)
    if request.keep and not request.ephemeral:
        raise ConfigError("--keep only applies together with --ephemeral")
    if request.rehearse:  # issue 15: before anything starts
        from pgmilib.deploy.rehearse import check_request

        check_request(overwrite=request.overwrite, ephemeral=request.ephemeral)
    elif request.fail_on_lock_risk is not None:
        raise ConfigError("--fail-on-lock-risk only applies together with --rehearse")
    if request.ephemeral:
        params = _ephemeral_params(request, out, cleanup)
        result.ephemeral_server = params.source
    else:
        params = resolve(request.connection, environ, project_config.connection if project_config else None)
    from pgmilib.deploy.dbadmin import check_database_name

    check_database_name(params.database)
    if params.maintenance_database:
        check_database_name(params.maintenance_database, "maintenance database")
    result.database = params.database
    _verbose_connection(out, params)
    deploy_params = _parameters(request, project_config, out)
    for spec in request.test_reports:  # a bad --test-report is a config error before anything runs
        testing.parse_report_spec(spec)
    timeout = config.resolve_timeout(request.timeout or "", request.timeout is not None, project_config)
    lock_wait = config.parse_duration_flag("--lock-wait", request.lock_wait)
    if request.rehearse:  # a bad value is a flag error before anything connects
        config.parse_duration_flag("--rehearse-lock-timeout", request.rehearse_lock_timeout)

    # -- the deployer runs: everything below is inside the deadline ----------------------
    result.deployer_ran = True
    watchdog.start_deadline(timeout)
    _deploy_into(params, environ, deploy_params, request, out, result, watchdog, lock_wait)


def _deploy_into(params: Any, environ: dict[str, str], deploy_params: dict[str, str], request: DeployRequest,
                 out: Output, result: DeployResult, watchdog: Watchdog, lock_wait: float) -> None:
    """Scan, prepare the database, open the session and run deploy.sql (steps 12-16)."""
    from pgmilib.conn.connect import open_connection
    from pgmilib.deploy import dbadmin, lock, session
    from pgmilib.observe import watch
    from pgmilib.project import scan as projects

    # Offline first: a missing deploy.sql or a bad file fails before any connection.
    if request.project is not None:  # scanned once for a whole fleet
        project = request.project
    else:
        out.verbose(f"Scanning {request.project_path}")
        project = projects.scan(request.project_path, max_file_size=request.max_file_size)
    out.verbose(f"Found {len(project.files)} files to load")
    if request.rehearse:  # refuse a script with tail units before connecting (issue 15)
        from pgmilib.deploy.rehearse import refuse_tail

        refuse_tail(projects.read_deploy_sql(project))
    compat = session.check_compat(request.compat)
    target, maintenance = params.database, params.maintenance_database or "postgres"

    def connect(database: str, **kw: Any):
        watchdog.check()
        return open_connection(params, database, deadline=watchdog.deadline, on_notice=out.notice, out=out,
                               environ=environ, **kw)

    with _connection_guard():
        if request.overwrite:
            dbadmin.check_overwrite_allowed(target, maintenance)
            approver = request.approver or dbadmin.default_approver(request.force, out)
            dbadmin.overwrite_database(connect, target, maintenance, approver, out, lock_wait=lock_wait,
                                       watchdog=watchdog)
            conn = connect(target)
        elif request.rehearse:  # a rehearsal never creates the database it proves a deploy against
            conn = connect(target)
        else:
            conn = dbadmin.open_target(connect, target, maintenance, out, lock_wait=lock_wait, watchdog=watchdog)
    watchdog.conn = conn
    out.info("Preparing session: scanning files, loading parameters")
    locked = False
    watcher = None
    try:
        with _connection_guard():
            session.check_server_version(conn)
            from pgmilib.deploy import pooler  # issue 15: pg_temp needs one server session

            pid = pooler.check(conn, lambda: connect(target), out, where=f"{params.host}:{params.port}")
            watcher = watch.start(request.watch, out, conn, pid)  # the live status (pgmilib/observe/watch.py)
            lock.acquire(conn, lock_wait, out, watchdog)
            locked = True
            _prepare_and_execute(conn, project, deploy_params, compat, request, out, result, watchdog, watcher)
    finally:
        if watcher is not None:
            watcher.stop()
        watchdog.conn = None
        if locked:
            lock.release(conn)
        else:
            lock.close_quietly(conn)


def _prepare_and_execute(conn: Any, project: Any, deploy_params: dict[str, str], compat: str,
                         request: DeployRequest, out: Output, result: DeployResult, watchdog: Watchdog,
                         watcher: Any = None) -> None:
    from pgmilib import sqllex
    from pgmilib.deploy import execute, session, testing
    from pgmilib.project.scan import read_deploy_sql

    events = testing.TestEvents(out)
    conn.on_notice = lambda diag: events.on_notice(diag) or out.notice(diag)
    conn.on_copy_out = out.info  # COPY ... TO STDOUT in deploy.sql: rows shown like notices (stderr)
    failure: BaseException | None = None
    try:
        session.prepare(conn, project, deploy_params, compat=compat, verbose=out.verbose_mode, out=out,
                        cache_dir=request.cache_dir)
        result.files_loaded = len(project.files)
        watchdog.check()
        out.info("Executing deploy.sql")
        text = read_deploy_sql(project)
        expanded, result.test_macros, line_map = testing.expand_macros_mapped(conn, text)
        if result.test_macros:
            out.verbose(f"Expanded {result.test_macros} test macro(s) in deploy.sql")
        units = sqllex.split_units(expanded)
        runner: Any = _Guarded(conn, watchdog, watcher)
        rehearsal = None
        if request.rehearse:  # issue 15: only the head, ending in ROLLBACK
            from pgmilib import config
            from pgmilib.deploy.rehearse import Rehearsal, lock_sources, rehearse_units

            units = rehearse_units(units)
            result.rehearsed = True  # also on failure: the envelope says it was a rehearsal
            out.info("Rehearsing: the atomic head of deploy.sql runs and is rolled back at its end")
            wait = config.parse_duration_flag("--rehearse-lock-timeout", request.rehearse_lock_timeout)
            runner = rehearsal = Rehearsal(runner, lock_timeout=wait, sources=lambda: lock_sources(project, text),
                                           warn=out.warn)
        if request.retry_lock:  # issue 15: the head again after 55P03/40P01
            from pgmilib.deploy.retry import HeadRetry

            def on_retry(attempt: int) -> None:
                result.lock_retries = attempt
                events.suites.clear()  # the head's tests run again: report the last run only

            runner = HeadRetry(runner, request.retry_lock, out, watchdog.check, on_retry=on_retry)
        result.units_total = len(units)
        if watcher is not None:
            watcher.plan(units)
        if out.verbose_mode:  # DEBUG is for the user's deploy.sql, not for pgmi's own set-up
            conn.run("SET client_min_messages = 'debug'")
        try:
            ran = execute.run_units(runner, units, out=out, script_text=expanded,
                                    script_expanded=result.test_macros > 0, files=project.contents(),
                                    line_map=line_map if result.test_macros else None, original_text=text)
        except ExecutionFailed as failed:
            result.units_committed = failed.details.get("unitsCommitted", 0)
            if rehearsal is not None:
                result.lock_report = rehearsal.report
                if rehearsal.blocked:
                    failed.trailer.append(f"NOTE: the rehearsal waits at most {request.rehearse_lock_timeout} for "
                                          "each lock (--rehearse-lock-timeout); the lock report names the holders")
            # The server's syntax error points at the end of input; say where the quote opened.
            problem = sqllex.unterminated(text) if failed.pg and failed.pg.sqlstate == "42601" else None
            if problem:
                failed.trailer.append(f"NOTE: deploy.sql has an {problem}")
            raise
        result.units_committed = ran.units_committed
        if request.rehearse:  # what ran: the tests that passed inside the rolled-back head
            from pgmilib.deploy.reports import PASSED

            result.tests_passed = sum(1 for suite in events.suites for t in suite.tests if t.status == PASSED)
        if rehearsal is not None:
            result.lock_report = rehearsal.report
            if request.fail_on_lock_risk is not None and rehearsal.report is not None:
                from pgmilib.deploy.lockreport import check_risk

                check_risk(rehearsal.report, request.fail_on_lock_risk)
        if conn.transaction_status != "I":
            # Diverges from the original on purpose: it reported success and then rolled the
            # open transaction back, so a forgotten COMMIT silently deployed nothing.
            raise ExecutionFailed(
                "execution failed: deploy.sql ended inside an open transaction (BEGIN without COMMIT); "
                "it was rolled back, so nothing since that BEGIN was applied",
                details={"executionUnits": len(units), "unitsCommitted": ran.units_committed},
            )
    except BaseException as error:
        failure = error
        raise
    finally:
        if request.test_reports:
            events.write_reports(request.test_reports, failure)



def _redact_exception(error: BaseException) -> None:
    """Redact the messages of an exception and its causes in place, with this run's secrets."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def _connection_guard():
    """A lost connection outside deploy.sql's own statements is exit 11, not a traceback.

    Only the driver's network failures are caught (a bug must still surface as a panic);
    when the run's watchdog caused the loss (timeout, cancel), its marker decides the exit.
    """
    from pgmilib.conn.wire import LOST_ERRORS, SERVER_ERRORS, session_end
    from pgmilib.errors import ConnectionFailed

    try:
        yield
    except LOST_ERRORS as error:
        raise ConnectionFailed(f"connection to the server lost: {error}") from error
    except SERVER_ERRORS as error:
        # The server ends the session with a FATAL (pg_terminate_backend, shutdown) that the wire
        # raises as soon as it is read: between deploy.sql's units that is a lost connection too,
        # with the server's own reason instead of "network error".
        ended = session_end(error)
        if ended is None:
            raise
        raise ConnectionFailed(f"connection to the server lost: {ended}") from error


class _Guarded:
    """The session connection as execute.run_units sees it: checks the watchdog before each unit
    and tells the live watcher which unit runs."""

    def __init__(self, conn: Any, watchdog: Watchdog, watcher: Any = None) -> None:
        self._conn = conn
        self._watchdog = watchdog
        self._watcher = watcher

    def run(self, sql: str, **kwargs: Any) -> Any:
        self._watchdog.check()
        if self._watcher is not None:
            self._watcher.running(sql)
        return self._conn.run(sql, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


# ---------------------------------------------------------------------------------------
# Helpers for the steps above
# ---------------------------------------------------------------------------------------


def _parameters(request: DeployRequest, project_config: Any, out: Output) -> dict[str, str]:
    """pgmi.yaml < --params-file (later files win) < --param; validated before connecting."""
    from pgmilib import config

    files: dict[str, str] = {}
    for path in request.params_files:
        out.verbose(f"Loading parameters from file: {path}")
        loaded = config.load_params_files([path])
        files.update(loaded)
        out.verbose(f"Loaded {len(loaded)} parameters from file (total: {len(files)})")
    if request.params:
        out.verbose(f"CLI parameters override {len(request.params)} value(s)")
    base = project_config.params if project_config else {}
    if request.target_params:  # a fleet target's params: over pgmi.yaml's, under --params-file/--param
        base = {**base, **request.target_params}
    merged = config.merge_params(base, files, request.params)
    config.validate_params(merged)
    config.register_secret_params(merged)
    return merged


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


def _ephemeral_params(request: DeployRequest, out: Output, cleanup: contextlib.ExitStack) -> ConnParams:
    """--ephemeral: refuse flags naming another server, start the throwaway one, connect to it.

    `ConnParams.source` names the server programs used, for the result and the log.
    """
    from pgmilib.conn.conninfo import parse_connection_string
    from pgmilib.project.scan import validate_root
    from pgmilib.server.ephemeral import EPHEMERAL_DEFAULT_DB, start_ephemeral

    flags = request.connection
    clashing = [flag for flag, value in (("--connection", flags.connection), ("--host", flags.host),
                                         ("--port", flags.port), ("--username", flags.username),
                                         ("--overwrite", request.overwrite),
                                         ("--azure", flags.azure), ("--aws", flags.aws), ("--google", flags.google))
                if value]
    if clashing:
        raise ConfigError(f"--ephemeral starts its own server; drop {', '.join(clashing)}")
    validate_root(request.project_path)  # a wrong project is the user's mistake to hear about before a server starts
    server = start_ephemeral(flags.database or EPHEMERAL_DEFAULT_DB, request.keep, out, cleanup)
    params = parse_connection_string(server.dsn)
    params.application_name = params.application_name or "pgmi"
    params.maintenance_database = "postgres"
    params.source = server.description
    return params
