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
import tempfile
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
