"""Reading the small configuration files (pgmi.yaml, .env, --params-file) safely.

One rule for all three: only a regular file is read. A FIFO, a socket or a device named
`.env` would otherwise block the deploy forever (or stream without end), and a directory
gives a confusing errno. The size is capped for the same reason.
"""

from __future__ import annotations

import os
import stat

MAX_CONFIG_BYTES = 64 * 1024 * 1024  # far above any real config file, far below memory trouble


class NotRegular(OSError):
    """The path exists but is not a regular file (FIFO, device, directory...)."""


def read_config_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; FileNotFoundError if absent, NotRegular / OSError otherwise.

    Opened with O_NONBLOCK so that a FIFO is detected by fstat instead of blocking in open().
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > MAX_CONFIG_BYTES:
            raise OSError(f"file too large ({info.st_size} bytes; the limit is {MAX_CONFIG_BYTES})")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


def describe(error: OSError) -> str:
    """A short reason for a read failure, without Python's `[Errno n]` noise."""
    if isinstance(error, NotRegular):
        return str(error)
    return error.strerror or str(error)
