"""`--retry-lock-timeout N`: the atomic head is run again after 55P03/40P01, against real lock contention."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pg8000.exceptions
import pg8000.native
import pytest
from projects import write_project

from pgmilib.deploy.retry import MAX_DELAY, HeadRetry, backoff
from pgmilib.output import Output

REPO = Path(__file__).resolve().parent.parent
HEAD = "SET lock_timeout = '200ms';\nBEGIN;\nALTER TABLE contended ADD COLUMN added int;\nCOMMIT;\n"


@pytest.fixture
def contended(pg, fresh_db):
    """(database, blocker): a table and a session holding a lock on it until blocker.release()."""
    setup = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    setup.run("CREATE TABLE contended(id int)")
    setup.close()

    class Blocker:
        def __init__(self) -> None:
            self.conn = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
            self.conn.run("BEGIN")
            self.conn.run("SELECT * FROM contended")  # ACCESS SHARE: an ALTER TABLE must wait
            self._lock = threading.Lock()
            self.open = True

        def release(self) -> None:
            with self._lock:
                if self.open:
                    self.conn.run("COMMIT")
                    self.conn.close()
                    self.open = False

    blocker = Blocker()
    yield fresh_db, blocker
    blocker.release()


def _columns(pg, db: str) -> list[str]:
    c = pg8000.native.Connection(**pg.conn_kwargs(db))
    try:
        return [r[0] for r in c.run("SELECT attname FROM pg_attribute WHERE attrelid = 'contended'::regclass "
                                    "AND attnum > 0 ORDER BY attnum")]
    finally:
        c.close()


def test_without_the_flag_a_lock_timeout_fails_at_once(tmp_path, pg, contended, run_pgmi):
    db, _ = contended
    proj = write_project(tmp_path / "p", {}, HEAD)
    r = run_pgmi("deploy", str(proj), "-d", db)
    assert r.returncode == 13, r.stderr
    assert "55P03" in r.stderr and "retry" not in r.stderr
    assert _columns(pg, db) == ["id"]


def test_head_is_retried_until_the_blocking_session_lets_go(tmp_path, pg, contended):
    """The blocker lets go only once the deploy has reported its first retry (no timing guesses)."""
    db, blocker = contended
    proj = write_project(tmp_path / "p", {}, HEAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(pg.env(), PGMI_NON_INTERACTIVE="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), "deploy", str(proj), "-d", db,
                             "--retry-lock-timeout", "6", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if "retry 1 of 6" in line:
                blocker.release()
                break
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = "".join(seen) + rest
    assert proc.returncode == 0, stderr
    assert "retry 1 of 6" in stderr and "SQLSTATE 55P03" in stderr  # each retry is printed
    envelope = json.loads(stdout)
    assert envelope["lockRetries"] >= 1 and envelope["status"] == "success"
    assert _columns(pg, db) == ["id", "added"]


def test_retries_run_out(tmp_path, pg, contended, run_pgmi):
    db, _ = contended
    proj = write_project(tmp_path / "p", {}, HEAD)
    r = run_pgmi("deploy", str(proj), "-d", db, "--retry-lock-timeout", "2")
    assert r.returncode == 13, r.stderr
    assert "retry 1 of 2" in r.stderr and "retry 2 of 2" in r.stderr and "retry 3" not in r.stderr
    assert "lock timeout" in r.stderr or "55P03" in r.stderr
    assert _columns(pg, db) == ["id"]


def test_a_tail_unit_is_never_retried(tmp_path, pg, contended, run_pgmi):
    db, _ = contended
    script = ("BEGIN;\nCREATE TABLE head_done(id int);\nCOMMIT;\nSET lock_timeout = '200ms';\n"
              "ALTER TABLE contended ADD COLUMN added int;\n")
    proj = write_project(tmp_path / "p", {}, script)
    r = run_pgmi("deploy", str(proj), "-d", db, "--retry-lock-timeout", "3")
    assert r.returncode == 13, r.stderr
    assert "retry" not in r.stderr  # earlier units committed: running again is not safe
    assert _columns(pg, db) == ["id"]


def test_negative_retry_count_is_a_usage_error(tmp_path, fresh_db, run_pgmi):
    proj = write_project(tmp_path / "p", {}, "SELECT 1;\n")
    r = run_pgmi("deploy", str(proj), "-d", fresh_db, "--retry-lock-timeout", "-1")
    assert r.returncode == 2 and "--retry-lock-timeout" in r.stderr


# ---- the retry policy (pure) ------------------------------------------------------------------


def test_backoff_grows_is_capped_and_jittered():
    assert backoff(1, lambda: 0.5) == pytest.approx(0.5)
    assert backoff(2, lambda: 0.5) == pytest.approx(1.0)
    assert backoff(3, lambda: 0.0) == pytest.approx(1.0)  # -50 %
    assert backoff(3, lambda: 1.0) == pytest.approx(3.0)  # +50 %
    assert backoff(20, lambda: 0.5) == pytest.approx(MAX_DELAY)


class _Session:
    """A stand-in for the session connection: fails the head with `codes`, then succeeds."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = list(codes)
        self.sent: list[str] = []
        self.transaction_status = "I"

    def run(self, sql: str):
        self.sent.append(sql)
        if sql == "ROLLBACK":
            self.transaction_status = "I"
            return []
        if self.codes and sql == "HEAD":
            code = self.codes.pop(0)
            self.transaction_status = "E"  # a head with its own BEGIN is left in a failed transaction
            raise pg8000.exceptions.DatabaseError({"S": "ERROR", "C": code, "M": "deadlock detected"})
        return []


