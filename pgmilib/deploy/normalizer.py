"""Normalized checksums computed by a forked helper process, on another core.

The normalized checksum (project/checksums.py) is the one CPU-heavy step per file, and it is
pure Python, so a thread cannot run it beside the loader (the GIL). A process can. It reads
the files (the page cache has them) from the last to the first and sends back 64 bytes per
file: the SHA-256 of the bytes it read, then their normalized digest. The loader goes from the
first file on, computing the values the helper has not sent yet; where the two meet, every
later value is already there, the helper is stopped, and neither waited for the other.

It starts as early as it can. A deploy starts it once the scan has listed the project's files
(`for_walk`), so it works through the scan too, while the core it runs on has little else to
do: the scan reads and validates in one thread, and the server is idle but for the session
API. Callers holding an already scanned project (a fleet) start it just before the COPY, for
the files the checksum cache lacks (`for_load`).

The loader uses a value only when the helper's raw digest equals the scan's checksum of the
file, the same test the loader's own re-read passes; so each value belongs to exactly the bytes
that were validated and loaded. Anything else (a file changed or replaced, a helper that died or
could not be started) means the loader computes the value itself, as it always could: the
helper only ever saves time.

Only on Linux with two or more usable CPUs (fork without exec is what makes it cheap; macOS
discourages it and Windows has none; on one CPU it would take time from the scan and the
loader), and only for projects big enough to repay the fork (MIN_FILES, MIN_BYTES).
"""

from __future__ import annotations

import gc
import os
import signal
import stat
import sys
import warnings

from pgmilib.project.checksums import BOM, normalized_digest, sha256
from pgmilib.project.paths import is_test_path
from pgmilib.project.root import DEFAULT_MAX_FILE_SIZE
from pgmilib.project.scan import read_path

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Self

    from pgmilib.project.scan import ProjectFile

#: Below this many bytes to normalize, a fork (~1-3 ms) and a second reading cost more than
#: the overlap saves (a start before the COPY, when the files' sizes are known).
MIN_BYTES = 4 << 20
#: The same judgement from the number of files, for a start during the scan (sizes not read
#: yet): 500 files of migrations are ~2 MB, and ~15 ms of scan to work through.
MIN_FILES = 500
RECORD = 64


def available() -> bool:
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        return False
    try:
        return len(os.sched_getaffinity(0)) > 1
    except OSError:  # pragma: no cover
        return (os.cpu_count() or 1) > 1


