"""The command line: an argparse tree built from the command functions.

Each command is a plain function `(args, out) -> exit code` living in the module of its
feature; `args` holds only what the command line said (an absent flag is argparse's
default, usually None or empty, meaning "not given"), and `out` is the one output policy.
pgmi.yaml and .env are not argparse defaults: the code that needs them reads them (for a
deploy, `deploy()` loads both and applies flag > connection string > environment >
pgmi.yaml > built-in default; `pgmi deploy` itself peeks at pgmi.yaml only for a fleet's
`targets:` and for the connection wizard). Python callers can call the same functions.

Heavy modules (pg8000, yaml) are imported only by the commands that need them, so
`pgmi version` and `--help` stay fast.
"""

from __future__ import annotations

from pgmilib.lean import import_argparse, import_pathlib

import_argparse()
import_pathlib()  # the CLI's modules import pathlib; here without urllib.parse

import argparse  # already imported just above, without gettext
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from pgmilib import BUILD_COMMIT, BUILD_DATE, SUPPORTED_COMPAT, __version__
from pgmilib.errors import Exit, PgmiError, UsageError, exit_code
from pgmilib.output import Output, is_interactive

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, NoReturn

REPOSITORY = "https://github.com/vvka-141/pgmi"


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, with the terminal width found without `shutil`.

    argparse makes a formatter for every add_argument call (to check the metavar), and one with
    no width imports shutil (with bz2, lzma and fnmatch behind it: ~2 ms of every run) only for
    `shutil.get_terminal_size`. This is that function's rule: $COLUMNS, else the terminal of
    stdout, else 80 columns.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None, **kwargs: Any) -> None:  # kwargs: what later Pythons add (color)
        super().__init__(prog, indent_increment, max_help_position, width or _terminal_columns(), **kwargs)


def _terminal_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):  # no stdout, not a terminal, closed
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2) instead of printing usage and exiting."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("add_help", False)  # -h is --host on deploy; help is --help only
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--help", action="help", help="show this help and exit")

    #: The parser that parsed last: argparse reports a subcommand's unknown flag from the root parser,
    #: but the suggestion must come from the subcommand's own flags.
    last_used: _Parser | None = None

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        _Parser.last_used = self
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"usage error: {message}{_did_you_mean(message, _Parser.last_used or self)}")


def _did_you_mean(message: str, parser: argparse.ArgumentParser) -> str:
    """`; did you mean --connection?` for a mistyped flag or command (difflib), else ""."""
    import difflib
    import re

    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        word = choice.group(1)
        candidates = [c for c in re.findall(r"'([^']*)'", choice.group(2)) if not c.startswith("__")]
    else:
        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if not unknown or not unknown.group(1).startswith("-"):
            return ""
        word = unknown.group(1).split("=", 1)[0]
        if word == "-h":  # as in the original, -h is --host (on deploy), never help
            return "; use --help for help"
        candidates = [o for o in parser._option_string_actions if o.startswith("--")]
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


_BOOL_WORDS = {"1": "true", "t": "true", "true": "true", "0": "false", "f": "false", "false": "false"}


