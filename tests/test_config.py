"""pgmi.yaml, .env, parameters and Go durations."""

from __future__ import annotations

import os
import random
import stat

import pytest

from pgmilib.config import (
    ProjectConfig,
    format_duration,
    load_dotenv,
    load_params_files,
    load_project_config,
    merge_params,
    parse_duration,
    parse_env_text,
    parse_param,
    resolve_timeout,
    timeout_origin,
    validate_params,
    write_project_config,
)
from pgmilib.config import durations as cfg
from pgmilib.errors import ConfigError, Exit, UsageError, exit_code


def write_yaml(tmp_path, text: str):
    (tmp_path / "pgmi.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def _specific(error: BaseException) -> str:
    """The message without the `invalid configuration: ` prefix every ConfigError carries."""
    return str(error).removeprefix("invalid configuration: ")


def yaml_error(tmp_path, text: str) -> str:
    write_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path)
    assert exit_code(caught.value) == Exit.CONFIG
    message = _specific(caught.value)
    assert message.startswith("failed to load pgmi.yaml: ")
    assert "\n" not in message
    return message


# ---- pgmi.yaml: loading -------------------------------------------------------------


def test_missing_file_is_no_config(tmp_path):
    assert load_project_config(tmp_path) is None


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n# another\n", "---\n", "~\n"])
def test_empty_or_comment_only_file_sets_nothing(tmp_path, text):
    loaded = load_project_config(write_yaml(tmp_path, text))
    assert loaded == ProjectConfig(path=tmp_path / "pgmi.yaml")


def test_full_file_keeps_text_and_converts_port(tmp_path):
    loaded = load_project_config(write_yaml(tmp_path, """
connection:
  host: db.example.com
  port: 5433
  username: app
  database: appdb
  maintenance_database: admin
  sslmode: verify-full
  sslrootcert: ca.pem
  auth_method: aws
  aws_region: eu-west-1
params:
  env: production
timeout: 1h30m
"""))
    assert loaded.connection == {
        "host": "db.example.com", "port": 5433, "username": "app", "database": "appdb",
        "maintenance_database": "admin", "sslmode": "verify-full", "sslrootcert": "ca.pem",
        "auth_method": "aws", "aws_region": "eu-west-1",
    }
    assert loaded.params == {"env": "production"}
    assert loaded.timeout == "1h30m"


def test_yaml_11_pitfalls_stay_as_written(tmp_path):
    loaded = load_project_config(write_yaml(tmp_path, """
params:
  flag: yes
  off: off
  mode: 0755
  version: 1.10
  truth: true
  nothing:
  tilde: ~
  date: 2024-01-02
  sci: 1e3
  quoted: "yes"
  hex: 0x1F
  json: '{"a": 1}'
timeout: 0
"""))
    assert loaded.params == {
        "flag": "yes", "off": "off", "mode": "0755", "version": "1.10", "truth": "true", "nothing": "",
        "tilde": "", "date": "2024-01-02", "sci": "1e3", "quoted": "yes", "hex": "0x1F", "json": '{"a": 1}',
    }
    assert loaded.timeout == "0"
    assert resolve_timeout(None, loaded) is None  # timeout: 0 => no deadline


def test_only_first_document_is_read(tmp_path):
    loaded = load_project_config(write_yaml(tmp_path, "params: {env: dev}\n---\nbogus: [\n"))
    assert loaded.params == {"env": "dev"}


def test_minimal_flow_mapping(tmp_path):
    assert load_project_config(write_yaml(tmp_path, "params: {env: development}\n")).params == {"env": "development"}


def test_null_connection_values_are_unset(tmp_path):
    loaded = load_project_config(write_yaml(tmp_path, "connection:\n  host:\n  port: 0\n  database: ''\n"))
    assert loaded.connection == {"database": ""}


def test_syntax_error_names_path_and_line(tmp_path):
    message = yaml_error(tmp_path, "connection:\n  host: a\n  port: [1, 2\n")
    assert str(tmp_path / "pgmi.yaml") in message
    assert "parse" in message and "line " in message


