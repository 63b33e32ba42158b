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


def _swallowing_deploy(tmp_path, monkeypatch, interrupt: bool):
    """A deploy whose connection step meets a library that caught the signal's Interrupted in a
    broad `except Exception` and failed another way (importlib.metadata's scan answers "package
    not found" then: a ModuleNotFoundError for a driver that is installed)."""
    import io
    from importlib.metadata import PackageNotFoundError

    from pgmilib.deploy import pipeline
    from pgmilib.deploy.request import DeployRequest
    from pgmilib.deploy.watchdog import Cancellation
    from pgmilib.output import Output

    cancel = Cancellation()

    def open_early(self):
        if interrupt:
            cancel.cancel()  # what the signal handler does before it raises Interrupted
        raise PackageNotFoundError("scramp")

    monkeypatch.setattr(pipeline._Run, "open_early", open_early)
    project = write_project(tmp_path / "p", {}, deploy_sql="SELECT 1;\n")
    request = DeployRequest(project_path=project, environ={"PGHOST": str(tmp_path), "PGDATABASE": "d"})
    err = io.StringIO()
    return pipeline.deploy(request, Output(stdout=io.StringIO(), stderr=err, verbose=True), cancel=cancel), err


def test_an_interrupt_a_library_turned_into_another_error_is_still_an_interrupt(tmp_path, monkeypatch):
    result, err = _swallowing_deploy(tmp_path, monkeypatch, interrupt=True)
    assert result.exit_code == Exit.INTERRUPTED
    assert "after the interrupt: PackageNotFoundError" in err.getvalue()


def test_the_same_error_without_an_interrupt_is_not_hidden(tmp_path, monkeypatch):
    from importlib.metadata import PackageNotFoundError

    with pytest.raises(PackageNotFoundError):
        _swallowing_deploy(tmp_path, monkeypatch, interrupt=False)