class _BoolFlag(argparse.Action):
    """A boolean flag like the original's: bare `--flag` is true, `--flag=false` (or `--flag false`)
    sets it. A following word that is not a boolean is not the flag's: it is kept as
    `flag_operand` and the command takes it as its project path, so `--idempotent ./proj`
    reads as in the original (argparse would reset project_path itself afterwards)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        word = _BOOL_WORDS.get(str(values).lower()) if values is not None else "true"
        if word is None:
            if getattr(namespace, "project_path", None) is not None:
                parser.error(f"invalid boolean value {values!r} for {option_string}: use true or false")
            namespace.flag_operand, word = values, "true"
        setattr(namespace, self.dest, word)


def _lazy(target: str) -> Callable[[argparse.Namespace, Output], int]:
    """`"module:function"` -> a callable that imports the module only when run."""
    module_name, func_name = target.split(":")

    def run(args: argparse.Namespace, out: Output) -> int:
        module = importlib.import_module(f"pgmilib.{module_name}")
        return getattr(module, func_name)(args, out)

    run.__name__ = func_name
    return run


def _platform() -> str:
    import platform

    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = {"win32": "windows"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    return f"{system}/{machine}"


def version_text() -> str:
    """What a bug report needs: this implementation, its compat level, and the Python running it."""
    import platform

    return (
        f"pgmi {__version__} (compat {SUPPORTED_COMPAT[0]})\n"
        f"Commit: {BUILD_COMMIT}, Built: {BUILD_DATE}, Platform: {_platform()}\n"
        f"Implementation: pgmi for Python (pgmilib), a re-implementation of the Go pgmi; "
        f"session API compat level {SUPPORTED_COMPAT[0]} (supported: {', '.join(SUPPORTED_COMPAT)})\n"
        f"Python: {platform.python_implementation()} {platform.python_version()} ({sys.executable})\n"
        f"{_running_file_line()}\n"
        f"Repository: {REPOSITORY}\n"
    )


def running_zipapp() -> str | None:
    """The single-file build this process runs from, or None (a checkout, an installed package).

    Its `__main__` module is the archive's `__main__.py`, so the archive is the parent of that path
    and, unlike a directory, a file.
    """
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    archive = os.path.dirname(os.path.abspath(main_file)) if main_file else ""
    return archive if archive and os.path.isfile(archive) else None


def _running_file_line() -> str:
    """`SHA-256: <hex> (<file>)` of the running single-file build, read now (only `version` asks)."""
    import hashlib

    archive = running_zipapp()
    if archive is None:
        return "SHA-256: none (not the single-file build; `make build` makes and prints one)"
    digest = hashlib.sha256()
    try:
        with open(archive, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        return f"SHA-256: unreadable ({archive}: {error.strerror or error})"
    return f"SHA-256: {digest.hexdigest()} ({archive})"


def cmd_version(args: argparse.Namespace, out: Output) -> int:
    out.data(version_text())
    return Exit.SUCCESS


# ---------------------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------------------


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command tree; for command "deploy", the root and that branch only (what `pgmi deploy ...`
    parses with: building every other subcommand would cost a few milliseconds of every deploy)."""
    root = _Parser(prog="pgmi", description="PostgreSQL-native deployment driver: your deploy.sql is in control.")
    root.add_argument("--version", action="store_true", help="print version information and exit")
    root.add_argument("-v", "--verbose", action="store_true", help="verbose diagnostics on stderr")
    common = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)  # flags every subcommand accepts too
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="verbose diagnostics on stderr")
    subs = root.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)

    def add(name: str, func: Callable, help_text: str, *, parent=subs, **kw) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text, parents=[common], **kw)
        p.set_defaults(func=func, _parser=p)
        return p

    from pgmilib.cli import deploy as deploy_cli

    deploy_cli.add_arguments(add("deploy", _lazy("cli.deploy:cmd_deploy"), "run deploy.sql of a project against a database"))
    if command == "deploy":
        return root

    init = add("init", _lazy("cli.init:cmd_init"), "scaffold a new project from a template")
    init.add_argument("target_path", nargs="?", default=".")
    init.add_argument("-t", "--template", default=None, help="basic (default) or advanced")

    add("config", _lazy("cli.config_cmd:cmd_config"), "interactive connection set-up, written to pgmi.yaml").add_argument(
        "path", nargs="?", default=".")

    info = add("info", _lazy("cli.info:cmd_info"), "offline summary of a project")
    info.add_argument("path", nargs="?", default=".")
    info.add_argument("--json", action="store_true", help="print JSON on stdout")

    templates = add("templates", _group_help, "list and describe project templates")
    tsubs = templates.add_subparsers(dest="subcommand", metavar="<subcommand>", parser_class=_Parser)
    tlist = add("list", _lazy("cli.templates:cmd_list"), "list templates", parent=tsubs)
    tlist.add_argument("--json", action="store_true", help="print JSON on stdout")
    tdescribe = add("describe", _lazy("cli.templates:cmd_describe"), "describe a template", parent=tsubs)
    tdescribe.add_argument("template_name", nargs="?")
    tdescribe.add_argument("--json", action="store_true", help="print JSON on stdout")

    meta = add("metadata", _group_help, "work with <pgmi-meta> blocks (offline)")
    msubs = meta.add_subparsers(dest="subcommand", metavar="<subcommand>", parser_class=_Parser)
    scaffold = add("scaffold", _lazy("cli.metadata:cmd_scaffold"), "add <pgmi-meta> blocks to SQL files", parent=msubs)
    scaffold.add_argument("project_path", nargs="?")
    scaffold.add_argument("--write", action="store_true", help="modify files (default: preview only)")
    scaffold.add_argument("--idempotent", default="true", nargs="?", action=_BoolFlag, metavar="BOOL",
                          help="idempotent flag of generated blocks (default true; the bare flag is true)")
    for name, target, text in (("validate", "cli.metadata:cmd_validate", "check metadata and duplicate ids"),
                               ("plan", "cli.metadata:cmd_plan", "show the metadata execution order")):
        p = add(name, _lazy(target), text, parent=msubs)
        p.add_argument("project_path", nargs="?")
        p.add_argument("--json", action="store_true", help="print JSON on stdout")

    ai = add("ai", _lazy("cli.ai:cmd_ai"), "documentation for AI coding assistants (skills, skill, contract, "
             "client, setup, check)")
    ai.add_argument("rest", nargs=argparse.REMAINDER)
    # `pgmi ai` parses its own subcommands (cli/ai.py); its --help shows them, not "rest".
    ai.format_help = lambda: importlib.import_module("pgmilib.cli.ai").build_parser().format_help()
    add("serve", _lazy("cli.serve:cmd_serve"), "MCP server over stdio (claude mcp add pgmi -- pgmi serve)")
    add("version", cmd_version, "print version information").add_argument("rest", nargs="*")
    add("completion", _lazy("cli.completion:cmd_completion"), "print a shell completion script").add_argument(
        "shell", choices=("bash", "zsh", "fish", "powershell"))
    return root


