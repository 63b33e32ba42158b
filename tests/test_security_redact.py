"""Redaction rules, each pinned by a test that fails when the rule is broken (docs/RELIABILITY.md, mutation)."""

from __future__ import annotations

import threading

import pytest

from pgmilib.config.params import is_secret_name, register_secret_params
from pgmilib.redact import REDACTED, known_secrets, redact, register_secret, secret_scope
from tests.projects import run_cli, write_project

# ---- the keyword pass ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("password = hunter22 host=db", "password=[redacted] host=db"),
    ("password=hunter22&user=x", "password=[redacted]&user=x"),
    ("PASSWORD =\t'a b c';", "password=[redacted];"),
    ('Password= "x y z" rest', "password=[redacted] rest"),
    ("sslpassword = KeyPass99 sslmode=require", "sslpassword=[redacted] sslmode=require"),
    ("SSLPassword='k e y'", "sslpassword=[redacted]"),
    ("password=", "password=[redacted]"),
])
def test_keyword_pass(text, expected):
    assert redact(text) == expected


def test_keyword_pass_leaves_other_words_alone():
    text = "user=alice host=db.example.com port=5432 dbname=app sslmode=verify-full"
    assert redact(text) == text
    assert redact("") == ""


# ---- the URI pass -------------------------------------------------------------------------------


def test_at_sign_inside_a_uri_password_keeps_no_part_of_it():
    out = redact("could not connect to postgresql://admin:p@ssw0rd@db:5432/app?sslmode=require now")
    assert out == f"could not connect to postgresql://admin:{REDACTED}@db:5432/app?sslmode=require now"
    for part in ("p@ss", "ssw0rd", ":p@", "0rd@"):
        assert part not in out


def test_uri_user_without_password_and_uris_without_userinfo_stay():
    for text in ("postgresql://admin@db/app", "https://example.com/a@b", "see http://x.example/ and a@b",
                 "postgresql://db:5432/app"):
        assert redact(text) == text


def test_uri_password_in_every_token_and_scheme():
    text = "a=postgres://u:one@h/d b=mysql+x://v:two@h c=(postgresql://w:three@h/d)"
    out = redact(text)
    assert "one" not in out and "two" not in out and "three" not in out
    assert out.count(REDACTED) == 3
    assert "postgres://u:" in out and "mysql+x://v:" in out and "(postgresql://w:" in out


def test_a_scheme_must_start_at_a_word_boundary():
    # "xpostgresql" is no scheme start inside a word; the whole scheme is still found (never half of it)
    assert redact("go://u:pw1@h") == f"go://u:{REDACTED}@h"
    assert redact("A1+b.c-d://u:pw2@h") == f"A1+b.c-d://u:{REDACTED}@h"


# ---- registered secrets -------------------------------------------------------------------------


def test_overlapping_secrets_mask_the_longer_one_whole():
    register_secret("hunter2")
    register_secret("hunter2-long-token")
    out = redact("token hunter2-long-token and hunter2.")
    assert out == f"token {REDACTED} and {REDACTED}."
    assert "-long-token" not in out


def test_a_secret_inside_a_longer_one_that_sorts_before_it():
    # "abc-xyz-9876" < "xyz-9876" alphabetically: only ordering by length masks the longer one whole
    register_secret("xyz-9876")
    register_secret("abc-xyz-9876")
    assert redact("k=abc-xyz-9876 j=xyz-9876") == f"k={REDACTED} j={REDACTED}"


def test_minimum_secret_length_boundary():
    register_secret("ab")
    register_secret("xyz")
    register_secret("")
    register_secret(None)
    assert "ab" not in known_secrets() and "" not in known_secrets()
    assert "xyz" in known_secrets()
    assert redact("ab xyz") == f"ab {REDACTED}"


