"""Project configuration: pgmi.yaml (strict, text-preserving), .env, parameters, Go durations.

Why so strict: pgmi.yaml is committed next to the SQL it deploys, so a typo such as
`usernmae:` must fail loudly (exit 10) instead of silently deploying as the wrong user,
and secrets (`password:`) must never find a home there. PyYAML's usual loaders would also
rewrite values (`yes` -> True, `0755` -> 493, `1.10` -> 1.1) and silently keep the last of
two duplicate keys; we compose the YAML node tree with the BaseLoader resolver instead, so
every scalar stays the text the user wrote, duplicates are caught, and every message can
name its line.

The `.env` grammar is the godotenv subset the original tool accepts; `--params-file`
uses a deliberately simpler grammar (no export, no expansion, no inline comments).
Durations follow Go's `time.ParseDuration` / `Duration.String`, because users copy values
between the two implementations and CI scripts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pgmilib.errors import ConfigError, UsageError, go_quote

CONFIG_FILE = "pgmi.yaml"
DOTENV_FILE = ".env"
DEFAULT_TIMEOUT = "3m"

#: Keys allowed in the `connection` block, in the order pgmi writes them.
CONNECTION_KEYS = (
    "host", "port", "username", "database", "sslmode",
    "maintenance_database", "sslcert", "sslkey", "sslrootcert", "auth_method",
    "azure_tenant_id", "azure_client_id", "aws_region", "google_instance",
)
TOP_LEVEL_KEYS = ("connection", "params", "timeout")
#: Keys that are rejected on purpose: secrets and unsafe defaults never live in pgmi.yaml.
_FORBIDDEN_HINTS = {
    "password": "passwords never belong in pgmi.yaml; use $PGPASSWORD, .pgpass or a connection string",
    "sslpassword": "use $PGSSLPASSWORD or the connection string's sslpassword",
    "azure_client_secret": "use $AZURE_CLIENT_SECRET",
    "client_secret": "use $AZURE_CLIENT_SECRET",
    "overwrite": "--overwrite is a command-line decision only",
    "force": "--force is a command-line decision only",
}
_YAML_NULLS = ("", "~", "null", "Null", "NULL")
_PARAM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PARAMS_FILE_TIP = "Tip: each line must be KEY=VALUE; blank lines and lines starting with # are ignored."


@dataclass
class ProjectConfig:
    """What pgmi.yaml says, with every value still as the user wrote it (port as int)."""

    path: Path
    connection: dict[str, object] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    timeout: str | None = None


# ---- pgmi.yaml ------------------------------------------------------------------------


class _Schema(Exception):
    """A schema violation at a 1-based line (turned into a ConfigError by the loader)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_project_config(project_dir: str | Path) -> ProjectConfig | None:
    """Read `<project_dir>/pgmi.yaml`; None when absent, ConfigError when unusable.

    Only the first YAML document counts (later ones are not even parsed). An empty or
    comment-only file is a valid config with nothing set. `timeout` is kept as text and
    parsed only by `resolve_timeout`, so a bad value is harmless when --timeout is given.
    """
    path = Path(project_dir) / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"failed to load pgmi.yaml: read {path}: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"failed to load pgmi.yaml: {path}: not valid UTF-8 (byte {error.start})") from error

    import yaml  # only when there is a file to read (~15 ms of start-up otherwise)

    config = ProjectConfig(path=path)
    try:
        root = next(iter(yaml.compose_all(text, Loader=yaml.BaseLoader)), None)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = ", ".join(p for p in (error.context, error.problem) if p) or "syntax error"
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"failed to load pgmi.yaml: parse {path}:{where}: {what}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"failed to load pgmi.yaml: parse {path}: {error}") from error
    if root is None or _is_null(root):
        return config
    try:
        _fill(config, root)
    except _Schema as problem:
        raise ConfigError(f"failed to load pgmi.yaml: {path} line {problem.line}: {problem.message}") from None
    return config


def _line(node) -> int:
    return node.start_mark.line + 1


def _is_null(node) -> bool:
    import yaml

    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _YAML_NULLS


