"""`pgmi deploy DIR --targets FILE`: the command-line side of fleet deploys (pgmilib/fleet).

Translation and process-wide concerns only: which flags mean a fleet, SIGINT/SIGTERM
(cancel the running targets, start no new ones, report which completed), and printing:
a line per target as it finishes, the final table, and with --json one document on stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pgmilib import records
from pgmilib.cli.signals import CancelOnSignal
from pgmilib.errors import PgmiError, UsageError, go_quote
from pgmilib.output import Output

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

#: Flags that only a fleet understands (attribute, flag).
FLEET_FLAGS = (("parallel", "--parallel"), ("canary", "--canary"), ("max_failures", "--max-failures"),
               ("only", "--only"), ("shard", "--shard"))
#: Flags that name one database: they make no sense with a list of targets (attribute, flag).
SINGLE_FLAGS = (("connection", "--connection"), ("host", "--host"), ("port", "--port"),
                ("username", "--username"), ("database", "--database"), ("ephemeral", "--ephemeral"),
                ("keep", "--keep"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The fleet flags of `pgmi deploy` (docs/FLEET.md)."""
    f = p.add_argument_group("fleet (one project, many databases: docs/FLEET.md)")
    f.add_argument("--targets", default="", metavar="FILE",
                   help="YAML file with a `targets:` list (name, connection, params); pgmi.yaml may hold one too")
    f.add_argument("--parallel", type=int, default=None, metavar="N", help="deploy N targets at a time (default 4)")
    f.add_argument("--canary", default="", metavar="NAME", help="deploy this target first; the rest only if it succeeds")
    f.add_argument("--max-failures", type=int, default=None, metavar="K",
                   help="start no new targets after K failures")
    f.add_argument("--only", default="", metavar="NAME,...", help="deploy only these targets")
    f.add_argument("--shard", default=None, metavar="I/N",
                   help="deploy shard I of N (1-based, round-robin over the list): one shard per CI job or pod")


def _given(args: argparse.Namespace, attr: str) -> bool:
    value = getattr(args, attr, None)
    if attr == "shard":  # `--shard ""` was given (an unset CI variable): an error, never "not given"
        return value is not None
    return value not in (None, "", 0, False)


def wants_fleet(args: argparse.Namespace) -> bool:
    """--targets, or a `targets:` list in pgmi.yaml when no flag names one database."""
    if args.targets:
        return True
    if not args.project_path or any(_given(args, attr) for attr, _ in SINGLE_FLAGS):
        return False
    from pgmilib.config import load_project_config

    try:
        config = load_project_config(args.project_path)
    except PgmiError:  # the single-deploy path reports a broken pgmi.yaml in its usual way
        return False
    return bool(config and config.targets_node is not None)


def check_single(args: argparse.Namespace) -> None:
    """A single deploy given fleet-only flags: say what is missing."""
    for attr, flag in FLEET_FLAGS:
        if _given(args, attr) or (attr in ("parallel", "max_failures") and getattr(args, attr) is not None):
            raise UsageError(f"{flag} needs a list of targets: --targets FILE (or a `targets:` list in pgmi.yaml)")


def cmd_fleet(args: argparse.Namespace, out: Output, request_from_args: Callable[..., Any]) -> int:
    """Deploy the project to every selected target; exit 0 only when all succeeded."""
    import gc

    from pgmilib.fleet import FleetCancellation, report, run_fleet

    gc.enable()  # run() turns the collector off for one deploy; a fleet is many, each may leave a cycle behind

    try:
        targets, base, options = _prepare(args, request_from_args)
    except PgmiError as error:
        if args.json:
            from pgmilib.deploy.request import DeployResult

            out.envelope(DeployResult.failed(error).envelope)
        raise
    from pgmilib.observe.board import FleetBoard
    from pgmilib.observe.watch import WatchSettings

    board = FleetBoard(out)  # one live status line per running target (docs/WATCH.md)
    base = records.replace(base, watch=WatchSettings(board=board))
    cancel = FleetCancellation()
    label = "Rehearsing" if base.rehearse else "Deploying"
    out.info(f"{label} {args.project_path} to {len(targets)} target(s), {options['parallel']} at a time"
             + (f", canary {options['canary']} first" if options["canary"] else ""))

    def on_done(outcome: Any, done: int, total: int) -> None:
        report.target_line(out, outcome, done, total)

    with CancelOnSignal(cancel, out, "pgmi: interrupted, cancelling the running targets (no new ones start)...",
                        stop_when_idle=False):
        try:
            result = run_fleet(base, targets, cancel=cancel, on_done=on_done, verbose=out.verbose_mode, **options)
        finally:
            board.close()
    out.info(report.table(result))
    if args.json:
        out.data(report.dumps(report.envelope(result, rehearse=base.rehearse)))
    return result.exit_code


def _prepare(args: argparse.Namespace, request_from_args: Callable[..., Any]) -> tuple[list[Any], Any, dict[str, Any]]:
    """Targets (selected), the base DeployRequest and the runner options; UsageError/ConfigError.

    `request_from_args` is cli.deploy's translation of the flags (passed in: cli.deploy calls us).
    """
    from pgmilib.config import load_project_config
    from pgmilib.fleet import load_targets_file, parse_shard, select, targets_from_project
    from pgmilib.fleet.runner import check_limits

    for attr, flag in SINGLE_FLAGS:
        if _given(args, attr):
            raise UsageError(f"{flag} cannot be combined with a list of targets: each target names its own "
                             "connection in the targets file")
    parallel = check_limits(args.parallel, args.max_failures)
    shard_spec = parse_shard(args.shard) if args.shard is not None else None
    only = _only(args.only) if args.only else []
    for spec in args.test_report:
        if "{target}" not in spec:
            raise UsageError(f"--test-report {go_quote(spec)}: with several targets the path needs {{target}}, "
                             "e.g. junit:reports/{target}.xml")
    if args.targets:
        targets = load_targets_file(args.targets)
    else:
        config = load_project_config(args.project_path)
        targets = targets_from_project(config) if config else []
    chosen = select(targets, only=only, shard_spec=shard_spec, canary=args.canary)
    base = request_from_args(args)
    options = {"parallel": parallel, "canary": args.canary, "max_failures": args.max_failures}
    return chosen, base, options


def _only(text: str) -> list[str]:
    from pgmilib.fleet.select import parse_only

    return parse_only(text)