def test_tab_indentation_is_a_syntax_error(tmp_path):
    assert "line 2" in yaml_error(tmp_path, "connection:\n\thost: a\n")


def test_unreadable_config_is_config_error(tmp_path):
    (tmp_path / "pgmi.yaml").mkdir()
    with pytest.raises(ConfigError, match="failed to load pgmi.yaml"):
        load_project_config(tmp_path)


def test_non_utf8_config(tmp_path):
    (tmp_path / "pgmi.yaml").write_bytes(b"params:\n  a: \xff\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_project_config(tmp_path)


# ---- pgmi.yaml: strict schema -----------------------------------------------------------


def test_unknown_key_in_connection_names_key_and_line(tmp_path):
    message = yaml_error(tmp_path, "# project\nconnection:\n  host: h\n  usernmae: bob\n")
    assert 'pgmi.yaml line 4: unknown key "usernmae" in connection' in message


def test_unknown_top_level_key(tmp_path):
    message = yaml_error(tmp_path, "params: {}\ntimeotu: 5m\n")
    assert 'line 2: unknown key "timeotu"' in message


def test_any_key_allowed_inside_params(tmp_path):
    loaded = load_project_config(write_yaml(tmp_path, "params:\n  password: x\n  force: y\n  whatever: z\n"))
    assert loaded.params == {"password": "x", "force": "y", "whatever": "z"}


@pytest.mark.parametrize("key", ["password", "sslpassword", "overwrite", "force", "azure_client_secret"])
@pytest.mark.parametrize("level", ["top", "connection"])
def test_forbidden_keys_are_rejected(tmp_path, key, level):
    text = f"{key}: x\n" if level == "top" else f"connection:\n  host: h\n  {key}: x\n"
    message = yaml_error(tmp_path, text)
    assert f'unknown key "{key}"' in message
    assert f"line {1 if level == 'top' else 3}" in message


@pytest.mark.parametrize("text, line, key, where", [
    ("timeout: 1m\nparams: {}\ntimeout: 2m\n", 3, "timeout", "pgmi.yaml"),
    ("connection:\n  host: a\n  port: 1\n  host: b\n", 4, "host", "connection"),
    ("params:\n  env: a\n  other: b\n  env: c\n", 4, "env", "params"),
    ("params: {a: 1, a: 2}\n", 1, "a", "params"),
    ("connection: {host: a}\nconnection: {host: b}\n", 2, "connection", "pgmi.yaml"),
])
def test_duplicate_keys_at_each_level(tmp_path, text, line, key, where):
    message = yaml_error(tmp_path, text)
    assert f'line {line}: duplicate key "{key}" in {where}' in message


@pytest.mark.parametrize("text, fragment", [
    ("connection: localhost\n", "connection must be a mapping, not a single value"),
    ("connection:\n  - host\n", "connection must be a mapping, not a list"),
    ("params: [a, b]\n", "params must be a mapping, not a list"),
    ("params:\n  a:\n    nested: 1\n", "params.a must be a single value, not a mapping"),
    ("params:\n  a: [1, 2]\n", "params.a must be a single value, not a list"),
    ("connection:\n  host: [a]\n", "connection.host must be a single value"),
    ("timeout: {a: 1}\n", "timeout must be a single value"),
    ("- a\n- b\n", "pgmi.yaml must be a mapping"),
    ("just text\n", "pgmi.yaml must be a mapping"),
    ("connection:\n  port: \"5432\"\n", "connection.port must be a number, not a quoted string"),
    ("connection:\n  port: 5432.9\n", "connection.port must be an integer"),
    ("connection:\n  port: abc\n", "connection.port must be an integer"),
    ("connection:\n  port: -1\n", "connection.port must be between 1 and 65535, got -1"),
    ("connection:\n  port: 70000\n", "connection.port must be between 1 and 65535"),
])
def test_wrong_types(tmp_path, text, fragment):
    assert fragment in yaml_error(tmp_path, text)


def test_port_bounds_accepted(tmp_path):
    for port in (1, 5432, 65535):
        assert load_project_config(write_yaml(tmp_path, f"connection:\n  port: {port}\n")).connection == {"port": port}


def test_bad_timeout_is_kept_for_resolve_timeout(tmp_path):
    loaded = load_project_config(write_yaml(tmp_path, "timeout: later\n"))
    assert loaded.timeout == "later"
    with pytest.raises(ConfigError) as caught:
        resolve_timeout(None, loaded)
    assert _specific(caught.value) == 'invalid timeout in pgmi.yaml: time: invalid duration "later"'
    assert resolve_timeout("10s", loaded) == 10.0  # flag given: the yaml value is never parsed


# ---- writing pgmi.yaml ----------------------------------------------------------------------


def test_write_keeps_params_and_timeout_never_secrets(tmp_path):
    write_yaml(tmp_path, "connection:\n  host: old\nparams:\n  mode: 0755\n  flag: yes\ntimeout: 5m\n")
    path = write_project_config(tmp_path, {
        "host": "new", "port": 5433, "username": "u", "database": "d", "sslmode": "require",
        "password": "hunter2-secret", "sslpassword": "pp-secret", "auth_method": "kerberos", "aws_region": "",
        "sslrootcert": "ca.pem",
    })
    assert path == tmp_path / "pgmi.yaml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "secret" not in text and "password" not in text and "auth_method" not in text and "aws_region" not in text
    loaded = load_project_config(tmp_path)
    assert loaded.connection == {"host": "new", "port": 5433, "username": "u", "database": "d",
                                 "sslmode": "require", "sslrootcert": "ca.pem"}
    assert loaded.params == {"mode": "0755", "flag": "yes"}
    assert loaded.timeout == "5m"
    assert text.index("connection") < text.index("params") < text.index("timeout")


def test_write_replaces_unparseable_file_and_always_emits_core_keys(tmp_path):
    write_yaml(tmp_path, "connection: [broken\n")
    write_project_config(tmp_path, {"database": "app", "auth_method": "azure"})
    loaded = load_project_config(tmp_path)
    assert loaded.connection == {"host": "", "username": "", "database": "app", "sslmode": "", "auth_method": "azure"}
    for key in ("host:", "port: 0", "username:", "sslmode:"):
        assert key in (tmp_path / "pgmi.yaml").read_text()


# ---- .env --------------------------------------------------------------------------------


def test_env_grammar():
    text = (
        "# comment\r\n"
        "\n"
        "export PGHOST=db.local\n"
        "  PGPORT = 5433  \n"
        "YAMLISH: value here # trailing comment\n"
        "HASH=a#b\n"
        "SINGLE='literal $PGHOST \\n'\n"
        'DOUBLE="line1\\nline2 \\"q\\" \\$PGHOST ${PGHOST} $PGPORT"\n'
        "EXPANDED=$PGHOST:$FROM_ENV:${MISSING}x\n"
        "EMPTY=\n"
        "MULTI='a\n"
        "b'\n"
        'QUOTED_COMMENT="v" # note\n'
        "dotted.key=1\n"
        "DUP=first\n"
        "DUP=second\n"
    )
    assert parse_env_text(text, ".env", {"FROM_ENV": "env", "PGHOST": "ignored"}) == {
        "PGHOST": "db.local", "PGPORT": "5433", "YAMLISH": "value here", "HASH": "a#b",
        "SINGLE": "literal $PGHOST \\n", "DOUBLE": 'line1\nline2 "q" $PGHOST db.local 5433',
        "EXPANDED": "db.local:env:x", "EMPTY": "", "MULTI": "a\nb", "QUOTED_COMMENT": "v", "dotted.key": "1",
        "DUP": "second",
    }


@pytest.mark.parametrize("text, line", [
    ("A=1\nthis is not kv\n", 2),
    ("A=1\n\nB\n", 3),
    ("=value\n", 1),
    ('A="unterminated\nB=2\n', 1),
    ("A='x' junk\n", 1),
    ("A-B=1\n", 1),
])
def test_env_syntax_errors_name_source_and_line(text, line):
    with pytest.raises(ConfigError) as caught:
        parse_env_text(text, "proj/.env", {})
    assert _specific(caught.value).startswith(f"proj/.env:{line}: ")


def test_env_error_never_quotes_content():
    with pytest.raises(ConfigError) as caught:
        parse_env_text("PGPASSWORD=s3cr3t-value\nnot a pair s3cr3t-value\n", ".env", {})
    assert "s3cr3t" not in _specific(caught.value)


def test_dotenv_never_overrides_even_empty(tmp_path):
    (tmp_path / ".env").write_text("PGHOST=fromfile\nPGUSER=fromfile\nNEWVAR=${PGUSER}-x\n")
    environ = {"PGHOST": "", "PGUSER": "preset"}
    merged, warning = load_dotenv(tmp_path, environ)
    assert warning is None
    assert merged == {"PGHOST": "", "PGUSER": "preset", "NEWVAR": "fromfile-x"}
    assert environ == {"PGHOST": "", "PGUSER": "preset"}  # the caller's mapping is never modified


def test_dotenv_all_or_nothing_and_warning_names_only_path(tmp_path):
    (tmp_path / ".env").write_text("PGPASSWORD=topsecret\nGOOD=1\nthis is not kv\n")
    environ: dict[str, str] = {}
    merged, warning = load_dotenv(tmp_path, environ)
    assert merged == {}
    assert warning is not None
    assert str(tmp_path / ".env") in warning
    assert "could not be parsed, so none of its values were applied." in warning
    assert "Every line must be KEY=VALUE, a # comment, or blank." in warning
    assert "topsecret" not in warning and "not kv" not in warning


def test_dotenv_missing_is_silent(tmp_path):
    assert load_dotenv(tmp_path, {"A": "1"}) == ({"A": "1"}, None)


def test_dotenv_bad_encoding_warns(tmp_path):
    (tmp_path / ".env").write_bytes(b"A=\xff\n")
    merged, warning = load_dotenv(tmp_path, {})
    assert warning is not None
    assert merged == {}


# ---- parameters ---------------------------------------------------------------------------


def test_parse_param_first_equals_splits():
    assert parse_param("conn=host=x db=y") == ("conn", "host=x db=y")
    assert parse_param("key=") == ("key", "")
    assert parse_param(" k = v ") == (" k ", " v ")


def test_parse_param_errors_name_the_flag():
    with pytest.raises(ConfigError) as caught:
        parse_param("novalue")
    assert _specific(caught.value) == ('invalid parameter format: --param "novalue" is not in key=value format '
                                 "(example: --param env=production)")
    with pytest.raises(ConfigError) as caught:
        parse_param("=secretvalue")
    assert "--param" in _specific(caught.value) and "empty key" in _specific(caught.value)
    assert "secretvalue" not in _specific(caught.value)


def test_params_files_grammar_and_order(tmp_path):
    first = tmp_path / "a.env"
    first.write_bytes("\ufeff# comment\n\n  env = staging  \nurl=a#b\nq1=\"quoted\"\nq2='single'\nodd=\"x'\n"
                      "export X=1\r\nempty=\n".encode())
    second = tmp_path / "b.env"
    second.write_text("env=production\n")
    assert load_params_files([str(first), str(second)]) == {
        "env": "production", "url": "a#b", "q1": "quoted", "q2": "single", "odd": "\"x'", "export X": "1",
        "empty": "",
    }


@pytest.mark.parametrize("text, line, problem", [
    ("a=1\nnovalue\n", 2, "invalid format, expected KEY=VALUE"),
    ("# c\n\n = value\n", 3, "empty key"),
])
def test_params_file_bad_line(tmp_path, text, line, problem):
    path = tmp_path / "p.env"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_params_files([str(path)])
    assert _specific(caught.value) == f"failed to parse params file '{path}': line {line}: {problem}"
    assert caught.value.trailer[-1].startswith("Tip:")
    assert exit_code(caught.value) == Exit.CONFIG


def test_params_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="failed to read params file '.*nope.env'"):
        load_params_files([str(tmp_path / "nope.env")])


