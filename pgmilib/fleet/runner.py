"""Deploy one project to many databases: one `deploy()` per target in a bounded thread pool.

Each target is an ordinary `pgmilib.deploy.deploy()` call with its own DeployRequest
(connection, params, environment copy), its own `Output` (its notices and progress are
buffered, not interleaved with other targets'), its own `Cancellation` and, inside
deploy(), its own secret scope. The project is scanned once, before any target starts,
and handed to every request (a bad project fails the fleet before any connection).

Scheduling is done by the calling thread: it starts targets while a worker is free, a
canary (if any) alone first, and stops starting new ones after `max_failures` failures or
a cancel; it reports each target as it finishes through `on_done`, so lines come out whole.
It waits with a short timeout, so a signal handler in that thread runs promptly.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from pgmilib import records
from pgmilib.deploy import Cancellation, DeployRequest, DeployResult, deploy
from pgmilib.errors import Exit, UsageError
from pgmilib.fleet.select import check_known
from pgmilib.fleet.targets import Target
from pgmilib.output import Output
from pgmilib.records import field, record
from pgmilib.redact import redact

DEFAULT_PARALLEL = 4
#: Environment connection strings would beat a target's own block; a fleet never uses them.
_IGNORED_ENV = ("PGMI_CONNECTION_STRING", "DATABASE_URL")
_FLAG_KEYS = ("host", "port", "username", "database", "sslmode", "sslcert", "sslkey", "sslrootcert",
              "azure_tenant_id", "azure_client_id", "aws_region", "google_instance", "maintenance_database")


@record
class TargetOutcome:
    """What happened to one target; `database`, `error` and `log` are redacted (by the target's own run)."""

    name: str
    status: str  # success | failed | cancelled (interrupted while running) | skipped (never started)
    exit_code: int | None = None  # None when the target never started
    duration: float = 0.0
    database: str = ""
    error: str = ""  # the first line of the error (or why it was skipped)
    error_text: str = ""  # the whole error block
    summary: str = ""  # the deploy's summary line
    log: str = ""  # the target's own progress lines and notices
    result: DeployResult | None = field(default=None, repr=False)

    @property
    def completed(self) -> bool:
        return self.status in ("success", "failed")

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"name": self.name, "status": self.status, "exitCode": self.exit_code,
                                "durationMs": int(self.duration * 1000)}
        if self.database:
            item["database"] = self.database
        if self.error:
            item["error"] = self.error
        if self.result is not None and self.result.rehearsed:
            item["rehearsed"] = True
            if "locks" in self.result.envelope:  # the rehearsal's lock report (docs/LOCKS.md)
                item["locks"] = self.result.envelope["locks"]
        return item


