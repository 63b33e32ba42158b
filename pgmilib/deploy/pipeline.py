"""`deploy(request, out) -> result`: the pipeline from a project directory to the SQL the server runs.

Read top to bottom, `deploy()` is the whole story (the order of the steps also
decides which exit code wins when several things are wrong at once):

1. `.env` (merged into the run's own environment copy) and `pgmi.yaml`     (exit 10)
2. the connection (flags > env > pgmi.yaml > defaults), parameters, timeout (exit 10 / 2)
3. scan the project; a problem here wins over any connection problem      (exit 14 / 10 / 1)
4. create or overwrite the target database                                   (exit 11 / 12 / 15)
5. one session: version check, pooler check, session API, deploy lock, files (exit 10 / 11 / 15)

An existing target is connected to before step 3 (`open_early`), so the server builds the
session API (step 5's largest part for a small project) while the client scans: a failure of
that connection is held and raised after the scan. On that session the scan of a big
project streams (`scan_into`): past the bytes the scan holds, each source file's row is sent
as the file is read and validated, and a problem stops the rows and abandons the session.
With --overwrite, or a target that does not exist yet, nothing touches the server before the
scan has passed.
6. expand `CALL pgmi_test()`, split deploy.sql into units, run them         (exit 13)
7. the result: envelope, summary and error text, redacted with this run's secrets

Nothing here touches process state: no argparse, no sys.exit, no os.environ, no stdin, no
signal handlers. Secrets registered during the run belong to it (`redact.secret_scope`).
A `Cancellation` (the CLI's signals, an MCP cancel) and `--timeout` share one `Watchdog`.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Mapping

from pgmilib.conn.params import DEFAULT_MAINTENANCE_DB
from pgmilib.deploy.request import DeployRequest, DeployResult, describe
from pgmilib.deploy.watchdog import Cancellation, Watchdog
from pgmilib.errors import ConfigError, ConnectionFailed, ExecutionFailed, Interrupted, PgmiError, exit_code
from pgmilib.output import Output
from pgmilib.redact import redact, secret_scope

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

    from pgmilib.config.project_file import ProjectConfig
    from pgmilib.conn.params import ConnParams
    from pgmilib.conn.wire import LiveConnection
    from pgmilib.deploy.normalizer import Normalizer
    from pgmilib.deploy.rehearse import Rehearsal
    from pgmilib.observe.watch import Watcher
    from pgmilib.project.checksums import ChecksumCache
    from pgmilib.project.scan import Project, ProjectFile, Scan


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
                    _Run(request, out, result, watchdog, cleanup).run()
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


#: The longest the connection made before the scan may take to answer (seconds); a slower
#: server is connected to after the scan instead, with the run's own timeout and retries.
EARLY_CONNECT_SECONDS = 2.0


class _Run:
    """One deployment's state; its methods are the pipeline's steps, called in this order by `run()`.

    configure -> open_early -> scan -> [open_session ->] start -> (the session API built, the
    deploy lock) -> prepare_and_execute. Each step reads what the earlier ones set; nothing
    outlives the run.
    """

    def __init__(self, request: DeployRequest, out: Output, result: DeployResult, watchdog: Watchdog,
                 cleanup: contextlib.ExitStack) -> None:
        self.request = request
        self.out = out
        self.result = result
        self.watchdog = watchdog
        self.cleanup = cleanup  # stops an --ephemeral server however the run ends (unless --keep)
        # The project's .env is merged into a copy: the request's mapping is never modified.
        self.environ: Mapping[str, str] = {} if request.environ is None else request.environ
        self.params: ConnParams | None = None
        self.deploy_params: dict[str, str] = {}
        self.lock_wait = 0.0
        self.timeout: float | None = None  # --timeout / pgmi.yaml `timeout`, seconds; None: no deadline
        self.timeout_origin = "--timeout"
        self.project: Project | None = None
        self.helper: Normalizer | None = None  # computes normalized checksums from the scan on
        self.cache: ChecksumCache | None = None  # the project's normalized checksums, from earlier runs
        self.sources_loaded = False  # by scan_into, while the project was scanned
        self.compat = ""

    def run(self) -> None:
        self.configure()
        # -- the deployer runs: everything below is inside the deadline --------------------
        self.result.deployer_ran = True
        self.watchdog.start_deadline(self.timeout, self.timeout_origin)
        early = self.open_early()  # the server builds the session API while the project is scanned
        try:
            if isinstance(early, _Opened):
                self.scan_into(early)  # each file's row goes to the session as it is read
            else:
                self.scan()
            # The rest of the run's modules, imported here rather than where first used: this
            # client work then also happens while the server builds the session API.
            from pgmilib import sqllex  # noqa: F401
            from pgmilib.deploy import execute, lock, testing  # noqa: F401
            from pgmilib.observe import watch
        except BaseException:
            if isinstance(early, _Opened):
                early.abandon(self.watchdog)
            raise
        if isinstance(early, PgmiError):  # the project's problems first, then the connection's
            raise early
        opened = early or self.start(self.open_session())
        conn = opened.conn
        self.out.info("Preparing session: scanning files, loading parameters")
        locked = False
        watcher: Watcher | None = None
        try:
            with _connection_guard():
                opened.api_built()
                watcher = watch.start(self.request.watch, self.out, conn, opened.pid)  # the live status
                lock.acquire(conn, self.lock_wait, self.out, self.watchdog)
                locked = True
                self.prepare_and_execute(conn, watcher)
        finally:
            if watcher is not None:
                watcher.stop()
            self.watchdog.conn = None
            if locked:
                lock.release(conn)
            else:
                lock.close_quietly(conn)

    # -- configuration (before the deadline starts) ---------------------------------------

    def configure(self) -> None:
        """.env, pgmi.yaml, the flags' checks, the connection, parameters, durations."""
        from pgmilib import config
        from pgmilib.conn.resolve import resolve
        from pgmilib.deploy.dbadmin import check_database_name
        from pgmilib.project.root import validate_root

        request, out = self.request, self.out
        # A file or a missing path is the first thing to hear about (not a .env or pgmi.yaml oddity).
        validate_root(request.project_path, require_deploy_sql=False)
        self.environ, warning = config.load_dotenv(request.project_path, self.environ)
        if warning:
            out.warn(warning)
        project_config = config.load_project_config(request.project_path)
        if request.keep and not request.ephemeral:
            raise ConfigError("--keep only applies together with --ephemeral")
        if request.rehearse:  # before anything starts
            from pgmilib.deploy.rehearse import check_request

            check_request(overwrite=request.overwrite, ephemeral=request.ephemeral)
        elif request.fail_on_lock_risk is not None:
            raise ConfigError("--fail-on-lock-risk only applies together with --rehearse")
        if request.ephemeral:
            params = _ephemeral_params(request, out, self.cleanup)
            self.result.ephemeral_server = params.source
        else:
            params = resolve(request.connection, self.environ, project_config.connection if project_config else None)
        check_database_name(params.database)
        if params.maintenance_database:
            check_database_name(params.maintenance_database, "maintenance database")
        self.params = params
        self.result.database = params.database
        _verbose_connection(out, params)
        self.deploy_params = _parameters(request, project_config, out)
        if request.test_reports:  # a bad --test-report is a config error before anything runs
            from pgmilib.deploy import testing

            for spec in request.test_reports:
                testing.parse_report_spec(spec)
        self.timeout = config.resolve_timeout(request.timeout, project_config)
        self.timeout_origin = config.timeout_origin(request.timeout, project_config)
        self.lock_wait = config.parse_duration_flag("--lock-wait", request.lock_wait)
        if request.rehearse:  # a bad value is a flag error before anything connects
            config.parse_duration_flag("--rehearse-lock-timeout", request.rehearse_lock_timeout)

    # -- the project, offline: a missing deploy.sql or a bad file fails before any connection --

    def scan(self) -> None:
        from pgmilib.project import scan as projects

        request, out = self.request, self.out
        if request.project is not None:  # scanned once for a whole fleet
            project = request.project
        else:
            out.verbose(f"Scanning {request.project_path}")
            project = projects.scan(request.project_path, max_file_size=request.max_file_size,
                                    on_listed=self.start_helper)
        self.scanned(project)

    def scan_into(self, opened: _Opened) -> None:
        """The scan of an existing target's project; a big project's files are loaded into the
        session opened before it as they are read (`session.stream_sources`).

        The scan reads ahead while the server builds the session API. A project whose bytes fit
        the scan's HELD_BYTES is read whole that way and loaded from memory after it (`scan()`'s
        way). Past that budget the plain way would read every further file twice (once to check
        it, once to load it), so the scan waits for the API there and streams: the files read
        so far and each further one go into one COPY as they are read, and the server fills its
        table during the scan. (Running the server's COPY beside the scan costs CPU on both
        sides on a two-core machine, so streaming is kept to where it saves the second read.)

        The project's problems are still the ones reported first: on a problem the rows stop
        and the scan goes on to list every problem, raised here (`run` then abandons the
        session, and the rows with it); when the session cannot take rows (its API failed),
        the scan runs alone, and its problems, if any, are raised before the session's.
        """
        from pgmilib.deploy import session
        from pgmilib.project import scan as projects

        request = self.request
        self.out.verbose(f"Scanning {request.project_path}")
        steps = projects.Scan(request.project_path, max_file_size=request.max_file_size)
        self.start_helper(steps)
        files = steps.files(keep=steps.cap)
        ahead: list[tuple[ProjectFile, bytes | None]] = []
        size = 0
        for item, data in files:
            ahead.append((item, data))
            size += len(data or b"")
            if size > projects.HELD_BYTES:
                break
        if size <= projects.HELD_BYTES or steps.problems:  # read whole, or already failed: no stream
            self.scanned(steps.finish(files))
            return
        try:
            with _connection_guard():
                opened.api_built()
        except PgmiError:
            steps.finish(files)  # the project's problems first
            raise
        with _connection_guard():
            session.stream_sources(opened.conn, steps, itertools.chain(ahead, files), self.cache, self.helper)
        self.scanned(steps.project())
        self.sources_loaded = True

    def scanned(self, project: Project) -> None:
        """What follows either scan: the count, --rehearse's check of deploy.sql, the contract."""
        from pgmilib.deploy import session
        from pgmilib.project import scan as projects

        request, out = self.request, self.out
        out.verbose(f"Found {len(project.files)} files to load")
        if request.rehearse:  # refuse a script with tail units before connecting
            from pgmilib.deploy.rehearse import refuse_tail

            refuse_tail(projects.read_deploy_sql(project))
        self.project = project
        self.compat = session.check_compat(request.compat)

    def start_helper(self, steps: Scan) -> None:
        """The scan has listed the files: the checksum cache is read, and a big project's
        normalized checksums start now, on another core, while the scan reads
        (deploy/normalizer.py); the helper is stopped when the run ends, if not before."""
        if steps.entries:  # an empty project imports nothing more
            from pgmilib.deploy.normalizer import Normalizer
            from pgmilib.project.checksums import ChecksumCache

            self.cache = ChecksumCache.for_project(steps.base, self.request.cache_dir)
            helper = Normalizer.for_walk(steps.entries, max_file_size=steps.cap, known=self.cache.known)
            self.helper = self.cleanup.enter_context(helper)

    # -- the target database and the session ---------------------------------------------

    def connect(self, database: str, params: ConnParams | None = None, out: Any = None,
                **options: Any) -> LiveConnection:
        from pgmilib.conn.connect import open_connection

        assert self.params is not None  # configure() ran
        self.watchdog.check()
        return open_connection(params or self.params, database, deadline=self.watchdog.deadline,
                               on_notice=self.out.notice, out=out or self.out, environ=self.environ, **options)

    def open_session(self) -> LiveConnection:
        """Create or overwrite the target as asked, then connect to it."""
        from pgmilib.deploy import dbadmin

        assert self.params is not None  # configure() ran
        request, out = self.request, self.out
        target, maintenance = self.params.database, self.params.maintenance_database or DEFAULT_MAINTENANCE_DB
        with _connection_guard():
            if request.overwrite:
                dbadmin.check_overwrite_allowed(target, maintenance)
                approver = request.approver or dbadmin.default_approver(request.force, out)
                dbadmin.overwrite_database(self.connect, target, maintenance, approver, out, lock_wait=self.lock_wait,
                                           watchdog=self.watchdog)
                return self.connect(target)
            if request.rehearse:  # a rehearsal never creates the database it proves a deploy against
                return self.connect(target)
            return dbadmin.open_target(self.connect, target, maintenance, out, lock_wait=self.lock_wait,
                                       watchdog=self.watchdog)

    def open_early(self) -> _Opened | PgmiError | None:
        """Connect to the target before the scan: the common case, an existing database.

        Not with --overwrite (the database is dropped only once the project has passed the
        scan), nor for a fleet's target (its project was scanned once, before), nor without a
        deploy.sql (exit 14 before any connection, as ever).

        One attempt, within EARLY_CONNECT_SECONDS, so that a project's problem is never held
        up behind a server that does not answer. None (connect after the scan, the usual way)
        when the target does not exist yet (`open_session` creates it then) or the failure is
        one worth retrying (the usual way retries it). Any other failure (a refused login, an
        old server, a pooler) is returned, for `run` to raise once the scan has passed: a
        problem in the project is still the one reported when there are both.
        """
        from pgmilib import records
        from pgmilib.conn import early
        from pgmilib.project.root import validate_root

        request, params = self.request, self.params
        assert params is not None  # configure() ran
        if request.overwrite or request.project is not None:
            return None
        try:
            validate_root(request.project_path)
        except PgmiError:
            return None  # the scan reports it
        limit = min(params.connect_timeout or EARLY_CONNECT_SECONDS, EARLY_CONNECT_SECONDS)
        quick = records.replace(params, connect_timeout=limit, given=set(params.given))
        said = _Held(self.out)  # the attempt's warnings and verbose lines, said once it counts
        try:
            # The start-up packet goes out before the driver is imported (conn/early.py): the
            # server starts the session meanwhile, and builds the session API once it has
            # accepted the login without an exchange (the usual local server).
            with early.start(quick, params.database, self.watchdog.deadline.cap(limit)) as started:
                from pgmilib.deploy import session  # imported, and the API read, while the server starts up

                started.send_at_login(session.api_at_login())  # before the guard imports the driver
                with _connection_guard():
                    conn = self.connect(params.database, quick, out=said, retry=False, started=started)
        except ConnectionFailed as error:
            from pgmilib.conn.connect import is_transient

            again = (error.pg and error.pg.sqlstate == "3D000") or error.__cause__ is None or is_transient(error.__cause__)
            if again and not self.watchdog.deadline.expired():  # with the run's time up, this is the report
                return None  # the attempt after the scan says it all again
            said.replay()
            return error
        except Interrupted:
            raise
        except PgmiError as error:
            said.replay()
            return error
        said.replay()
        try:
            return self.start(conn)
        except Interrupted:
            raise
        except PgmiError as error:
            return error

    def start(self, conn: LiveConnection) -> _Opened:
        """The server's version, one server session (no transaction pooler), then the session
        API sent without waiting for it. Closes `conn` when a check fails.

        When the session API went out behind the login (`open_early`), the server is building
        it already: its commit follows at once, and the pooler check waits for `api_built()`
        (a round trip now would wait for the build). If the API did not stay (another server
        session ran it: a proxy), the checks run first and the API is sent again, as here."""
        from pgmilib.deploy import lock, session

        assert self.params is not None  # configure() ran
        self.watchdog.conn = conn
        try:
            with _connection_guard():
                if getattr(conn, "query_ahead", False):
                    if session.server_version_reported(conn):
                        adopted = session.adopt_api_ahead(conn, conn.backend_pid)
                        return _Opened(conn, lambda: self.checked(conn, adopted()))
                    session.drop_api_ahead(conn)  # the version check asks the server: see it first
                session.check_server_version(conn)
                pid = self.pooler_check(conn)
                built = session.send_api(conn)

                def ready() -> int:
                    built()
                    return pid

                return _Opened(conn, ready)
        except BaseException:
            self.watchdog.conn = None
            lock.close_quietly(conn)
            raise

    def checked(self, conn: LiveConnection, installed: bool) -> int:
        """After the session API sent behind the login: the pooler check, and the API sent
        again when it did not stay (`session.adopt_api_ahead`). The session's server pid."""
        from pgmilib.deploy import session

        if installed:
            return self.pooler_check(conn)
        self.watchdog.check()  # a timeout or cancel may be why it failed
        self.out.verbose("The session API sent behind the login did not stay (another server session ran it, or "
                         "it failed): rolled back; checking the session, then sending it again")
        pid = self.pooler_check(conn)
        session.send_api(conn)()
        return pid

    def pooler_check(self, conn: LiveConnection) -> int:
        """pg_temp needs one server session: no transaction-mode pooler (deploy/pooler.py)."""
        from pgmilib.deploy import pooler

        assert self.params is not None  # configure() ran
        return pooler.check(conn, lambda: self.connect(self.params.database), self.out,
                            where=f"{self.params.host}:{self.params.port}")

    # -- the session API, the files, deploy.sql --------------------------------------------

    def prepare_and_execute(self, conn: LiveConnection, watcher: Watcher | None) -> None:
        from pgmilib import sqllex
        from pgmilib.deploy import execute, session, testing
        from pgmilib.project.scan import read_deploy_sql

        request, out, result, project = self.request, self.out, self.result, self.project
        assert project is not None  # scan() ran
        events = testing.TestEvents(out)
        conn.on_notice = lambda diag: events.on_notice(diag) or out.notice(diag)
        conn.on_copy_out = out.info  # COPY ... TO STDOUT in deploy.sql: rows shown like notices (stderr)
        failure: BaseException | None = None
        try:
            session.prepare(conn, project, self.deploy_params, compat=self.compat, verbose=out.verbose_mode, out=out,
                            cache_dir=request.cache_dir, api_sent=True, helper=self.helper, cache=self.cache,
                            sources_loaded=self.sources_loaded)
            result.files_loaded = len(project.files)
            self.watchdog.check()
            out.info("Executing deploy.sql")
            text = read_deploy_sql(project)
            expanded, result.test_macros, line_map = testing.expand_macros_mapped(conn, text)
            if result.test_macros:
                out.verbose(f"Expanded {result.test_macros} test macro(s) in deploy.sql")
            units = sqllex.split_units(expanded)
            runner: execute.UnitRunner = execute.Guarded(conn, self.watchdog, watcher)
            rehearsal: Rehearsal | None = None
            if request.rehearse:  # only the head, ending in ROLLBACK
                from pgmilib import config
                from pgmilib.deploy.rehearse import Rehearsal, lock_sources, rehearse_units

                units = rehearse_units(units)
                result.rehearsed = True  # also on failure: the envelope says it was a rehearsal
                out.info("Rehearsing: the atomic head of deploy.sql runs and is rolled back at its end")
                wait = config.parse_duration_flag("--rehearse-lock-timeout", request.rehearse_lock_timeout)
                runner = rehearsal = Rehearsal(runner, lock_timeout=wait,
                                               sources=lambda: lock_sources(project, text), warn=out.warn)
            if request.retry_lock:  # the head again after 55P03/40P01
                from pgmilib.deploy.retry import HeadRetry

                def on_retry(attempt: int) -> None:
                    result.lock_retries = attempt
                    events.suites.clear()  # the head's tests run again: report the last run only

                runner = HeadRetry(runner, request.retry_lock, out, self.watchdog.check, on_retry=on_retry,
                                   deadline=self.watchdog.deadline)
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
                        failed.trailer.append(f"NOTE: the rehearsal waits at most {request.rehearse_lock_timeout} "
                                              "for each lock (--rehearse-lock-timeout); the lock report names the "
                                              "holders")
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