def test_merge_precedence():
    merged = merge_params({"a": "yaml", "b": "yaml", "c": "yaml"}, {"b": "file", "c": "file"},
                          [("c", "cli1"), ("c", "cli2"), ("C", "other")])
    assert merged == {"a": "yaml", "b": "file", "c": "cli2", "C": "other"}
    assert merge_params(None, None, None) == {}
    assert merge_params({"x": "1"}, {}, {"x": "2"}) == {"x": "2"}


@pytest.mark.parametrize("key", ["1abc", "a" * 64, "", "has-dash", "dot.ted", "sp ace", "é", "a\n"])
def test_bad_param_keys(key):
    with pytest.raises(ConfigError) as caught:
        validate_params({key: "SENTINEL-VALUE"})
    assert f"invalid parameter key '{key}'" in _specific(caught.value)
    assert "SENTINEL-VALUE" not in _specific(caught.value)


def test_good_param_keys_and_values():
    validate_params({"a" * 63: "x", "_x": "", "Env_2": "line\nbreak\ttab {\"json\": true} ünïcode"})


def test_bad_param_values_name_key_not_value():
    with pytest.raises(ConfigError) as caught:
        validate_params({"token": "SENT\x00INEL"})
    assert "'token'" in _specific(caught.value) and "NUL byte at offset 4" in _specific(caught.value)
    assert "SENT" not in _specific(caught.value)
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        validate_params({"token": "bad\udcff"})


