"""The one output policy: what goes to stdout vs stderr, human vs --json, progress, colour.

Rules: stdout carries only the data the user asked for (a JSON envelope, a
document, `version`); progress, notices, warnings, prompts, summaries and errors go to
stderr. Every line passes through `redact()` on its way out.

On a terminal, stderr may end in a live status block (`status()`: one line for a deploy, one
per running target for a fleet) rewritten in place. Every stderr write goes through one
lock: a line printed while the block is shown erases it, prints, and draws it again below,
so lines and the status never interleave (the watcher draws from its own thread).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence

from pgmilib.errors import PgmiError
from pgmilib.redact import redact

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, TextIO

    from pgmilib.errors import PgDiagnostics


def is_interactive(stdin: TextIO | None = None, stdout: TextIO | None = None) -> bool:
    """Interactive only when not CI, not PGMI_NON_INTERACTIVE=1, and stdin and stdout are TTYs."""
    if os.environ.get("PGMI_NON_INTERACTIVE") == "1" or os.environ.get("CI"):
        return False
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        return stdin.isatty() and stdout.isatty()
    except (AttributeError, ValueError):
        return False


class Output:
    """Decides where and how every message is shown. One instance per command run."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        verbose: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.verbose_mode = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.started = time.monotonic()
        self.no_color = bool(os.environ.get("NO_COLOR"))
        self._stderr_tty = _isatty(self.stderr)
        self._progress_open = False
        #: Whether a live status may be drawn on stderr (a terminal); a caller may turn it off.
        self.live_status = self._stderr_tty
        self.last_notice = ""  # the first line of the last server notice (the watcher shows it)
        self._status_lines: list[str] = []  # the status block to show (empty: none)
        self._status_drawn = 0  # how many lines of it are on the screen now
        # Re-entrant: a signal handler in the main thread may print while that thread is printing.
        self._write_lock = threading.RLock()

    # ---- stdout: requested data only -------------------------------------------------
    def data(self, text: str) -> None:
        """Write requested data to stdout (a document, a listing, a version)."""
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def envelope(self, obj: dict[str, Any]) -> None:
        """Write the --json envelope: sorted keys, 2-space indent, redacted strings."""
        import json

        clean = {k: (redact(v) if isinstance(v, str) else v) for k, v in obj.items() if shown_in_envelope(k, v)}
        self.data(json.dumps(clean, indent=2, sort_keys=True, ensure_ascii=False))

    # ---- stderr: everything else -----------------------------------------------------
    def _err(self, line: str) -> None:
        with self._write_lock:
            self._erase()
            self.stderr.write(redact(line) + "\n")
            self._draw()
            self.stderr.flush()

    def info(self, message: str) -> None:
        """A progress line (`Loaded 12 files`)."""
        self._err(message)

    def warn(self, message: str) -> None:
        self._err(f"WARNING: {message}")

    def verbose(self, message: str) -> None:
        if self.verbose_mode:
            self._err(f"[VERBOSE] {message}")

    def notice(self, diag: PgDiagnostics) -> None:
        """A server NOTICE/INFO/WARNING/DEBUG, shown as it arrives (message, DETAIL, HINT)."""
        prefix = f"[{time.monotonic() - self.started:.2f}s] " if self.verbose_mode else ""
        self.last_notice = diag.message.split("\n", 1)[0]
        self._err(prefix + diag.message)
        if diag.detail:
            self._err(f"{prefix}DETAIL: {diag.detail}")
        if diag.hint:
            self._err(f"{prefix}HINT: {diag.hint}")

    def progress(self, done: int, total: int, label: str) -> None:
        """Progress of long work: rewritten in place on a terminal, plain lines otherwise."""
        text = f"[{done}/{total}] {label}"
        if self._stderr_tty:
            with self._write_lock:
                self._erase()
                self.stderr.write("\r\x1b[K" + redact(text))
                self.stderr.flush()
                self._progress_open = True
        else:
            self._err(text)

    def end_progress(self) -> None:
        with self._write_lock:
            if self._progress_open:
                self.stderr.write("\n")
                self._progress_open = False
                self._draw()
                self.stderr.flush()

    # ---- the live status block (terminals only) -----------------------------------------
    def status(self, lines: str | Sequence[str] | None) -> None:
        """Show `lines` as the live status at the bottom of the terminal, replacing the last one;
        None or no lines removes it. Each line is cut to the terminal's width; control
        characters become spaces. Does nothing unless `live_status` (stderr is a terminal)."""
        if not self.live_status:
            return
        wanted = [] if lines is None else [lines] if isinstance(lines, str) else list(lines)
        with self._write_lock:
            width = _terminal_width(self.stderr)
            self._status_lines = [fit_width(redact(_one_line(line)), width - 1) for line in wanted]
            if self._progress_open:
                return  # drawn again when the progress line ends
            self._erase()
            self._draw()
            self.stderr.flush()

    def _erase(self) -> None:
        """Remove the progress line or the status block from the screen (lock held)."""
        if self._progress_open:
            self.stderr.write("\r\x1b[K")
            self._progress_open = False
        if self._status_drawn:
            self.stderr.write("\r\x1b[K" + "\x1b[1A\x1b[K" * (self._status_drawn - 1))
            self._status_drawn = 0

    def _draw(self) -> None:
        """Put the status block back under the last line (lock held); the cursor stays at its end."""
        if self._status_lines:
            self.stderr.write("\n".join(self._status_lines))
            self._status_drawn = len(self._status_lines)

    # ---- results ---------------------------------------------------------------------
    def icon(self, ok: bool) -> str:
        if self.no_color:
            return "ok" if ok else "FAILED"
        glyph = "✓" if ok else "✗"
        if self._stderr_tty:
            return f"\x1b[32m{glyph}\x1b[0m" if ok else f"\x1b[31m{glyph}\x1b[0m"
        return glyph

    def summary(self, ok: bool, text: str) -> None:
        """The one human summary line (`✓ app: 12 files loaded in 0.31s`); not in --json mode."""
        if not self.json_mode:
            self._err(f"{self.icon(ok)} {text}")

    def error(self, error: BaseException) -> None:
        """The single fatal-error block: `pgmi: error: ...` (never a traceback: those are for bugs)."""
        self.error_text(format_error(error))

    def error_text(self, text: str) -> None:
        """An error block already formatted (and redacted) by its producer, e.g. a DeployResult."""
        self._err("pgmi: error: " + text)