class Normalizer:
    """The helper for `jobs`: (where the file is read, the bytes already read or None), in the
    order the loader takes them; the helper works from the last.

    `take(item)`, called for the files in load order, gives the helper's value for `item` when
    it has one for the same bytes as the scan's; None: the caller computes it. Use as a context
    manager (entering one that was entered before is fine): leaving it stops the helper and
    reaps it, however the load ended. A Normalizer with no jobs never forks and gives nothing.
    """

    def __init__(self, jobs: list[tuple[str | Path, bytes | None]] | None = None, *,
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE, known: Mapping[bytes, bytes] | None = None) -> None:
        jobs = jobs or []
        self._position = {str(path): i for i, (path, _) in enumerate(jobs)}
        self._count = len(jobs)
        self._pid = 0
        self._fd = -1
        self._pending = b""
        self._done: list[bytes] = []  # records of the jobs from the last one backwards
        if not jobs or not available():
            return
        # OpenSSL's SHA-256 for a project this big, on both sides (checksums.sha256 uses it once it
        # is loaded); imported before the fork, so no thread of ours can hold its import lock there.
        import hashlib  # noqa: F401

        read_fd, write_fd = os.pipe()
        try:
            with warnings.catch_warnings():
                # 3.12+ warns of any fork in a process with threads. Here the others are the
                # watchdog's timer and, at most, the live status's thread, waiting on their own
                # locks; the helper takes none of them: it reads files, hashes, writes a pipe.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # no process to spare: the loader computes every value itself
            os.close(read_fd)
            os.close(write_fd)
            return
        if pid == 0:  # the helper: never returns, whatever happens
            try:
                os.close(read_fd)
                _serve(jobs[::-1], max_file_size, known or {}, write_fd)
            finally:
                os._exit(1)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._pid, self._fd = pid, read_fd

    @classmethod
    def for_walk(cls, entries: list[tuple[str, str]], *, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                 known: Mapping[bytes, bytes] | None = None) -> Normalizer:
        """Started by a deploy's scan once it has listed the project: (relative path, full path)
        of every file, in path order (the load's). `known`: the checksum cache's values, which
        the helper sends for those bytes instead of computing them."""
        jobs = [(full, None) for rel, full in entries if not is_test_path("./" + rel)]
        return cls(jobs if len(jobs) >= MIN_FILES else [], max_file_size=max_file_size, known=known)

    @classmethod
    def for_load(cls, files: list[ProjectFile], *, min_bytes: int | None = None) -> Normalizer:
        """Started just before the COPY, for `files` (scanned, in load order, values unknown)."""
        limit = MIN_BYTES if min_bytes is None else min_bytes
        jobs = [(f.source, f.held) for f in files if f.source is not None]
        return cls(jobs if jobs and sum(f.size for f in files) >= limit else [])

    @property
    def running(self) -> bool:
        return self._fd >= 0

    def take(self, item: ProjectFile) -> str | None:
        position = self._position.get(str(item.source)) if item.source is not None else None
        if position is None:
            return None
        from_end = self._count - 1 - position
        if from_end >= len(self._done) and self._fd >= 0:
            self._drain()
        if from_end >= len(self._done):  # not there yet (or never will be): the caller computes it
            return None
        if self._fd >= 0:  # the two met: every later file has its value, the helper can stop
            self.close()
        record = self._done[from_end]
        if record[:32].hex() != item.checksum:  # it read other bytes than the scan validated
            return None
        return record[32:].hex()

    def _drain(self) -> None:
        """Take every complete record the helper has sent so far, without waiting."""
        chunks = [self._pending]
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:  # the helper finished or died: what it sent is all there is
                self.close()
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        whole = len(data) - len(data) % RECORD
        self._done.extend(data[i:i + RECORD] for i in range(0, whole, RECORD))
        self._pending = data[whole:]

    def close(self) -> None:
        """Stop the helper (if it still runs) and reap it; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._pid:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except OSError:  # pragma: no cover (already gone)
                pass
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:  # pragma: no cover
                pass
            self._pid = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(jobs: list[tuple[str | Path, bytes | None]], max_file_size: int, known: Mapping[bytes, bytes],
           fd: int) -> None:
    """The helper's whole life: one record per job, in order, then exit without clean-up.

    `os._exit` skips atexit hooks, buffered output and the parent's objects (its connection,
    its threads' state), which belong to the parent alone. A file it cannot read, or one over
    the size limit (the scan refuses it), gets a record that matches no file. Any other
    failure just ends the stream.
    """
    code = 0
    try:
        gc.disable()  # touching every object would copy the parent's memory pages for nothing
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C ends the helper at once;
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent falls back or is stopping
        _widen(fd, len(jobs) * RECORD)
        for source, data in jobs:
            if data is None:
                try:
                    info = os.lstat(source)  # what the scan reads: never a link's target, a FIFO's writer
                    usable = stat.S_ISREG(info.st_mode) and info.st_size <= max_file_size
                    data = read_path(source, info.st_size) if usable else None
                except OSError:
                    data = None
                if data is not None and data.startswith(BOM):
                    data = data[3:]
            if data is None:
                record = memoryview(bytes(RECORD))
            else:
                raw = sha256(data).digest()
                record = memoryview(raw + (known.get(raw) or normalized_digest(data)))
            while record:
                record = record[os.write(fd, record):]
    except BaseException:  # noqa: BLE001 - the parent sees the end of the stream and computes the rest
        code = 1
    finally:
        os._exit(code)


def _widen(fd: int, size: int) -> None:
    """Let the pipe hold `size` bytes (up to the system's limit, 1 MB by default: 16,384
    records). Started during the scan, the helper writes ahead of a reader that will not read
    until the load: with the default 64 KB it would wait after 1,024 files."""
    import fcntl

    limit = 1 << 20
    try:
        with open("/proc/sys/fs/pipe-max-size", "rb") as f:
            limit = int(f.read())
    except (OSError, ValueError):
        pass
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), min(size, limit))
    except OSError:  # a smaller pipe only means the helper waits for the loader sooner
        pass
