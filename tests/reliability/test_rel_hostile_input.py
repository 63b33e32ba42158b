"""Hostile input to every parser pgmi has: pgmi.yaml, params files, .env, <pgmi-meta>, connection strings.

The contract for each: it returns a value or raises the documented `ConfigError` (exit 10)
whose message, once redacted, holds no canary secret -- never another exception (that
would be a traceback and exit 3), never unbounded time. Generated cases come from a seeded
random.Random per Hypothesis example, biased towards each grammar's special characters;
named cases cover the known attacks: YAML alias bombs and deep nesting, XML internal and
external entities and billion laughs (must be refused, never expanded, never fetched).
"""

from __future__ import annotations

import http.server
import random
import threading
import time
from typing import ClassVar

import pytest
from harness import CANARY_PASSWORD, FIGURES, PER_EXAMPLE, SEED, batched, hypothesis_settings, scale
from hypothesis import given, seed
from hypothesis import strategies as st

from pgmilib.config import parse_params_text
from pgmilib.config.dotenv import load_dotenv, parse_env_text
from pgmilib.config.project_file import load_project_config
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.errors import ConfigError
from pgmilib.project.metadata import parse_block
from pgmilib.redact import redact

CASES = scale(200, 8000)  # per parser (five parsers)


def _noise(r: random.Random, alphabet: list[str], size: int = 80) -> str:
    return "".join(r.choice(alphabet) for _ in range(r.randrange(size)))


def _contract(parse, *args):
    """Call a parser: a value or ConfigError; a ConfigError's redacted text must not leak the canary."""
    FIGURES["hostile cases tried"] += 1
    started = time.monotonic()
    try:
        return parse(*args)
    except ConfigError as error:
        shown = redact(str(error) + "\n" + "\n".join(error.trailer))
        assert CANARY_PASSWORD not in shown, f"canary in the error: {shown!r}"
        return error
    finally:
        assert time.monotonic() - started < 2.0, f"{parse.__name__} took too long on {args!r:.300}"


# ---- pgmi.yaml ---------------------------------------------------------------------------

_YAML = ["connection:", "params:", "timeout:", "host:", "port:", "database:", "sslmode:", "\n", "\n  ", "\n    ",
         " ", "- ", "[", "]", "{", "}", ",", ":", "&a ", "*a", "&b ", "*b", "!!str ", "!!python/object ", "|", ">",
         "'", '"', "#", "%YAML 1.1\n", "---\n", "...\n", "? ", "@", "`", "\t", "x", "5432", "3m", "~", "null",
         "\ufeff", "é", "<<: *a\n", "\\"]


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_pgmi_yaml_never_crashes(tmp_path_factory, case_seed):
    r = random.Random(case_seed)
    root = tmp_path_factory.getbasetemp() / "yaml-fuzz"
    root.mkdir(exist_ok=True)
    (root / "pgmi.yaml").write_text(_noise(r, _YAML), encoding="utf-8")
    result = _contract(load_project_config, root)
    assert result is None or isinstance(result, ConfigError) or hasattr(result, "params")


BILLION_LAUGHS_YAML = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join('*' + chr(97 + i) for _ in range(9))}]\n" for i in range(9)
) + "params:\n  k: *j\n"


@pytest.mark.parametrize("text", [
    BILLION_LAUGHS_YAML,
    "params: &p {a: *p}\n",  # a self-referencing alias (a cycle)
    "params:\n  <<: &m {a: '1'}\n  <<: *m\n",
    "connection: !!python/object/apply:os.system ['echo pwned']\n",
    "params:\n  k: " + "x" * 200_000 + "\n",
], ids=["alias-bomb", "alias-cycle", "merge-keys", "python-tag", "huge-scalar"])
def test_pgmi_yaml_attacks_are_refused_quickly(tmp_path, text):
    (tmp_path / "pgmi.yaml").write_text(text, encoding="utf-8")
    result = _contract(load_project_config, tmp_path)
    assert result is None or isinstance(result, ConfigError) or hasattr(result, "params")