#: Envelope keys whose null is information ("fileLine": null = the file is known, its line is not).
NULLABLE_KEYS = frozenset({"fileLine"})


def shown_in_envelope(key: str, value: Any) -> bool:
    """Empty values are left out of the --json envelope, except the meaningful nulls."""
    return key in NULLABLE_KEYS or value not in ("", None)


def cut_lines(text: str, head: int = 5, tail: int = 3, width: int = 400) -> str:
    """A server CONTEXT can quote a whole EXECUTEd file (hundreds of lines) or a 50 MB statement:
    keep the first `head` and last `tail` lines, say how many were left out, and cut long lines."""
    lines = text.split("\n")
    if len(lines) > head + tail + 1:
        lines = lines[:head] + [f"... ({len(lines) - head - tail} lines left out) ..."] + lines[-tail:]
    return "\n".join(line if len(line) <= width else f"{line[:width]}... ({len(line) - width} more characters)"
                     for line in lines)


_LOCATED = ("FILE: ", "CANDIDATE: ", "LOCATION: ")


def format_error(error: BaseException) -> str:
    """Message, then DETAIL/HINT/WHERE from the server, then location lines."""
    lines = [str(error) or type(error).__name__]
    if isinstance(error, PgmiError):
        if error.pg is not None:
            # With a located line the CONTEXT is background: a shorter cut keeps the block short.
            located = any(line.startswith(_LOCATED) for line in error.trailer)
            where = (cut_lines(error.pg.where, *((2, 1) if located else ())) if error.pg.where else "")
            for label, value in (("DETAIL", error.pg.detail), ("HINT", error.pg.hint), ("WHERE", where)):
                if value:
                    lines.append(f"{label}: {value}")
        lines.extend(error.trailer)
    return redact("\n".join(lines))


def fit_width(text: str, width: int) -> str:
    """`text` cut to `width` terminal columns (wide East Asian characters take two, combining
    marks none), ending in "..." when something was cut."""
    if width <= 0:
        return ""
    if len(text) <= width and text.isascii():
        return text
    columns = [_columns(ch) for ch in text]
    if sum(columns) <= width:
        return text
    room, used, end = max(0, width - 3), 0, 0
    for index, wide in enumerate(columns):
        if used + wide > room:
            break
        used += wide
        end = index + 1
    return text[:end] + "..."[:width]


def _columns(ch: str) -> int:
    import unicodedata  # here, not at the top: an extension module, needed only for non-ASCII text to cut

    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _one_line(text: str) -> str:
    """A status line is one line of printable text: another session's query or a notice may
    hold newlines or terminal escapes."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