def _kind(node) -> str:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a single value"


def _mapping(node, where: str) -> list[tuple[str, object, int]]:
    """(key, value node, line) of a mapping node; rejects non-mappings and duplicate keys."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise _Schema(_line(node), f"{where} must be a mapping, not {_kind(node)}")
    seen: dict[str, int] = {}
    items = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Schema(_line(key_node), f"keys in {where} must be plain names, not {_kind(key_node)}")
        key, line = key_node.value, _line(key_node)
        if key in seen:
            raise _Schema(line, f"duplicate key {go_quote(key)} in {where} (first defined at line {seen[key]})")
        seen[key] = line
        items.append((key, value_node, line))
    return items


def _unknown(key: str, where: str) -> str:
    hint = _FORBIDDEN_HINTS.get(key.lower())
    return f"unknown key {go_quote(key)} in {where}" + (f" ({hint})" if hint else "")


def _scalar(node, where: str) -> str | None:
    """Text of a scalar node (None for a YAML null); lists and mappings are an error."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise _Schema(_line(node), f"{where} must be a single value, not {_kind(node)}")
    return None if _is_null(node) else node.value


def _fill(config: ProjectConfig, root) -> None:
    for key, node, line in _mapping(root, "pgmi.yaml"):
        if key == "connection":
            if not _is_null(node):
                config.connection = _connection(node)
        elif key == "params":
            if not _is_null(node):
                config.params = _params(node)
        elif key == "timeout":
            value = _scalar(node, "timeout")
            config.timeout = value.strip() if value else None
        else:
            raise _Schema(line, _unknown(key, "pgmi.yaml"))


def _connection(node) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value_node, line in _mapping(node, "connection"):
        if key not in CONNECTION_KEYS:
            raise _Schema(line, _unknown(key, "connection"))
        value = _scalar(value_node, f"connection.{key}")
        if value is None:
            continue
        if key == "port":
            port = _port(value_node, value)
            if port:
                result["port"] = port
        else:
            result[key] = value
    return result


def _port(node, value: str) -> int:
    """connection.port: a plain YAML integer, 1..65535 (0 = unset, as in the original).

    The original also accepted `5432.9` (truncated) and never range-checked; we accept
    integers only and reject out-of-range ports here (exit 10) rather than in the driver.
    """
    line = _line(node)
    if node.style is not None:
        raise _Schema(line, f"connection.port must be a number, not a quoted string ({go_quote(value)})")
    if not re.fullmatch(r"[-+]?[0-9]+", value):
        raise _Schema(line, f"connection.port must be an integer, got {go_quote(value)}")
    port = int(value)
    if port < 0 or port > 65535:
        raise _Schema(line, f"connection.port must be between 1 and 65535, got {port}")
    return port


def _params(node) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value_node, _ in _mapping(node, "params"):
        value = _scalar(value_node, f"params.{key}")
        result[key] = value or ""  # `key:` (or ~) is the empty string, as in the original
    return result


def write_project_config(project_dir: str | Path, connection: Mapping[str, object]) -> Path:
    """Write `<project_dir>/pgmi.yaml` with a new `connection` block; keep params and timeout.

    Only the known connection keys are written (so `password`, `sslpassword` or a client
    secret in `connection` are dropped: secrets never go to disk here). host, port,
    username, database and sslmode are always written; the rest only when non-empty.
    An existing file that does not load is replaced (the caller asked first). Mode 0600.
    """
    import yaml

    project = Path(project_dir)
    try:
        existing = load_project_config(project)
    except ConfigError:
        existing = None
    block: dict[str, object] = {}
    for key in CONNECTION_KEYS:
        value = connection.get(key)
        if key == "port":
            block[key] = int(value or 0)
        elif key in ("host", "username", "database", "sslmode"):
            block[key] = "" if value is None else str(value)
        elif value not in (None, ""):
            if key == "auth_method" and str(value) not in ("azure", "aws", "google"):
                continue
            block[key] = str(value)
    document: dict[str, object] = {"connection": block}
    if existing and existing.params:
        document["params"] = dict(existing.params)
    if existing and existing.timeout:
        document["timeout"] = existing.timeout
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    path = project / CONFIG_FILE
    temp = project / f".{CONFIG_FILE}.pgmi-tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