def test_deadlock_is_retried_after_ending_the_failed_transaction(monkeypatch):
    monkeypatch.setattr("pgmilib.deploy.retry.backoff", lambda attempt: 0.0)
    session = _Session(["40P01"])
    counted: list[int] = []
    stderr = io.StringIO()
    runner = HeadRetry(session, 3, Output(stderr=stderr), lambda: None, on_retry=counted.append)
    runner.run("HEAD")
    runner.run("TAIL")
    assert session.sent == ["HEAD", "ROLLBACK", "HEAD", "TAIL"]
    assert counted == [1] and "retry 1 of 3" in stderr.getvalue()


def test_other_errors_and_later_units_are_not_retried(monkeypatch):
    monkeypatch.setattr("pgmilib.deploy.retry.backoff", lambda attempt: 0.0)
    runner = HeadRetry(_Session(["42P01"]), 3, Output(stderr=io.StringIO()), lambda: None)
    with pytest.raises(pg8000.exceptions.DatabaseError):
        runner.run("HEAD")
    session = _Session([])
    runner = HeadRetry(session, 3, Output(stderr=io.StringIO()), lambda: None)
    runner.run("FIRST")
    session.codes = ["55P03"]
    with pytest.raises(pg8000.exceptions.DatabaseError):
        runner.run("HEAD")  # not the first unit any more


def test_a_hang_up_after_presenting_a_client_certificate_is_not_retried():
    """TLS 1.3: a refused client certificate can arrive as a reset on the first read, not as the alert."""
    import errno

    from pgmilib.conn.connect import _client_certificate_refused
    from pgmilib.conn.params import ConnParams

    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    with_cert = ConnParams(host="127.0.0.1", sslmode="require", sslcert="/c.crt", sslkey="/c.key")
    assert _client_certificate_refused(reset, with_cert) is True
    assert _client_certificate_refused(refused, with_cert) is False  # the server is not up yet: retried
    assert _client_certificate_refused(reset, ConnParams(host="127.0.0.1", sslmode="require")) is False
    import ssl

    alert = ssl.SSLError(1, "tlsv1 alert unknown ca")
    alert.__context__ = reset  # the alert itself arrived: reported as the TLS failure it is
    assert _client_certificate_refused(alert, with_cert) is False


def test_a_fatal_between_units_is_a_lost_connection_with_the_servers_reason():
    """pg_terminate_backend while pgmi runs its own statements (session set-up, SET between units)."""
    import pytest

    from pgmilib.deploy.pipeline import _connection_guard
    from pgmilib.errors import ConnectionFailed, Exit, exit_code

    fatal = {"S": "FATAL", "C": "57P01", "M": "terminating connection due to administrator command"}
    with pytest.raises(ConnectionFailed) as info, _connection_guard():
        raise pg8000.exceptions.DatabaseError(fatal)
    assert exit_code(info.value) == Exit.CONNECTION
    assert str(info.value).endswith("connection to the server lost: FATAL: terminating connection due to "
                                    "administrator command (SQLSTATE 57P01)")
    plain = pg8000.exceptions.DatabaseError({"S": "ERROR", "C": "42601", "M": "syntax error"})
    with pytest.raises(pg8000.exceptions.DatabaseError), _connection_guard():  # not the guard's to classify
        raise plain
