"""The libpq keys beyond host/port/user: every one honoured or refused, never dropped (pure rules).

The behaviour on a real server is in tests/test_conn_keys_server.py.
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import pytest

from pgmilib.conn import pgpass
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.early import startup_params
from pgmilib.conn.libpqkeys import (
    REQUIRE_AUTH_METHODS,
    TARGET_SESSION_ATTRS,
    check_options,
    is_client_only,
    parse_require_auth,
    session_matches,
)
from pgmilib.conn.pgpass import pgpass_lookup, pgpass_path, save_password
from pgmilib.conn.resolve import ConnectionFlags, resolve
from pgmilib.errors import ConfigError, Exit, exit_code

METHODS = ("password", "md5", "scram-sha-256", "none")


@pytest.mark.parametrize("text, allowed", [
    ("scram-sha-256", {"scram-sha-256"}),
    ("md5,scram-sha-256", {"md5", "scram-sha-256"}),
    (" none , password ", {"none", "password"}),
    ("!password", {"md5", "scram-sha-256", "none"}),
    ("!password,!md5", {"scram-sha-256", "none"}),
    ("!none", {"password", "md5", "scram-sha-256"}),
    ("!gss", set(METHODS)),  # refusing what pgmi never does is fine
])
def test_require_auth_list_semantics(text, allowed):
    rule = parse_require_auth(text, "the connection string")
    assert {m for m in METHODS if rule.refusal(m) is None} == allowed
    refused = next((m for m in METHODS if m not in allowed), None)
    if refused is not None:
        message = rule.refusal(refused)
        assert "require_auth=" in message and f"does not allow {refused} " in message


@pytest.mark.parametrize("text, needle", [
    ("md5,!password", "cannot be mixed"),
    ("!md5,password", "cannot be mixed"),
    ("gss", "not supported"),
    ("scram-sha-256,sspi", "not supported"),
    ("kerberos", "invalid require_auth method"),
    ("md5,md5", "listed twice"),
    ("SCRAM-SHA-256", "invalid require_auth method"),  # libpq is case-sensitive too
])
def test_bad_require_auth_is_a_config_error(text, needle):
    with pytest.raises(ConfigError) as info:
        parse_connection_string(f"host=h require_auth={text}")
    assert needle in str(info.value) and exit_code(info.value) == Exit.CONFIG
    assert parse_require_auth("  ", "x") is None


def test_session_matches_each_target():
    states = [(ro, rec) for ro in (False, True) for rec in (False, True) if rec <= ro]  # a standby is read-only
    table = {wanted: [session_matches(wanted, ro, rec) for ro, rec in states] for wanted in TARGET_SESSION_ATTRS}
    # states: primary read-write, primary read-only (default_transaction_read_only), standby
    assert table == {"any": [True, True, True], "read-write": [True, False, False],
                     "read-only": [False, True, True], "primary": [True, True, False],
                     "standby": [False, False, True], "prefer-standby": [False, False, True]}
    assert all(session_matches("prefer-standby", ro, rec, standby_pass=False) for ro, rec in states)


def test_target_session_attrs_value_is_checked_in_every_form():
    assert parse_connection_string("host=h target_session_attrs=read-write").target_session_attrs == "read-write"
    assert parse_connection_string("postgresql://h/db?target_session_attrs=standby").target_session_attrs == "standby"
    assert parse_connection_string("Host=h;Target Session Attributes=Primary").target_session_attrs == "primary"
    with pytest.raises(ConfigError, match='invalid target_session_attrs "master"'):
        parse_connection_string("host=h target_session_attrs=master")


@pytest.mark.parametrize("pair, needle", [
    ("krbsrvname=postgres", "Kerberos"),
    ("hostaddr=10.0.0.1", "hostaddr"),
    ("sslcrldir=/etc/crl", "sslcrldir"),
    ("replication=database", "replication"),
    ("keepalives_idle=30", "keepalives_idle"),
    ("sslsni=0", "sslsni"),
    ("keepalives=0", "keepalives"),
    ("gssencmode=require", "gssencmode"),
    ("channel_binding=require", "channel_binding"),
    ("sslnegotiation=direct", "sslnegotiation"),
    ("ssl_min_protocol_version=TLSv1.3", "ssl_min_protocol_version"),
])
def test_keys_pgmi_cannot_honour_are_refused_naming_the_key(pair, needle, capsys):
    with pytest.raises(ConfigError) as info:
        resolve(ConnectionFlags(connection=f"host=h dbname=d {pair}"), {}, None)
    text = str(info.value)
    assert needle in text and "--connection" in text and "\n" not in text
    assert exit_code(info.value) == Exit.CONFIG


def test_default_values_and_driver_tuning_keys_are_accepted_and_never_sent():
    options = {"sslsni": "1", "keepalives": "1", "gssencmode": "disable", "channel_binding": "prefer",
               "statement_cache_capacity": "0", "pool_max_conns": "4", "search_path": "app", "options": "-c x=y"}
    check_options(options, "test")
    params = parse_connection_string("host=h " + " ".join(f"{k}='{v}'" for k, v in options.items()))
    assert startup_params(params) == {"search_path": "app", "options": "-c x=y"}
    assert all(is_client_only(k) for k in ("passfile", "sslcrl", "require_auth", "target_session_attrs", "SSLSNI"))


def test_an_ado_user_key_is_refused_instead_of_dropped():
    with pytest.raises(ConfigError, match='connection key "User"'):
        resolve(ConnectionFlags(connection="Host=h;Database=d;User=alice"), {}, None)


def test_variables_fill_what_the_string_left_unset_and_are_checked():
    env = {"PGREQUIREAUTH": "scram-sha-256", "PGTARGETSESSIONATTRS": "read-write", "PGSSLCRL": "/c.crl",
           "PGPASSFILE": "/env-pgpass"}
    params = resolve(ConnectionFlags(connection="host=h dbname=d passfile=/mine"), env, None)
    assert (params.require_auth, params.target_session_attrs, params.sslcrl, params.passfile) == (
        "scram-sha-256", "read-write", "/c.crl", "/mine")
    params = resolve(ConnectionFlags(connection="host=h dbname=d require_auth=md5"), env, None)
    assert params.require_auth == "md5"  # the string wins
    granular = resolve(ConnectionFlags(host="h", database="d"), env, None)
    assert granular.target_session_attrs == "read-write" and granular.passfile == "/env-pgpass"
    with pytest.raises(ConfigError, match=r'invalid require_auth method "bogus" in \$PGREQUIREAUTH'):
        resolve(ConnectionFlags(host="h", database="d"), {"PGREQUIREAUTH": "bogus"}, None)
    with pytest.raises(ConfigError, match=r"\$PGTARGETSESSIONATTRS"):
        resolve(ConnectionFlags(host="h", database="d"), {"PGTARGETSESSIONATTRS": "rw"}, None)


def test_a_service_entry_carries_the_keys_and_servicefile_is_honoured(tmp_path):
    services = tmp_path / "services.conf"
    services.write_text("[ro]\nhost=h\ndbname=d\ntarget_session_attrs=read-only\nrequire_auth=!password\n",
                        encoding="utf-8")
    params = resolve(ConnectionFlags(connection=f"service=ro servicefile={services}"), {}, None)
    assert (params.host, params.target_session_attrs, params.require_auth) == ("h", "read-only", "!password")
    granular = resolve(ConnectionFlags(database="d"), {"PGSERVICE": "ro", "PGSERVICEFILE": str(services)}, None)
    assert granular.target_session_attrs == "read-only"


# ---- one .pgpass path rule for the look-up and the saver --------------------------------------


def test_the_windows_path_rule_is_testable_anywhere():
    env = {"APPDATA": r"C:\Users\dev\AppData\Roaming", "HOME": "/home/dev"}
    assert str(pgpass_path(env, windows=True)) == str(PureWindowsPath(r"C:\Users\dev\AppData\Roaming\postgresql"
                                                                      r"\pgpass.conf"))
    assert str(pgpass_path(env, windows=False)) == "/home/dev/.pgpass"
    assert str(pgpass_path({"HOME": "/home/dev"}, windows=True)) == "/home/dev/.pgpass"  # no %APPDATA%
    assert str(pgpass_path({**env, "PGPASSFILE": "/p"}, windows=True)) == "/p"  # the variable first
    assert str(pgpass_path({**env, "PGPASSFILE": "/p"}, "/key", windows=True)) == "/key"  # the key before it


def test_the_passfile_key_is_where_the_lookup_reads(tmp_path):
    key_file = tmp_path / "by-key"
    save_password("db.example", 5432, "u", r"a:b\c", {"PGPASSFILE": str(key_file)})
    assert pgpass_lookup("db.example", 5432, "app", "u", {}, passfile=str(key_file)) == r"a:b\c"
    assert pgpass_lookup("db.example", 5432, "app", "u", {"PGPASSFILE": str(key_file)},
                         passfile=str(tmp_path / "none")) is None


# ---- the exact words of each refusal (a user reads them; the mutation run holds them) ----------


@pytest.mark.parametrize(("call", "message"), [
    (lambda: check_options({"GssEncMode": "require"}, "the connection string"),
     ('connection key GssEncMode="require" in the connection string is not supported '
      "(pgmi accepts only disable or prefer)")),
    (lambda: parse_require_auth("md5,!password", "$PGREQUIREAUTH"),
     'invalid require_auth "md5,!password" in $PGREQUIREAUTH: negated and plain methods cannot be mixed'),
    (lambda: parse_require_auth("scram", "the connection string"),
     'invalid require_auth method "scram" in the connection string (valid: ' + ", ".join(REQUIRE_AUTH_METHODS) + ")"),
    (lambda: parse_require_auth("md5,gss", "pgmi.yaml"),
     'require_auth method "gss" in pgmi.yaml is not supported (pgmi cannot do GSSAPI or SSPI authentication)'),
    (lambda: parse_require_auth("md5, md5", "pgmi.yaml"),
     'invalid require_auth "md5, md5" in pgmi.yaml: md5 is listed twice'),
], ids=["default-only key", "mixed", "unknown method", "gss", "twice"])
def test_refusal_messages_name_the_value_and_what_is_accepted(call, message):
    with pytest.raises(ConfigError) as caught:
        call()
    assert str(caught.value) == "invalid configuration: " + message  # what every ConfigError starts with


def test_a_refusal_quotes_the_list_as_the_user_wrote_it():
    rule = parse_require_auth(" scram-sha-256,password ", "x")
    assert rule.refusal("md5") == ("require_auth=scram-sha-256,password does not allow md5 authentication, "
                                   "which the server asked for")
    assert rule.refusal("password") is None


def test_the_platform_decides_the_path_rule_unless_told(monkeypatch):
    env = {"APPDATA": r"C:\Users\dev\AppData\Roaming", "HOME": "/home/dev"}
    monkeypatch.setattr(pgpass, "ON_WINDOWS", True)
    on_windows = pgpass_path(env)
    assert on_windows.parts[-2:] == ("postgresql", "pgpass.conf") and isinstance(on_windows, Path)
    monkeypatch.setattr(pgpass, "ON_WINDOWS", False)
    assert str(pgpass_path(env)) == "/home/dev/.pgpass"
    windows_elsewhere = pgpass_path(env, windows=True)  # what a POSIX host can hold of a Windows path
    assert isinstance(windows_elsewhere, PureWindowsPath) and not isinstance(windows_elsewhere, Path)


def test_without_an_environment_the_process_one_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "from-env"))
    assert pgpass_path() == tmp_path / "from-env"


def test_the_saver_makes_missing_parent_directories(tmp_path):
    target = tmp_path / "a" / "b" / "pgpass"
    assert save_password("h", 5432, "u", "pw", {"PGPASSFILE": str(target)}) == target
    assert pgpass_lookup("h", 5432, "db", "u", {"PGPASSFILE": str(target)}) == "pw"