@pytest.mark.parametrize("depth", [5_000])
def test_pgmi_yaml_deep_nesting_is_a_config_error(tmp_path, depth):
    (tmp_path / "pgmi.yaml").write_text("params: " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    result = _contract(load_project_config, tmp_path)
    assert isinstance(result, ConfigError)


# ---- params files and .env ---------------------------------------------------------------

_ENV = ["KEY", "k_2", "=", "=", " ", "\t", "\n", "\r\n", "#", "'", '"', "\\", "\\n", "$", "${", "}", "$(", ")",
        "export ", ":", "x", "é", "\ufeff", "\x00", "\x85", "\xa0", "=" + CANARY_PASSWORD, "PGPASSWORD=", "1bad"]


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_params_files_never_crash(case_seed):
    text = _noise(random.Random(case_seed), _ENV)
    result = _contract(parse_params_text, text, "params.env")
    assert isinstance(result, (dict, ConfigError))


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_dotenv_never_crashes(tmp_path_factory, case_seed):
    text = _noise(random.Random(case_seed), _ENV)
    result = _contract(parse_env_text, text, ".env", {"HOME": "/root"})
    assert isinstance(result, (dict, ConfigError))
    root = tmp_path_factory.getbasetemp() / "env-fuzz"
    root.mkdir(exist_ok=True)
    (root / ".env").write_text(text, encoding="utf-8", errors="surrogatepass")
    merged, warning = load_dotenv(root, {"PATH": "/bin"})  # never raises: a warning naming only the path
    assert merged["PATH"] == "/bin"
    assert warning is None or CANARY_PASSWORD not in warning


# ---- <pgmi-meta> ---------------------------------------------------------------------------

_META = ["<pgmi-meta", ">", "</pgmi-meta>", ' id="', '"', " idempotent=\"true\"", "<description>", "</description>",
         "<sortKeys>", "</sortKeys>", "<key>", "</key>", "0100/a", "&amp;", "&lol;", "&#x41;", "&#0;", "<![CDATA[",
         "]]>", "<!--", "-->", "<?xml version='1.0'?>", "<!DOCTYPE x [<!ENTITY e 'v'>]>", "*/", "/*", "\n", " ", "x",
         "é", "550e8400-e29b-41d4-a716-446655440000", "<pgmi:meta xmlns:pgmi='u'>", "<", "&", "'"]


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_pgmi_meta_never_crashes(case_seed):
    r = random.Random(case_seed)
    content = "/*\n" + _noise(r, _META, 40) + "\n*/\nSELECT 1;\n"
    if r.random() < 0.5:
        content = "/* <pgmi-meta id=\"550e8400-e29b-41d4-a716-446655440000\">" + _noise(r, _META, 30) + "</pgmi-meta> */"
    result = _contract(parse_block, content, "./x.sql")
    assert result is None or isinstance(result, ConfigError) or hasattr(result, "sort_keys")


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        _Recorder.hits.append(self.path)
        body = b"FETCHED-SECRET"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def entity_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _meta_attacks(url: str, secret_file: str) -> dict[str, str]:
    laughs = "".join(f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 1 if i else "lol"}' + (
        f'{"&l" + str(i - 1) + ";"}' * 9 if i else "") + '">' for i in range(10))
    return {
        "internal-entity": '<!DOCTYPE pgmi-meta [<!ENTITY e "EXPANDED">]><pgmi-meta id="550e8400-e29b-41d4-a716-'
                           '446655440000"><description>&e;</description></pgmi-meta>',
        "external-http": f'<!DOCTYPE pgmi-meta [<!ENTITY x SYSTEM "{url}/xxe">]><pgmi-meta><description>&x;'
                         '</description></pgmi-meta>',
        "external-file": f'<!DOCTYPE pgmi-meta [<!ENTITY x SYSTEM "file://{secret_file}">]><pgmi-meta>'
                         '<description>&x;</description></pgmi-meta>',
        "parameter-entity": f'<!DOCTYPE pgmi-meta [<!ENTITY % p SYSTEM "{url}/dtd"> %p;]><pgmi-meta id="550e8400-e29b-41d4-a716-446655440000">'
                            '</pgmi-meta>',
        "external-dtd": f'<!DOCTYPE pgmi-meta SYSTEM "{url}/dtd"><pgmi-meta id="550e8400-e29b-41d4-a716-'
                        '446655440000"></pgmi-meta>',
        "billion-laughs": f"<!DOCTYPE pgmi-meta [{laughs}]><pgmi-meta><description>&l9;</description></pgmi-meta>",
        "undeclared": '<pgmi-meta id="550e8400-e29b-41d4-a716-446655440000"><description>&lol;</description>'
                      "</pgmi-meta>",
    }


@pytest.mark.parametrize("attack", ["internal-entity", "external-http", "external-file", "parameter-entity",
                                    "external-dtd", "billion-laughs", "undeclared"])
def test_pgmi_meta_entities_are_refused_never_expanded_or_fetched(tmp_path, entity_server, attack):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("FILE-SECRET")
    text = _meta_attacks(entity_server, str(secret_file))[attack]
    result = _contract(parse_block, f"/*\n{text}\n*/\nSELECT 1;\n", "./x.sql")
    assert isinstance(result, ConfigError), f"{attack}: accepted as {result!r}"
    shown = str(result)
    for leaked in ("EXPANDED", "FETCHED-SECRET", "FILE-SECRET", "lollol"):
        assert leaked not in shown
    time.sleep(0.05)
    assert _Recorder.hits == [], f"{attack}: the parser fetched {_Recorder.hits}"


# ---- connection strings --------------------------------------------------------------------

_CONN = ["postgresql://", "postgres://", "user", ":", CANARY_PASSWORD, "@", "host", "[::1]", "/", "db", "?", "&",
         "=", "%", "%2F", "%zz", "%00", "sslmode", "port", "5432", "99999999999", "-1", "password", "host=", " ",
         "'", "\\", "\\'", ";", "Server=", "Password=", "Host=", "dbname=", ",", "\n", "\t", "é", "application_name",
         "options=-c x=y", "target_session_attrs=any", "?sslmode=verify-full&", "service=", "\x00"]


@seed(SEED)
@hypothesis_settings(CASES // PER_EXAMPLE)
@given(st.integers(0, 2**63))
@batched
def test_connection_strings_never_crash(case_seed):
    r = random.Random(case_seed)
    text = _noise(r, _CONN, 25)
    if r.random() < 0.3:  # a canary in a real password position, with noise around it
        text = r.choice([f"postgresql://u:{CANARY_PASSWORD}@{_noise(r, _CONN, 8)}",
                         f"host=h password={CANARY_PASSWORD} {_noise(r, _CONN, 8)}",
                         f"Server=h;Password={CANARY_PASSWORD};{_noise(r, _CONN, 8)}"])
    result = _contract(parse_connection_string, text)
    assert isinstance(result, ConfigError) or hasattr(result, "host")
