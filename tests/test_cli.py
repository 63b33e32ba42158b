"""The CLI frame: command tree, help, version, usage errors, exit-code table (no database)."""

from __future__ import annotations

import argparse

import pytest

from pgmilib.cli import app as cli
from pgmilib.errors import ConfigError, ExecutionFailed, Exit, Marker, PgmiError, exit_code, go_quote
from pgmilib.redact import redact, register_secret


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version_goes_to_stdout(capsys):
    code, out, err = run(capsys, "version")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("pgmi ") and lines[0].endswith("(compat 1)")
    assert lines[1].startswith("Commit: ") and "Platform: linux/" in lines[1]
    assert "SHA-256: none (not the single-file build; `make build` makes and prints one)" in lines  # test_build: the file's
    assert run(capsys, "--version")[1] == out


@pytest.mark.parametrize("argv", [["bogus"], ["deploy", "--port", "abc", "x"], ["-h"], ["version", "--nope"],
                                  ["completion", "tcsh"], ["deploy", "--timeout"]])
def test_usage_errors_exit_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == Exit.USAGE
    assert out == ""
    assert err.startswith("pgmi: error: usage error: ")
    assert "Traceback" not in err


def test_help_for_every_command(capsys):
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "usage: pgmi " + name in out, name
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for child in nested[0].choices if nested else ():
            code, out, _ = run(capsys, name, child, "--help")
            assert code == 0 and f"usage: pgmi {name} {child}" in out


def test_deploy_has_no_orchestration_flags():
    """Design rule: what runs is decided by deploy.sql, never by skip-/only-/no- flags."""
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = [opt for action in subs.choices["deploy"]._actions for opt in action.option_strings]
    assert "--connection" in flags and "-h" in flags
    for flag in flags:
        assert not flag.startswith(("--skip-", "--only-", "--no-", "--dry-run", "--password"))


def test_no_args_non_interactive_prints_help(capsys, monkeypatch):
    monkeypatch.setenv("PGMI_NON_INTERACTIVE", "1")
    code, out, _ = run(capsys)
    assert code == 0 and "usage: pgmi" in out


def test_classification_order():
    both = ExecutionFailed("x", markers=[Marker.DEADLINE])
    assert exit_code(both) == Exit.TIMEOUT
    conn_and_deadline = PgmiError("x", markers=[Marker.CONNECTION, Marker.DEADLINE])
    assert exit_code(conn_and_deadline) == Exit.CONNECTION
    assert exit_code(ConfigError("x").mark(Marker.INTERRUPTED)) == Exit.INTERRUPTED
    assert exit_code(PgmiError("x", markers=[Marker.UNSUPPORTED_AUTH])) == Exit.CONFIG
    assert exit_code(PgmiError("plain")) == Exit.GENERAL
    assert exit_code(None) == Exit.SUCCESS
    assert exit_code(RuntimeError("bug")) == Exit.GENERAL


def test_go_quote_matches_percent_q():
    assert go_quote("myapp") == '"myapp"'
    assert go_quote('a"b') == '"a\\"b"'


@pytest.mark.parametrize("text,secret", [
    ('parse "postgresql://u:p@ss@db/app": invalid port', "p@ss"),
    ("postgresql://admin:p@ssw0rd@db.example.com:5432/prod: timeout", "p@ssw0rd"),
    ("Password='p ass';Host=h", "p ass"),
    ('Password="x y";Host=h', "x y"),
    ("sslpassword=abc123 sslmode=require", "abc123"),
    ("postgresql://u:pw@h/db?sslpassword=a@b", "a@b"),
    ("postgresql://iam:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln@db/app", "eyJhbGciOiJIUzI1NiJ9"),
    ("postgresql://u:host:5432/?X-Amz-Signature=abcdef0123@db/x", "abcdef0123"),
])
def test_redaction_vectors(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_redaction_keeps_what_helps():
    cleaned = redact("postgresql://admin:p@ssw0rd@db.example.com:5432/prod: connection refused")
    for kept in ("db.example.com:5432/prod", "connection refused", "admin"):
        assert kept in cleaned


def test_registered_secret_is_masked_anywhere():
    register_secret("tok-4242-secret")
    assert "tok-4242-secret" not in redact("the server said tok-4242-secret was bad")
