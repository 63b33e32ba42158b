"""The run's deadline bounds a PostgreSQL connection's start-up as a whole, not read by read.

A server that answers one byte at a time keeps every single read short, so socket timeouts
alone never fire; a cancel (Ctrl-C) must end the start-up at once. Real sockets on 127.0.0.1.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest

from pgmilib.conn.connect import open_connection
from pgmilib.conn.deadline import Deadline
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConnectionFailed, Exit, Interrupted, exit_code
from tests.hostile_http import HostileEndpoint

AUTH_OK = b"R" + struct.pack("!ii", 8, 0)


def _notice(i: int) -> bytes:
    fields = b"SNOTICE\x00C00000\x00M" + f"still starting {i}".encode() + b"\x00\x00"
    return b"N" + struct.pack("!i", len(fields) + 4) + fields


def _drip_server(ex) -> None:
    """Accept the start-up packet, then drip AuthenticationOk and notices, never ReadyForQuery."""
    ex.sock.settimeout(10)
    ex.sock.recv(65536)
    stream = AUTH_OK + b"".join(_notice(i) for i in range(1000))
    for i in range(len(stream)):
        if ex.stop.wait(0.02):
            return
        ex.send(stream[i:i + 1])


@pytest.fixture
def drip_pg():
    server = HostileEndpoint(_drip_server)
    yield server
    server.close()


def _params(port: int) -> ConnParams:
    return ConnParams(host="127.0.0.1", port=port, user="u", database="d", sslmode="disable", password="pw")


def test_a_dripping_server_start_up_ends_at_the_deadline(drip_pg):
    with pytest.raises(ConnectionFailed) as info:
        open_connection(_params(drip_pg.port), deadline=Deadline(1.0))
    assert exit_code(info.value) == Exit.TIMEOUT, str(info.value)
    assert str(info.value).startswith("deadline exceeded while connecting (after 1 attempt(s)): last error: "
                                      "connection timed out to 127.0.0.1:")
    assert drip_pg.exchanges[0].sent > 0  # bytes kept arriving: no single read ever timed out


def test_a_cancel_ends_the_start_up_at_once(drip_pg):
    deadline = Deadline(None)

    def cancel_soon() -> None:
        for _ in range(500):
            if drip_pg.exchanges and drip_pg.exchanges[0].sent:
                break
            time.sleep(0.01)
        deadline.cancel()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    try:
        with pytest.raises(Interrupted):
            open_connection(_params(drip_pg.port), deadline=deadline)
    finally:
        canceller.join()
    assert len(drip_pg.exchanges) == 1  # not retried