# ---- .env (godotenv subset) -------------------------------------------------------------

_ENV_SPACE = " \t\v\f\r\x85\xa0"
_EXPAND = re.compile(r"(\\)?\$(\()?\{?([A-Z0-9_]+)?\}?")


class _EnvSyntax(Exception):
    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def parse_env_text(text: str, source: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse `.env` text (godotenv grammar, config.md §3); ConfigError naming `source:line`.

    KEY=VALUE or KEY: VALUE, optional `export `, `#` comment lines, unquoted values cut at
    a `#` that follows whitespace, 'single' (literal) and "double" (\\n, \\r, \\X escapes)
    quotes that may span lines, and $VAR / ${VAR} expansion (earlier keys of this file,
    then `environ`, else empty) outside single quotes. Last duplicate wins.
    Errors never quote the file's content (it usually holds credentials).
    Unlike godotenv, an unquoted value is cut at the *first* whitespace-preceded `#`
    (godotenv cuts at the last one, keeping `a # b` of `a # b # c`), and anything but a
    comment after a closing quote is an error.
    """
    environ = os.environ if environ is None else environ
    src = text.replace("\r\n", "\n")
    src = src.removeprefix("\ufeff")
    values: dict[str, str] = {}
    pos, n = 0, len(src)

    def line_at(i: int) -> int:
        return src.count("\n", 0, i) + 1

    def expand(value: str) -> str:
        def one(match: re.Match) -> str:
            if match.group(1) or match.group(2):
                return match.group(0)[1:] if match.group(1) else match.group(0)
            name = match.group(3)
            if not name:
                return match.group(0)
            if name in values:
                return values[name]
            return environ.get(name, "")

        return _EXPAND.sub(one, value)

    try:
        while pos < n:
            # skip blank space and comment lines
            if src[pos] in _ENV_SPACE or src[pos] == "\n":
                pos += 1
                continue
            if src[pos] == "#":
                end = src.find("\n", pos)
                pos = n if end < 0 else end + 1
                continue
            start_line = line_at(pos)
            if src.startswith("export ", pos):
                pos += len("export ")
                while pos < n and src[pos] in _ENV_SPACE:
                    pos += 1
            key_start = pos
            while pos < n and (src[pos].isalnum() or src[pos] in "_."):
                pos += 1
            key = src[key_start:pos]
            while pos < n and src[pos] in _ENV_SPACE:
                pos += 1
            if not key or pos >= n or src[pos] not in "=:":
                raise _EnvSyntax(start_line, "expected KEY=VALUE (a key of letters, digits, '_' or '.')")
            pos += 1
            while pos < n and src[pos] in _ENV_SPACE:
                pos += 1
            if pos < n and src[pos] in "'\"":
                quote = src[pos]
                close = pos + 1
                while close < n and not (src[close] == quote and src[close - 1] != "\\"):
                    close += 1
                if close >= n:
                    raise _EnvSyntax(start_line, "unterminated quoted value")
                value = src[pos + 1:close]
                if quote == '"':
                    value = expand(_unescape_double(value))
                pos = close + 1
                # only blank space or a comment may follow on the same line
                while pos < n and src[pos] in _ENV_SPACE:
                    pos += 1
                if pos < n and src[pos] not in "#\n":
                    raise _EnvSyntax(line_at(pos), "unexpected text after the closing quote")
                if pos < n and src[pos] == "#":
                    end = src.find("\n", pos)
                    pos = n if end < 0 else end
            else:
                end = n
                for i in range(pos, n):
                    if src[i] in "\n\r":
                        end = i
                        break
                raw = src[pos:end]
                for i in range(1, len(raw)):
                    if raw[i] == "#" and raw[i - 1] in _ENV_SPACE:
                        raw = raw[:i]
                        break
                value = expand(raw.strip(_ENV_SPACE))
                pos = end
            values[key] = value
    except _EnvSyntax as problem:
        raise ConfigError(f"{source}:{problem.line}: {problem.what}") from None
    return values


def _unescape_double(value: str) -> str:
    r"""Escapes inside "double" quotes: \n and \r become newline / CR, \X becomes X, \$ stays \$.

    `\$` is kept so that the expansion step turns it into a literal `$` (no expansion).
    """
    def one(match: re.Match) -> str:
        char = match.group(1)
        return {"n": "\n", "r": "\r"}.get(char, "\\$" if char == "$" else char)

    return re.sub(r"\\(.)", one, value, flags=re.DOTALL)


def load_dotenv(project_dir: str | Path, environ: MutableMapping[str, str]) -> str | None:
    """Apply `<project_dir>/.env` to `environ` without overriding anything already set.

    All-or-nothing: if the file cannot be read or parsed, nothing is applied and the
    returned warning (for `out.warn`) names only the path -- never the parser's text,
    which would quote credentials. A missing file is silent (None).
    """
    path = Path(project_dir) / DOTENV_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return _dotenv_warning(path)
    try:
        values = parse_env_text(raw.decode("utf-8"), str(path), environ)
    except (UnicodeDecodeError, ConfigError):
        return _dotenv_warning(path)
    for key, value in values.items():
        if key not in environ:  # present-but-empty counts as set
            environ[key] = value
    return None


def _dotenv_warning(path: Path) -> str:
    return (f"{path} could not be parsed, so none of its values were applied.\n"
            "Every line must be KEY=VALUE, a # comment, or blank.")


# ---- deployment parameters --------------------------------------------------------------


def parse_param(arg: str) -> tuple[str, str]:
    """`--param key=value` -> (key, value); split at the first '=', nothing trimmed.

    The empty-key message does not echo the argument (it is all value, maybe a secret).
    """
    key, sep, value = arg.partition("=")
    if not sep:
        raise ConfigError(f"invalid parameter format: --param {go_quote(arg)} is not in key=value format "
                          "(example: --param env=production)")
    if not key:
        raise ConfigError("invalid parameter format: --param has an empty key (expected key=value)")
    return key, value


def parse_params_text(text: str, source: str) -> dict[str, str]:
    """Params-file grammar (session-api §11.3): KEY=VALUE lines, `#` lines, blank lines.

    No export, no inline comments, no expansion, no multi-line values; one pair of
    matching surrounding quotes is removed. ConfigError names the file and line.
    """
    text = text.removeprefix("\ufeff")
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        problem = "invalid format, expected KEY=VALUE" if not sep else "empty key" if not key else ""
        if problem:
            error = ConfigError(f"failed to parse params file '{source}': line {number}: {problem}")
            error.trailer = ["", _PARAMS_FILE_TIP]
            raise error
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load_params_files(paths: Sequence[str]) -> dict[str, str]:
    """Read every `--params-file` in order; later files win. ConfigError names the file."""
    merged: dict[str, str] = {}
    for name in paths:
        try:
            text = Path(name).read_bytes().decode("utf-8")
        except OSError as error:
            raise ConfigError(f"failed to read params file '{name}': {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise ConfigError(f"failed to read params file '{name}': not valid UTF-8 (byte {error.start})") from error
        merged.update(parse_params_text(text, name))
    return merged


def merge_params(
    yaml_params: Mapping[str, str] | None,
    file_params: Mapping[str, str] | None,
    cli_params: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> dict[str, str]:
    """pgmi.yaml < params files < --param, by exact (case-sensitive) key; later --param wins."""
    merged: dict[str, str] = dict(yaml_params or {})
    merged.update(file_params or {})
    pairs = cli_params.items() if isinstance(cli_params, Mapping) else (cli_params or ())
    for key, value in pairs:
        merged[key] = value
    return merged


def validate_params(params: Mapping[str, str]) -> None:
    """Check every key and value before anything connects (session-api §11.4).

    Messages name the key, never the value. Keys that differ only in case are rejected
    here: in the session both would become the same `pgmi.<lower(key)>` setting, and the
    original failed later with an opaque primary-key violation.
    """
    lowered: dict[str, str] = {}
    for key, value in params.items():
        if not _PARAM_KEY.fullmatch(key):
            raise ConfigError(
                f"invalid parameter key '{key}': must start with a letter or underscore and contain only "
                "letters, digits and underscores, 1-63 characters (PostgreSQL identifier limit)")
        nul = value.find("\x00")
        if nul >= 0:
            raise ConfigError(f"invalid value for parameter '{key}': contains NUL byte at offset {nul}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"invalid value for parameter '{key}': not valid UTF-8") from None
        other = lowered.setdefault(key.lower(), key)
        if other != key:
            raise ConfigError(f"parameter keys '{other}' and '{key}' differ only in case; "
                              "parameter names are case-insensitive in the session")


# ---- durations (Go time.ParseDuration / Duration.String) -------------------------------

_UNITS_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
             "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX_NS = (1 << 63) - 1


def parse_duration_ns(text: str) -> int:
    """Go's time.ParseDuration, in integer nanoseconds; ValueError with Go's message."""
    orig, s = text, text
    invalid = ValueError(f"time: invalid duration {go_quote(orig)}")
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        whole, pre = (int(s[:i]) if i else 0), i > 0
        s = s[i:]
        frac, scale, post = 0, 1, False
        if s.startswith("."):
            s = s[1:]
            i = 0
            while i < len(s) and "0" <= s[i] <= "9":
                i += 1
            post = i > 0
            if post:
                frac, scale = int(s[:i]), 10 ** i
            s = s[i:]
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        unit, s = s[:i], s[i:]
        if not unit:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        if unit not in _UNITS_NS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        per = _UNITS_NS[unit]
        total += whole * per + (frac * per) // scale  # Go truncates the fractional part
        if total > _MAX_NS + (1 if negative else 0):
            raise invalid
    if not negative and total > _MAX_NS:
        raise invalid
    return -total if negative else total


def parse_duration(text: str) -> float:
    """Go duration text -> seconds ('300ms' -> 0.3, '1h30m' -> 5400.0, '0' -> 0.0)."""
    return parse_duration_ns(text) / 1e9


def format_duration_ns(ns: int) -> str:
    """Go's Duration.String for integer nanoseconds: '3m0s', '1.5s', '1h0m0s', '250ms'."""
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u == 0:
        return "0s"
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return sign + _decimal(u, 3) + "\u00b5s"
        return sign + _decimal(u, 6) + "ms"
    text = _decimal(u % 60_000_000_000, 9) + "s"
    minutes = u // 60_000_000_000
    if minutes:
        text = f"{minutes % 60}m" + text
        if minutes >= 60:
            text = f"{minutes // 60}h" + text
    return sign + text


def _decimal(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10 ** digits)
    tail = str(frac).rjust(digits, "0").rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def format_duration(seconds: float) -> str:
    """Seconds -> Go duration text (180 -> '3m0s', 1.5 -> '1.5s', 0 -> '0s')."""
    return format_duration_ns(round(seconds * 1e9))


def resolve_timeout(flag_text: str, flag_given: bool, config: ProjectConfig | None) -> float | None:
    """Effective --timeout in seconds; None means no deadline.

    Flag given on the command line > pgmi.yaml `timeout` > the flag's default (3m).
    A bad flag value is a usage error (exit 2); a bad pgmi.yaml value or a negative
    duration is a configuration error (exit 10).
    """
    if flag_given or not (config and config.timeout):
        text = flag_text if flag_given or flag_text else DEFAULT_TIMEOUT
        try:
            seconds = parse_duration(text)
        except ValueError as error:
            raise UsageError(f"invalid argument {go_quote(text)} for \"--timeout\" flag: {error}") from None
    else:
        try:
            seconds = parse_duration(config.timeout)
        except ValueError as error:
            raise ConfigError(f"invalid timeout in pgmi.yaml: {error}") from None
    if seconds < 0:
        raise ConfigError("timeout cannot be negative")
    return None if seconds == 0 else seconds