def test_keys_differing_only_in_case_are_rejected():
    with pytest.raises(ConfigError, match="differ only in case"):
        validate_params({"Env": "a", "env": "b"})


# ---- durations -----------------------------------------------------------------------------

VALID = {
    "0": 0.0, "+0": 0.0, "-0": 0.0, "30s": 30.0, "5m": 300.0, "1h30m": 5400.0, "1.5h": 5400.0,
    "300ms": 0.3, "2h45m30.5s": 9930.5, ".5s": 0.5, "1.s": 1.0, "-1s": -1.0, "+2m": 120.0,
    "1ns": 1e-9, "1us": 1e-6, "1µs": 1e-6, "1μs": 1e-6, "1h1h": 7200.0, "0.000000001s": 1e-9,
    "1m0s": 60.0, "10s500ms": 10.5,
}
INVALID = {
    "42": "time: missing unit in duration \"42\"",
    "5 fortnights": "time: unknown unit \" fortnights\" in duration \"5 fortnights\"",
    "later": "time: invalid duration \"later\"",
    "1d": "time: unknown unit \"d\" in duration \"1d\"",
    "5 m": "time: unknown unit \" m\" in duration \"5 m\"",
    "": "time: invalid duration \"\"",
    "-": "time: invalid duration \"-\"",
    ".s": "time: invalid duration \".s\"",
    "s": "time: invalid duration \"s\"",
    "1.5": "time: missing unit in duration \"1.5\"",
    " 1s": "time: invalid duration \" 1s\"",
    "1s ": "time: unknown unit \"s \" in duration \"1s \"",
    "1S": "time: unknown unit \"S\" in duration \"1S\"",
    "--1s": "time: invalid duration \"--1s\"",
    "3000000h": "time: invalid duration \"3000000h\"",
}