def _group_help(args: argparse.Namespace, out: Output) -> int:
    out.data(args._parser.format_help())
    return Exit.SUCCESS


def _splash(out: Output) -> None:
    out.info(
        "█▀█ █▀▀ █▀▄▀█ █\n█▀▀ █▄█ █ ▀ █ █\n\nPostgreSQL-native deployment driver.\n\n"
        "  pgmi init demo\n  pgmi deploy ./demo -d mydb\n  pgmi --help"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run pgmi with `argv` (default sys.argv[1:]) and return the exit code.

    For the whole run, SIGTERM is handled like Ctrl-C (a clean `pgmi: interrupted`, exit 130)
    instead of the default action, including before and after a deploy's own handlers; the
    previous handler is restored on return, so in-process callers keep theirs.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at interpreter exit: a closed pipe is still ours to report
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:  # a signal that landed between two statements of the error path
        sys.stderr.write("pgmi: interrupted\n")
        return Exit.INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The command line's entry point (pgmi.py, the zipapp): main(), then the process ends.

    Once main() has flushed the result, what the interpreter would still do is tear down every
    module and object (~15 ms of an empty deploy) for nobody. So the process ends at once with
    os._exit, after flushing stdout and stderr, unless something still needs the normal exit: a
    non-daemon thread still running, or an atexit hook (the throwaway server of --ephemeral,
    logging's handlers). In-process callers use main(), which returns.

    The process runs one command, so the cyclic garbage collector is off: pgmi's objects are
    freed by reference counting, and the collector's passes over every live object only cost
    time (the empty deploy 2.7 % of its instructions, a 10,000-file deploy 7 % of its CPU, at
    the same peak RSS; bench/ANALYSIS.md). What a deploy leaves to the collector is a fixed few
    hundred objects, plus, after a failure or a test run, its project's graph, which the process
    ends with (tests/test_startup_imports.py). `pgmi serve` (hours) and a fleet deploy (many
    deploys in one process) turn it back on.
    """
    import gc

    gc.disable()
    code = main(argv)
    # The result is out and true: a signal from here on could only turn a finished run into a
    # traceback (main's handlers are gone), so the last steps of the exit ignore it.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    if _needs_normal_exit():
        sys.exit(code)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed or broken stream: the normal exit reports it as it always has
        sys.exit(code)
    os._exit(code)


def _needs_normal_exit() -> bool:
    """True when the interpreter's exit has work to do: atexit hooks, or threads it would wait for."""
    import atexit

    count = getattr(atexit, "_ncallbacks", None)  # CPython; without it, always the normal exit
    if count is None or count():
        return True
    main_thread = threading.main_thread()
    return any(t is not main_thread and t.is_alive() and not t.daemon for t in threading.enumerate())


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


#: `pgmi ... | head -1`: the reader is gone. Quietly, with the status a Unix tool killed by SIGPIPE has.
CLOSED_PIPE = 141


def _closed_pipe() -> int:
    """Nobody reads stdout any more: say nothing, and point stdout at /dev/null so the
    interpreter's final flush of what is still buffered cannot fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # an in-process caller's stdout has no descriptor
        pass
    return CLOSED_PIPE


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.last_used = None
    verbose = "-v" in argv or "--verbose" in argv
    out = Output(verbose=verbose, json_mode="--json" in argv)
    parser = build_parser(argv[0] if argv else None)
    try:
        if not argv:
            if is_interactive() and not os.environ.get("PGMI_NO_BANNER"):
                _splash(out)
            else:
                out.data(parser.format_help())
            return Exit.SUCCESS
        # Hidden (not in the argparse tree, so not in help or suggestions): the completion scripts call
        # back `pgmi __complete WORD...`; the words are a half-typed command line, never parsed as flags.
        if argv[0] == "__complete":
            return _lazy("cli.completion:cmd_complete")(argparse.Namespace(words=argv[1:]), out)
        if argv[0] == "help":
            parser.parse_args([*argv[1:], "--help"])
        args = parser.parse_args(argv)
        if args.version:
            return cmd_version(args, out)
        if not getattr(args, "func", None):
            raise UsageError("usage error: a command is required (see pgmi --help)")
        out.verbose_mode = bool(getattr(args, "verbose", False))
        return int(args.func(args, out))
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    except KeyboardInterrupt:
        out.info("pgmi: interrupted")
        return Exit.INTERRUPTED
    except UsageError as error:
        out.error(error)
        if out.json_mode:  # scripts parsing stdout get a document even for a bad command line
            from pgmilib.deploy.request import DeployResult

            out.envelope(DeployResult.failed(error).envelope)
        return Exit.USAGE
    except PgmiError as error:
        out.error(error)
        return exit_code(error)
    except BrokenPipeError:  # the reader of our output went away (`| head`): not a bug
        raise
    except Exception as error:  # noqa: BLE001 -- a bug: say so, with the (redacted) traceback, exit 3
        problem = environment_problem(error)
        if problem:  # not a bug: something the machine lacks; one line and the fix, exit 1
            out.error_text(problem)
            return Exit.GENERAL
        _panic(out, error)
        return Exit.PANIC


#: Import name -> requirement, for the one-line "missing dependency" message.
_DEPENDENCIES = {"yaml": "PyYAML", "pg8000": "pg8000", "scramp": "scramp", "asn1crypto": "asn1crypto",
                 "dateutil": "python-dateutil", "six": "six"}


def environment_problem(error: BaseException) -> str | None:
    """One line (what is missing, the command that fixes it) when `error` is the machine's, not a bug."""
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in _DEPENDENCIES:
        package = _DEPENDENCIES[(error.name or "").split(".")[0]]
        return (f"missing Python dependency {package} (module {error.name!r}) for {sys.executable}; fix: run "
                f"`make demo` or `make test` in the pgmi checkout (they set up .venv), or `pip install .` there")
    if isinstance(error, FileNotFoundError) and "No usable temporary directory" in str(error):
        return ("no writable temporary directory ($TMPDIR, /tmp, /var/tmp, /usr/tmp and the current directory "
                "are not writable); fix: export TMPDIR=<a writable directory>")
    return None


def _panic(out: Output, error: BaseException) -> None:
    """A bug: one line, the traceback for the report, both redacted (a secret can be in a frame's text)."""
    import traceback

    from pgmilib.redact import redact

    out.stderr.write(redact(f"panic: {error}\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__))))
    out.stderr.write("pgmi: this is a bug (exit 3); please report it with the lines above\n")
    out.stderr.flush()
