"""Atomic file replacement: the one way pgmi writes a file that someone else may be reading.

A sibling temporary file (unique name, so two pgmi processes never share one), written,
flushed to disk, given its final permission bits, then renamed over the target: readers see
the old file or the new one, never half of one (a CI job picking up a test report, a deploy
reading pgmi.yaml while `pgmi config` rewrites it). The temporary file is removed on failure.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DEFAULT_MODE = 0o644


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int | None = None,
                 keep_mode: bool = False, fsync: bool = True) -> Path:
    """Replace `path` with `data` atomically; returns the path.

    `mode`: the new file's permission bits (0o600 for files holding credentials). Without it,
    `keep_mode=True` keeps an existing file's bits, else DEFAULT_MODE. `str` data is UTF-8.
    """
    target = Path(path)
    if mode is None:
        mode = DEFAULT_MODE
        if keep_mode:
            with contextlib.suppress(FileNotFoundError):
                mode = stat.S_IMODE(os.stat(target).st_mode)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    import tempfile  # here: most runs write nothing

    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".pgmi-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp created it 0600: nobody else can read it meanwhile
            handle.write(payload)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


# ---- files pgmi writes into a directory it was pointed at --------------------------------------
#
# `pgmi ai setup` writes guidance files into a project that anyone may have prepared: a
# CLAUDE.md that is a symbolic link to ~/.bashrc, a .github that links to another repository,
# an AGENTS.md that is a FIFO (reading it would block forever) or a link to /dev/zero (reading
# it would never end). The rule: read and write regular files only, at most READ_LIMIT bytes,
# and with `inside`, only where the path really leads (links followed) stays inside it.

READ_LIMIT = 16 * 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _refuse(verb: str, path: Path, inside: str | os.PathLike[str] | None, why: str) -> Exception:
    from pgmilib.errors import PgmiError, go_quote

    shown = str(path)
    if inside is not None:
        try:
            shown = str(Path(path).relative_to(inside))
        except ValueError:
            pass
    return PgmiError(f"refusing to {verb} {go_quote(shown)}: {why}")


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def confined(path: str | os.PathLike[str], inside: str | os.PathLike[str], verb: str = "write") -> Path:
    """Where `path` really leads (symbolic links followed); PgmiError unless that is inside `inside`."""
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(inside))
    if real != root and root not in real.parents:
        raise _refuse(verb, Path(path), inside, f"it leads outside {root} (to {real})")
    return real


def read_regular(path: str | os.PathLike[str], *, inside: str | os.PathLike[str] | None = None,
                 limit: int = READ_LIMIT) -> bytes | None:
    """The bytes of a regular file, None when nothing is there. PgmiError for a FIFO, device,
    socket or directory, a dangling link, a path leading out of `inside`, more than `limit` bytes.
    Opening never blocks (O_NONBLOCK: a FIFO without a writer) and reading stops at the limit."""
    target = Path(path)
    if inside is not None:
        confined(target, inside, "read")
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        if os.path.islink(target):
            raise _refuse("read", target, inside, "it is a dangling symbolic link") from None
        return None
    except OSError as error:
        raise _refuse("read", target, inside, error.strerror or str(error)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse("read", target, inside, f"it is {_kind(mode)}, not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise _refuse("read", target, inside, f"it is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_regular(path: str | os.PathLike[str], data: bytes | str, *, inside: str | os.PathLike[str] | None = None,
                  mode: int | None = None) -> Path:
    """`atomic_write` for a path in a directory someone else prepared: only over a regular file
    (or nothing), and with `inside`, only where the path really leads inside it. A link inside
    the project (AGENTS.md -> CLAUDE.md) is followed, so the file it names is updated and the
    link stays. Missing parent directories are made (0755). Without `mode`, an existing file
    keeps its permission bits."""
    target = Path(path)
    real = confined(target, inside) if inside is not None else Path(os.path.realpath(target))
    try:
        existing = os.stat(real).st_mode
        if not stat.S_ISREG(existing):
            raise _refuse("write", target, inside, f"it is {_kind(existing)}, not a regular file")
    except FileNotFoundError:
        pass
    except OSError as error:
        raise _refuse("write", target, inside, error.strerror or str(error)) from None
    try:
        real.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        return atomic_write(real, data, mode=mode, keep_mode=mode is None)
    except OSError as error:
        raise _refuse("write", target, inside, error.strerror or str(error)) from None
