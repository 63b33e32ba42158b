"""Normalized checksums computed by a forked helper process, on another core, during the load.

The normalized checksum (project/checksums.py) is the one CPU-heavy step per file, and it is
pure Python, so a thread cannot run it beside the loader (the GIL). A process can: forked just
before the COPY, it reads the files the scan listed (the page cache has them) from the last to
the first, and sends back 64 bytes per file: the SHA-256 of the bytes it read, then their
normalized digest. The loader goes from the first file on, computing the values the helper has
not sent yet; where the two meet, every later value is already there, the helper is stopped,
and neither waited for the other.

The loader uses a value only when the helper's raw digest equals the scan's checksum of the
file, the same test the loader's own re-read passes; so each value belongs to exactly the bytes
that were validated and loaded. Anything else (a changed file, a helper that died or could not
be started) means the loader computes the value itself, as it always could: the helper only
ever saves time.

Only on Linux (fork without exec is what makes it cheap; macOS discourages it and Windows has
none), and only for projects with enough bytes to normalize (MIN_BYTES) to repay the fork.
"""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import sys

from pgmilib.project.checksums import BOM, normalized_digest
from pgmilib.project.scan import read_path

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # pragma: no cover
    from typing import Self

    from pgmilib.project.scan import ProjectFile

#: Below this many bytes to normalize, a fork (~1-3 ms) and a second reading cost more than
#: the overlap saves.
MIN_BYTES = 4 << 20
RECORD = 64


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class Normalizer:
    """The helper for `files` (those whose normalized checksum is still unknown, in load order).

    `take(item)`, called for the files in order, gives the helper's value for `item` when it
    has one for the same bytes as the scan's; None: the caller computes it. Use as a context
    manager: leaving it stops the helper and reaps it, however the load ended.
    """

    def __init__(self, files: list[ProjectFile], *, min_bytes: int | None = None) -> None:
        self._files = files
        self._next = 0
        self._pid = 0
        self._fd = -1
        self._pending = b""
        self._done: list[bytes] = []  # records of files[-1], files[-2], ... in that order
        limit = MIN_BYTES if min_bytes is None else min_bytes
        if not files or not available() or sum(f.size for f in files) < limit:
            return
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: the loader computes every value itself
            os.close(read_fd)
            os.close(write_fd)
            return
        if pid == 0:  # the helper: never returns
            os.close(read_fd)
            _serve(files[::-1], write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._pid, self._fd = pid, read_fd

    def take(self, item: ProjectFile) -> str | None:
        if self._next >= len(self._files) or self._files[self._next] is not item:
            return None
        from_end = len(self._files) - 1 - self._next
        self._next += 1
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


def _serve(files: list[ProjectFile], fd: int) -> None:
    """The helper's whole life: one record per file of `files`, in order, then exit without clean-up.

    `os._exit` skips atexit hooks, buffered output and the parent's objects (its connection,
    its threads' state), which belong to the parent alone. Any failure just ends the stream.
    """
    code = 0
    try:
        gc.disable()  # touching every object would copy the parent's memory pages for nothing
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C ends the helper at once;
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent falls back or is stopping
        for item in files:
            data = item.held
            if data is None:
                assert item.source is not None
                data = read_path(item.source, item.size + 3)
                if data.startswith(BOM):
                    data = data[3:]
            record = memoryview(hashlib.sha256(data).digest() + normalized_digest(data))
            while record:
                record = record[os.write(fd, record):]
    except BaseException:  # noqa: BLE001 - the parent sees the end of the stream and computes the rest
        code = 1
    finally:
        os._exit(code)
