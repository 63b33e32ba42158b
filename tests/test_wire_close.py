"""Closing a connection leaves no buffered socket file behind for the garbage collector.

pg8000's close() buffers its goodbye and drops its buffered socket file without closing it. When
the peer is gone the goodbye stays unsent in that file; collected later (at interpreter exit, in
whatever order the finalizers run), it was flushed again into a closed socket and printed
"Exception ignored ... Bad file descriptor" on stderr after pgmi's own last line (CPython 3.13,
tests/test_hostile.py's lost connections). LiveConnection.close() closes the file once, itself.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import sys

import pg8000.exceptions
import pytest

from pgmilib.conn.wire import LiveConnection


@pytest.mark.parametrize("peer_gone", [False, True])
def test_close_closes_the_buffered_socket_file(pg, peer_gone):
    raised: list[BaseException] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda info: raised.append(info.exc_value)
    try:
        conn = LiveConnection(**pg.conn_kwargs("postgres"))
        conn.run("SELECT 1")
        buffered = conn._sock
        if peer_gone:
            conn._usock.shutdown(socket.SHUT_RDWR)  # the goodbye cannot be sent
        with contextlib.suppress(pg8000.exceptions.InterfaceError):
            conn.close()
        assert buffered.closed  # nothing left for a finalizer to flush
        del conn, buffered
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert raised == []