@record
class FleetResult:
    outcomes: list[TargetOutcome]
    duration: float = 0.0
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        return all(o.status == "success" for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when every target succeeded; 130 after a cancel; the failures' common code, else 1."""
        if self.ok:
            return int(Exit.SUCCESS)
        if self.cancelled:
            return int(Exit.INTERRUPTED)
        codes = {o.exit_code for o in self.outcomes if o.status == "failed"}
        return int(codes.pop()) if len(codes) == 1 else int(Exit.GENERAL)

    def summary(self) -> dict[str, int]:
        return {"total": len(self.outcomes), "succeeded": self.count("success"), "failed": self.count("failed"),
                "cancelled": self.count("cancelled"), "skipped": self.count("skipped"),
                "durationMs": int(self.duration * 1000)}


class FleetCancellation:
    """Cancel a running fleet from any thread or a signal handler: running targets stop, no new ones start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Cancellation] = {}
        self.requested = False

    def cancel(self) -> None:
        self.requested = True
        with self._lock:
            running = list(self._running.values())
        for handle in running:
            handle.cancel()

    def _register(self, name: str, handle: Cancellation) -> None:
        with self._lock:
            self._running[name] = handle
        if self.requested:
            handle.cancel()

    def _unregister(self, name: str) -> None:
        with self._lock:
            self._running.pop(name, None)


def request_for(base: DeployRequest, target: Target) -> DeployRequest:
    """The DeployRequest of one target: the fleet's flags, the target's connection and params."""
    environ = dict(base.environ or {})  # None: an empty environment, as deploy() reads it
    for key in _IGNORED_ENV:
        environ.pop(key, None)
    flags = base.connection
    if target.connection:
        flags = records.replace(flags, connection=target.connection)
    else:
        block = dict(target.block or {})
        given = {key: block[key] for key in _FLAG_KEYS if block.get(key)}
        method = str(block.get("auth_method", ""))
        given.update(azure=flags.azure or method == "azure", aws=flags.aws or method == "aws",
                     google=flags.google or method == "google")
        flags = records.replace(flags, **given)  # flags: a target's own values beat the environment
    reports = tuple(spec.replace("{target}", target.name) for spec in base.test_reports)
    watch = base.watch.for_target(target.name) if base.watch is not None else None  # its own status line
    # approver=None: targets run side by side and never ask at a terminal; `force` alone approves.
    return records.replace(base, connection=flags, environ=environ, target_params=dict(target.params),
                               test_reports=reports, watch=watch, approver=None)


def check_limits(parallel: int | None, max_failures: int | None) -> int:
    """The fleet's `--parallel` (None: DEFAULT_PARALLEL), checked with `--max-failures`; UsageError.

    The one check of both, for the command line (before the targets are read) and `run_fleet`."""
    parallel = DEFAULT_PARALLEL if parallel is None else parallel
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    if max_failures is not None and max_failures < 1:
        raise UsageError(f"--max-failures must be at least 1, got {max_failures}")
    return parallel


def run_fleet(
    base: DeployRequest,
    targets: Sequence[Target],
    *,
    parallel: int = DEFAULT_PARALLEL,
    canary: str = "",
    max_failures: int | None = None,
    cancel: FleetCancellation | None = None,
    on_done: Callable[[TargetOutcome, int, int], None] = lambda outcome, done, total: None,
    verbose: bool = False,
) -> FleetResult:
    """Deploy `base` to every target (see the module docstring); never raises for a target's failure.

    `verbose`: each target's log has the [VERBOSE] lines (the caller's own Output's mode).

    Raises UsageError for bad options and the scan's PgmiError for a bad project, before
    any target starts. `on_done(outcome, done, total)` runs in the calling thread.
    """
    parallel = check_limits(parallel, max_failures)
    check_known(targets, canary=canary)
    cancel = cancel or FleetCancellation()
    started = time.monotonic()
    if base.project is None:  # once for the whole fleet; a bad project fails here, exit as for one deploy
        from pgmilib.project.scan import scan

        base = records.replace(base, project=scan(base.project_path, max_file_size=base.max_file_size))
    order = sorted(targets, key=lambda t: t.name != canary) if canary else list(targets)
    outcomes: dict[str, TargetOutcome] = {}
    pending = deque(order)
    failures = 0
    stop_reason = ""

    def finish(outcome: TargetOutcome) -> None:
        nonlocal failures, stop_reason
        outcomes[outcome.name] = outcome
        if outcome.status == "failed":
            failures += 1
            if canary and outcome.name == canary:
                stop_reason = f"not started: the canary {canary!r} failed"
            elif max_failures is not None and failures >= max_failures and not stop_reason:
                stop_reason = f"not started: --max-failures {max_failures} reached"
        on_done(outcome, len(outcomes), len(order))

    with cf.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pgmi-fleet") as pool:
        running: dict[cf.Future[TargetOutcome], str] = {}
        while True:
            canary_running = canary and canary not in outcomes
            while pending and len(running) < parallel and not stop_reason and not cancel.requested:
                if canary_running and running:
                    break  # the canary runs alone
                target = pending.popleft()
                running[pool.submit(_deploy_one, base, target, cancel, verbose)] = target.name
            if not running:
                break
            try:
                done, _ = cf.wait(running, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            except KeyboardInterrupt:  # no signal handler installed (an API caller): cancel, then report
                cancel.cancel()
                continue
            for future in done:
                running.pop(future)
                finish(future.result())
    for target in pending:
        reason = "not started: cancelled" if cancel.requested else stop_reason
        outcomes[target.name] = TargetOutcome(name=target.name, status="skipped", error=reason)
    return FleetResult(outcomes=[outcomes[t.name] for t in targets], duration=time.monotonic() - started,
                       cancelled=cancel.requested)


def _deploy_one(base: DeployRequest, target: Target, cancel: FleetCancellation, verbose: bool) -> TargetOutcome:
    """One target in a worker thread: its own request, Output buffer and Cancellation."""
    buffer = io.StringIO()
    out = Output(verbose=verbose, stdout=buffer, stderr=buffer)
    handle = Cancellation()
    cancel._register(target.name, handle)
    try:
        result = deploy(request_for(base, target), out, cancel=handle)
    except Exception as bug:  # noqa: BLE001 -- a bug in one target must not take the fleet down
        return TargetOutcome(name=target.name, status="failed", exit_code=int(Exit.PANIC),
                             error=redact(f"panic: {type(bug).__name__}: {bug}"), log=buffer.getvalue())
    finally:
        cancel._unregister(target.name)
    if result.ok:
        status = "success"
    elif result.exit_code == Exit.INTERRUPTED and cancel.requested:
        status = "cancelled"
    else:
        status = "failed"
    first = result.error_text.splitlines()[0] if result.error_text else ""
    # Only text deploy() redacted while this target's secrets were registered: once it has
    # returned they are gone, and a database named like the target's password would show.
    database = str(result.envelope.get("database", ""))
    return TargetOutcome(name=target.name, status=status, exit_code=int(result.exit_code), duration=result.duration,
                         database=database, error=redact(first), error_text=result.error_text,
                         summary=result.summary, log=buffer.getvalue(), result=result)
