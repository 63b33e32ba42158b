"""Ctrl-C while a server keeps the connection's start-up waiting ends the run at once.

The driver keeps the socket it opens to itself until the start-up is over, so pgmi opens
it (conn/wire.py `_dial`) and can shut it when the run is cancelled: before, a server that
accepted the connection and never answered the SSLRequest or the start-up message held
Ctrl-C off until the connection's time limit (--timeout, 3 minutes by default).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pgmilib.errors import Exit
from tests.projects import write_project

REPO = Path(__file__).resolve().parent.parent


class SilentServer:
    """Accepts connections, reads what the client sends, never answers (TCP or a unix socket)."""

    def __init__(self, unix_dir: Path | None = None) -> None:
        if unix_dir is None:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        else:
            self.port = 5439
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(unix_dir / f".s.PGSQL.{self.port}"))
            self.listener.listen()
            self.host = str(unix_dir)
        self.listener.settimeout(0.1)
        self.received = threading.Event()  # the client's first message arrived
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(conn)
            conn.settimeout(0.1)
            while not self.stop.is_set():
                try:
                    if conn.recv(1024):
                        self.received.set()
                    else:
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.listener.close()


@pytest.mark.parametrize("transport,sslmode", [("tcp", "prefer"), ("tcp", "disable"), ("unix", "disable")])
def test_ctrl_c_during_a_stalled_start_up_is_interrupted(tmp_path, transport, sslmode):
    server = SilentServer(tmp_path if transport == "unix" else None)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGMI_NON_INTERACTIVE="1", PGPASSWORD="never-sent-anyway")
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(project), "-d", "app",
                             "--host", server.host, "--port", str(server.port), "-U", "u", "--sslmode", sslmode,
                             "--timeout", "10m"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.received.wait(60), "pgmi never reached the server"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)  # a hang is the failure; --timeout is ten minutes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.close()
    assert proc.returncode == Exit.INTERRUPTED, err
    assert err.splitlines()[-1] == "pgmi: error: interrupted" and "Traceback" not in err


def _deploy_meeting_a_broad_except(tmp_path, monkeypatch, signal_arrives: bool):
    """A deploy whose connection step runs library code with a broad `except Exception` (as
    importlib.metadata's directory scan has, under the driver's import), in which the Ctrl-C
    handler runs; the library then fails its own way ("package not found" for a driver that is
    installed). Returns the result and stderr."""
    import contextlib
    import io
    from importlib.metadata import PackageNotFoundError

    from pgmilib.cli.signals import CancelOnSignal
    from pgmilib.deploy import pipeline
    from pgmilib.deploy.request import DeployRequest
    from pgmilib.deploy.watchdog import Cancellation
    from pgmilib.output import Output

    cancel = Cancellation()
    err = io.StringIO()
    out = Output(stdout=io.StringIO(), stderr=err)
    handler = CancelOnSignal(cancel, out, "pgmi: interrupted, cancelling deployment...")

    def open_early(self):
        with contextlib.suppress(Exception):  # the library's own
            if signal_arrives:
                handler._handle(signal.SIGINT, None)  # as the signal would, between two bytecodes
        raise PackageNotFoundError("scramp")

    monkeypatch.setattr(pipeline._Run, "open_early", open_early)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    request = DeployRequest(project_path=project, environ={"PGHOST": str(tmp_path), "PGDATABASE": "d"})
    return pipeline.deploy(request, out, cancel=cancel), err.getvalue()


def test_a_ctrl_c_inside_a_broad_except_still_interrupts_the_deploy(tmp_path, monkeypatch):
    result, err = _deploy_meeting_a_broad_except(tmp_path, monkeypatch, signal_arrives=True)
    assert result.exit_code == Exit.INTERRUPTED
    assert "cancelling deployment" in err


def test_the_same_library_failure_without_a_ctrl_c_is_not_hidden(tmp_path, monkeypatch):
    from importlib.metadata import PackageNotFoundError

    with pytest.raises(PackageNotFoundError):
        _deploy_meeting_a_broad_except(tmp_path, monkeypatch, signal_arrives=False)