class _Held:
    """Stands in for the run's Output during the connection attempt made before the scan: what
    the attempt says (a password file's permissions, a weak sslmode, --verbose lines) is kept,
    and said only if the attempt is not made again after the scan, so nothing is said twice.
    The connection layer only warns and writes verbose lines."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self.verbose_mode = out.verbose_mode
        self._said: list[tuple[Callable[[str], None], str]] = []

    def warn(self, message: str) -> None:
        self._said.append((self._out.warn, message))

    def verbose(self, message: str) -> None:
        self._said.append((self._out.verbose, message))

    def replay(self) -> None:
        for say, message in self._said:
            say(message)
        self._said.clear()


class _Opened:
    """The session connection with the session API on its way (its checks passed, or wait
    behind the API: `_Run.start`)."""

    def __init__(self, conn: LiveConnection, ready: Callable[[], int]) -> None:
        self.conn = conn
        self.pid = 0  # the server's pid of the session (for the live status), once api_built() returned
        self._ready: Callable[[], int] | None = ready

    def api_built(self) -> None:
        """Wait for the server to finish the session API (and any check that waited behind it);
        raises its failure. Once: later calls (the streaming scan waited already) return at once."""
        ready, self._ready = self._ready, None
        if ready is not None:
            self.pid = ready()

    def abandon(self, watchdog: Watchdog) -> None:
        """The scan failed: end the session (the server finishes the API, then drops it)."""
        from pgmilib.deploy import lock

        watchdog.conn = None
        lock.close_quietly(self.conn)


def _redact_exception(error: BaseException) -> None:
    """Redact the messages of an exception and its causes in place, with this run's secrets."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def _connection_guard() -> Iterator[None]:
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


# ---------------------------------------------------------------------------------------
# Helpers for the steps above
# ---------------------------------------------------------------------------------------


def _parameters(request: DeployRequest, project_config: ProjectConfig | None, out: Output) -> dict[str, str]:
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


def _verbose_connection(out: Output, params: ConnParams) -> None:
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
    from pgmilib.project.root import validate_root
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
    params.maintenance_database = DEFAULT_MAINTENANCE_DB
    params.source = server.description
    return params