def test_secret_registered_outside_a_run_is_masked_inside_one():
    register_secret("Outside-Secret-1")
    with secret_scope() as run:
        register_secret("Inside-Secret-2")
        assert run == {"Inside-Secret-2"}
        assert known_secrets() >= {"Outside-Secret-1", "Inside-Secret-2"}
        assert redact("Outside-Secret-1 Inside-Secret-2") == f"{REDACTED} {REDACTED}"
    # the run's secret belongs to the run; the process-wide one stays
    assert "Inside-Secret-2" not in known_secrets()
    assert redact("Outside-Secret-1 Inside-Secret-2") == f"{REDACTED} Inside-Secret-2"


def test_two_runs_do_not_share_secrets():
    seen: dict[str, frozenset[str]] = {}
    barrier = threading.Barrier(2)

    def run(name: str) -> None:
        with secret_scope():
            register_secret(f"secret-of-{name}")
            barrier.wait()
            seen[name] = known_secrets()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "secret-of-b" not in seen["a"] and "secret-of-a" in seen["a"]
    assert "secret-of-a" not in seen["b"] and "secret-of-b" in seen["b"]


# ---- secret-looking parameter names -------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "password", "db_password", "passwd", "PASSWD", "passphrase", "key_passphrase", "pwd", "admin_pwd",
    "secret", "client_secret", "token", "api_token", "apikey", "api_key", "API_KEY", "private_key",
    "privatekey", "credential", "credentials",
])
def test_every_alternative_of_the_secret_name_pattern(name):
    assert is_secret_name(name)
    value = f"value-of-{name}"
    register_secret_params({name: value, "plain": "visible-value"})
    assert redact(f"x {value} y visible-value") == f"x {REDACTED} y visible-value"


@pytest.mark.parametrize("name", ["pass", "user", "host", "api", "key", "private", "passes", "owner", "apikez"])
def test_ordinary_names_are_not_secrets(name):
    assert not is_secret_name(name)
    register_secret_params({name: f"value-of-{name}"})
    assert redact(f"value-of-{name}") == f"value-of-{name}"


# ---- end to end ---------------------------------------------------------------------------------


def test_pgpassword_only_password_echoed_by_a_server_error_is_redacted(run_pgmi, fresh_db, tmp_path):
    secret = "PgPass-Only-7731"
    # The server quotes the password back (here because the SQL spells it; a real server does so in
    # e.g. a failing dblink or an ALTER ROLE error): known only from $PGPASSWORD, it is still masked.
    project = write_project(tmp_path / "p", {}, deploy_sql=(
        f"DO $$ BEGIN RAISE EXCEPTION 'login with %', '{secret}'; END $$;\n"))
    result = run_pgmi("deploy", str(project), "-d", fresh_db, env={"PGPASSWORD": secret})
    assert result.returncode == 13, result.stderr
    assert "login with" in result.stderr and REDACTED in result.stderr
    assert secret not in result.stdout + result.stderr


def test_a_crash_outside_deploy_carrying_a_uri_password_is_redacted(monkeypatch, capsys):
    from pgmilib.cli import app

    def crash(args, out):
        raise RuntimeError("cannot parse postgresql://admin:p@ssw0rd@db:5432/app")

    monkeypatch.setattr(app, "cmd_version", crash)
    code, stdout, stderr = run_cli(["--version"], capsys)
    assert code == 3
    assert "panic: cannot parse postgresql://admin:[redacted]@db:5432/app" in stderr
    assert "Traceback" in stderr and "this is a bug" in stderr
    assert "ssw0rd" not in stdout + stderr


def test_redact_nested_masks_every_string_inside_lists_and_dicts():
    from pgmilib.redact import redact_nested, register_secret, secret_scope

    with secret_scope():
        register_secret("Nested-Secret-42")
        got = redact_nested({"locks": [{"relation": "public.t", "blockers": [{"query": "x Nested-Secret-42 y",
                                                                                "pid": 7}]}], "n": None})
    assert got == {"locks": [{"relation": "public.t", "blockers": [{"query": "x [redacted] y", "pid": 7}]}],
                   "n": None}