def test_parse_duration_valid():
    for text, seconds in VALID.items():
        assert parse_duration(text) == pytest.approx(seconds, abs=1e-12), text


def test_parse_duration_invalid_messages():
    for text, message in INVALID.items():
        with pytest.raises(ValueError) as caught:
            parse_duration(text)
        assert _specific(caught.value) == message, text


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (180, "3m0s"), (1.5, "1.5s"), (3600, "1h0m0s"), (5400, "1h30m0s"), (0.3, "300ms"),
    (0.0015, "1.5ms"), (1e-6, "1µs"), (1e-9, "1ns"), (-1, "-1s"), (9930.5, "2h45m30.5s"), (59.999, "59.999s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def _random_duration(rng: random.Random) -> str:
    """A Go duration string: sign, 1-4 groups of integer or decimal numbers with random units."""
    units = ["h", "m", "s", "ms", "us", "µs", "ns"]
    groups = []
    for _ in range(rng.randint(1, 4)):
        number = str(rng.randint(0, 500))
        if rng.random() < 0.3:
            number += "." + str(rng.randint(0, 999)).rjust(rng.randint(1, 3), "0")
        groups.append(number + rng.choice(units))
    return rng.choice(["", "", "+", "-"]) + "".join(groups)


def test_duration_round_trip_property():
    rng = random.Random(20260601)
    for _ in range(2000):
        text = _random_duration(rng)
        ns = cfg.parse_duration_ns(text)
        canonical = cfg.format_duration_ns(ns)
        assert cfg.parse_duration_ns(canonical) == ns, (text, canonical)
        # the float API agrees with the integer one (values here are far below 2**53 ns)
        assert format_duration(parse_duration(text)) == canonical, text
        assert format_duration(parse_duration(canonical)) == canonical


def test_random_garbage_is_rejected_or_consistent():
    rng = random.Random(7)
    alphabet = "0123456789.+-hmsnuµ x"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        try:
            ns = cfg.parse_duration_ns(text)
        except ValueError as error:
            assert str(error).startswith("time: "), text
            continue
        assert cfg.parse_duration_ns(cfg.format_duration_ns(ns)) == ns, text


# ---- timeout resolution -----------------------------------------------------------------------


def test_resolve_timeout_precedence(tmp_path):
    yaml_cfg = ProjectConfig(path=tmp_path / "pgmi.yaml", timeout="10m")
    assert resolve_timeout(None, None) == 180.0
    assert resolve_timeout(None, ProjectConfig(path=tmp_path)) == 180.0
    assert resolve_timeout(None, yaml_cfg) == 600.0
    assert resolve_timeout("3m", yaml_cfg) == 180.0  # explicit flag equal to the default still wins
    assert resolve_timeout("0", yaml_cfg) is None


def test_resolve_timeout_errors(tmp_path):
    with pytest.raises(UsageError) as caught:
        resolve_timeout("soon", None)
    assert str(caught.value) == 'usage error: invalid argument "soon" for "--timeout" flag: time: invalid duration "soon"'
    assert exit_code(caught.value) == Exit.USAGE
    for explicit, cfg_value in (("-1s", None), (None, "-5s"), (-1.0, None)):
        project = ProjectConfig(path=tmp_path, timeout=cfg_value)
        with pytest.raises(ConfigError) as caught:
            resolve_timeout(explicit, project)
        assert _specific(caught.value) == "timeout cannot be negative"
    with pytest.raises(ConfigError) as caught:
        resolve_timeout(None, ProjectConfig(path=tmp_path, timeout="42"))
    assert _specific(caught.value) == 'invalid timeout in pgmi.yaml: time: missing unit in duration "42"'


def test_the_timeout_names_where_it_came_from(tmp_path):
    yaml_cfg = ProjectConfig(path=tmp_path, timeout="10m")
    assert timeout_origin("5s", yaml_cfg) == "--timeout"
    assert timeout_origin(30.0, None) == "--timeout"
    assert timeout_origin(None, yaml_cfg) == "pgmi.yaml timeout"
    assert timeout_origin(None, ProjectConfig(path=tmp_path)) == "the default 3m; set --timeout or pgmi.yaml timeout"
