"""`pgmi deploy`: flags -> DeployRequest -> deploy() -> summary line / --json envelope / exit code.

This module is only translation. The deployment itself is `pgmilib.deploy.deploy()`,
which the MCP server, fleet deploys and the tests call in the same way. What is
process-wide lives here and nowhere else: SIGINT/SIGTERM handlers (turned into a
`Cancellation` of the run), reading `os.environ`, and asking whether we are on a terminal.
"""

from __future__ import annotations

import argparse
import os

from pgmilib.cli.signals import CancelOnSignal
from pgmilib.errors import ConfigError, PgmiError, UsageError
from pgmilib.output import Output, is_interactive

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

#: `--fail-on-lock-risk` without a value: a table of 10 MB rewrites in well under a second on
#: common hardware; above that, the time every reader queues behind the lock is noticeable.
DEFAULT_RISK_SIZE = "10MB"
_MISSING_PATH = (
    "missing required argument: <project_path>\n\nUsage: pgmi deploy <project_path> [flags]\n\n"
    "Example:\n  pgmi deploy . -d mydb"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `pgmi deploy` (README.md "Usage")."""
    from pgmilib.conn import SSLMODES

    p.add_argument("project_path", nargs="?", help="project directory (contains deploy.sql)")
    c = p.add_argument_group("connection")
    c.add_argument("--connection", default="", help="connection string, URI or key=value "
                   "(default: $PGMI_CONNECTION_STRING, then $DATABASE_URL)")
    c.add_argument("-h", "--host", default="", help="server host or socket directory ($PGHOST, pgmi.yaml, localhost)")
    c.add_argument("-p", "--port", type=int, default=0, help="server port ($PGPORT, pgmi.yaml, 5432)")
    c.add_argument("-U", "--username", default="", help="user name ($PGUSER, pgmi.yaml, OS user)")
    c.add_argument("-d", "--database", default="", help="target database (created if missing)")
    c.add_argument("--sslmode", default="", help=f"{'|'.join(SSLMODES)} ($PGSSLMODE, prefer)")
    c.add_argument("--sslcert", default="", help="client certificate file ($PGSSLCERT)")
    c.add_argument("--sslkey", default="", help="client private key file ($PGSSLKEY)")
    c.add_argument("--sslrootcert", default="", help="CA certificate file ($PGSSLROOTCERT)")
    a = p.add_argument_group("cloud authentication")
    a.add_argument("--azure", action="store_true", help="use an Azure Entra ID token as the password")
    a.add_argument("--azure-tenant-id", default="", help="Azure tenant ($AZURE_TENANT_ID)")
    a.add_argument("--azure-client-id", default="", help="Azure client / managed identity ($AZURE_CLIENT_ID)")
    a.add_argument("--aws", action="store_true", help="use an AWS RDS IAM token as the password")
    a.add_argument("--aws-region", default="", help="AWS region ($AWS_REGION, $AWS_DEFAULT_REGION)")
    a.add_argument("--google", action="store_true", help="use Google Cloud SQL IAM authentication")
    a.add_argument("--google-instance", default="", help="Cloud SQL instance project:region:instance")
    d = p.add_argument_group("deployment")
    d.add_argument("--overwrite", action="store_true", help="drop and recreate the target database first")
    d.add_argument("--force", action="store_true", help="never wait for a confirmation prompt")
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="deployment parameter (repeatable; beats --params-file, which beats pgmi.yaml)")
    d.add_argument("--params-file", action="append", default=[], metavar="FILE",
                   help=".env-style parameter file (repeatable; later files win)")
    d.add_argument("--timeout", default=None, metavar="DURATION",
                   help="deadline for the whole deployment, e.g. 30s, 5m, 1h30m; 0 = none (default: pgmi.yaml timeout, else 3m)")
    d.add_argument("--lock-wait", default="0", metavar="DURATION",
                   help="wait this long for another deploy's lock instead of failing at once (default 0)")
    d.add_argument("--compat", default="", help="session API version (default: latest, 1)")
    d.add_argument("--ephemeral", action="store_true",
                   help="deploy into a throwaway local PostgreSQL, removed at exit")
    d.add_argument("--keep", action="store_true", help="with --ephemeral: leave the server running and print its DSN")
    d.add_argument("--test-report", action="append", default=[], metavar="FORMAT:PATH",
                   help="write test results as junit, tap or json (repeatable)")
    d.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    # -- rehearsals, lock retries, fleets (docs/FLEET.md)----------------------------------
    d.add_argument("--rehearse", action="store_true",
                   help="run the atomic head of deploy.sql (migrations, tests) and ROLLBACK instead of COMMIT; "
                        "reports what it locked and rewrote (docs/LOCKS.md)")
    d.add_argument("--retry-lock-timeout", type=int, default=0, metavar="N",
                   help="retry the atomic head up to N times after a lock timeout (55P03) or deadlock (40P01)")
    # -- the rehearsal's lock report (docs/LOCKS.md) -------------------------------------
    d.add_argument("--rehearse-lock-timeout", default=None, metavar="DURATION",
                   help="with --rehearse: wait at most this long for each lock, then report who holds it "
                        "(default 2s; 0 = no limit)")
    d.add_argument("--fail-on-lock-risk", nargs="?", const=DEFAULT_RISK_SIZE, default=None, metavar="SIZE",
                   help="with --rehearse: exit 17 when a relation of at least SIZE (default 10MB; 0 = any) is "
                        "rewritten or ACCESS EXCLUSIVE-locked")
    from pgmilib.cli import fleet

    fleet.add_arguments(p)


def connection_flags(args: argparse.Namespace) -> Any:
    """The connection flags of a parsed `pgmi deploy` command line, typed."""
    from pgmilib.conn.resolve import ConnectionFlags

    return ConnectionFlags(
        connection=args.connection, host=args.host, port=args.port or 0, username=args.username,
        database=args.database, sslmode=args.sslmode, sslcert=args.sslcert, sslkey=args.sslkey,
        sslrootcert=args.sslrootcert, azure=args.azure, azure_tenant_id=args.azure_tenant_id,
        azure_client_id=args.azure_client_id, aws=args.aws, aws_region=args.aws_region, google=args.google,
        google_instance=args.google_instance, maintenance_database=getattr(args, "maintenance_database", ""),
    )


def request_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None,
                      out: Output | None = None, connection: Any = None) -> Any:
    """A parsed `pgmi deploy` command line as a DeployRequest (raises for a malformed --param).

    With `out`, the request carries the terminal's --overwrite approver (cli/approvers.py);
    `connection` (ConnectionFlags) replaces the flags' own (the connection wizard's answers).
    """
    from pgmilib.config import parse_param
    from pgmilib.deploy import DeployRequest
    from pgmilib.project.root import cache_dir_from, max_file_size_from

    _lock_flags(args)
    if not args.project_path:
        raise UsageError(_MISSING_PATH)
    environ = dict(os.environ) if environ is None else environ
    if out is not None and args.overwrite:  # only --overwrite asks
        from pgmilib.cli.approvers import choose_approver

        approver = choose_approver(args.force, is_interactive(), out)
    else:
        approver = None
    return DeployRequest(
        project_path=args.project_path,
        connection=connection if connection is not None else connection_flags(args),
        environ=environ,
        max_file_size=max_file_size_from(environ),
        cache_dir=cache_dir_from(environ),
        params=dict(parse_param(p) for p in args.param),
        params_files=tuple(args.params_file),
        timeout=args.timeout,
        lock_wait=args.lock_wait,
        overwrite=args.overwrite,
        force=args.force,
        approver=approver,
        compat=args.compat,
        ephemeral=args.ephemeral,
        keep=args.keep,
        test_reports=tuple(args.test_report),
        rehearse=bool(getattr(args, "rehearse", False)),
        retry_lock=_retries(getattr(args, "retry_lock_timeout", 0)),
        rehearse_lock_timeout=getattr(args, "rehearse_lock_timeout", None) or DeployRequest.rehearse_lock_timeout,
        fail_on_lock_risk=_risk_size(getattr(args, "fail_on_lock_risk", None)),
    )


def _reclaim_project_path(args: argparse.Namespace) -> None:
    """`pgmi deploy --fail-on-lock-risk DIR`: argparse gave the optional size the project path; give it back."""
    risk = getattr(args, "fail_on_lock_risk", None)
    if risk is not None and not args.project_path:
        from pgmilib.deploy.lockreport import parse_size  # a large module: only when the flag is used

        try:
            parse_size("--fail-on-lock-risk", risk)
        except UsageError:
            args.project_path, args.fail_on_lock_risk = risk, DEFAULT_RISK_SIZE


def _lock_flags(args: argparse.Namespace) -> None:
    """`--rehearse-lock-timeout` only means something in a rehearsal (the request cannot tell a
    given value from its default; `--fail-on-lock-risk` is checked by the deploy itself)."""
    _reclaim_project_path(args)
    if getattr(args, "rehearse_lock_timeout", None) is not None and not getattr(args, "rehearse", False):
        raise ConfigError("--rehearse-lock-timeout only applies together with --rehearse")


def _risk_size(text: str | None) -> int | None:
    if text is None:
        return None
    from pgmilib.deploy.lockreport import parse_size

    return parse_size("--fail-on-lock-risk", text)


def _retries(value: int) -> int:
    if value < 0:
        raise UsageError(f"--retry-lock-timeout must be 0 or more, got {value}")
    return value


def cmd_deploy(args: argparse.Namespace, out: Output) -> int:
    """`pgmi deploy <project_path>`: run the deployment, print the summary or envelope, return the exit code."""
    from pgmilib.deploy import Cancellation, DeployResult, deploy

    _reclaim_project_path(args)
    if not args.project_path:
        raise UsageError(_MISSING_PATH)
    from pgmilib.cli import fleet  # --targets (or pgmi.yaml targets:) deploys a fleet

    if fleet.wants_fleet(args):
        return fleet.cmd_fleet(args, out, request_from_args)
    fleet.check_single(args)
    try:
        environ = dict(os.environ)
        flags = _connection_wizard(args, connection_flags(args), environ, out)
        request = request_from_args(args, environ, out, flags)
    except PgmiError as error:  # a malformed --param, a cancelled wizard: reported like every other error
        result = DeployResult.failed(error)
    else:
        cancel = Cancellation()
        with CancelOnSignal(cancel, out, "pgmi: interrupted, cancelling deployment..."):
            result = deploy(request, out, cancel=cancel)
    if args.json:
        out.envelope(result.envelope)
    elif result.summary:
        out.summary(result.ok, result.summary)
        for line in result.lock_lines:  # --rehearse: the lock report's table
            out.info(line)
    if result.error is not None:
        out.error_text(result.error_text)
    return int(result.exit_code)


def _connection_wizard(args: argparse.Namespace, flags: Any, environ: dict[str, str], out: Output) -> Any:
    """No connection source at all, on a terminal, without --force -> ask; returns
    `flags` (ConnectionFlags) with the answers in the fields still empty.

    A password the wizard learned goes into this run's private environment copy as
    PGPASSWORD (only if none is set), never into a flag or a file.
    """
    if args.ephemeral or args.force or not is_interactive():
        return flags
    from pgmilib import config
    from pgmilib.scaffold.deploy_hook import maybe_run_deploy_wizard

    merged, _ = config.load_dotenv(args.project_path, environ)
    project_config = config.load_project_config(args.project_path)
    ran = maybe_run_deploy_wizard(flags, merged, project_config.connection if project_config else None,
                                  args.project_path, out)
    if ran is None:
        return flags
    flags, wizard = ran
    if wizard.password and not merged.get("PGPASSWORD"):
        environ["PGPASSWORD"] = wizard.password
    return flags
