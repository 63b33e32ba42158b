"""pgmi.yaml: strict, text-preserving project configuration.

Why so strict: pgmi.yaml is committed next to the SQL it deploys, so a typo such as
`usernmae:` must fail loudly (exit 10) instead of silently deploying as the wrong user,
and secrets (`password:`) must never find a home there. PyYAML's usual loaders would also
rewrite values (`yes` -> True, `0755` -> 493, `1.10` -> 1.1) and silently keep the last of
two duplicate keys; we compose the YAML node tree with the BaseLoader resolver instead, so
every scalar stays the text the user wrote, duplicates are caught, and every message can
name its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pgmilib.config.files import describe, read_config_bytes
from pgmilib.errors import ConfigError, go_quote
from pgmilib.fileio import atomic_write
from pgmilib.records import field, record

CONFIG_FILE = "pgmi.yaml"

#: Keys allowed in the `connection` block, in the order pgmi writes them.
CONNECTION_KEYS = (
    "host", "port", "username", "database", "sslmode",
    "maintenance_database", "sslcert", "sslkey", "sslrootcert", "auth_method",
    "azure_tenant_id", "azure_client_id", "aws_region", "google_instance",
)
TOP_LEVEL_KEYS = ("connection", "params", "timeout", "targets")
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


@record
class ProjectConfig:
    """What pgmi.yaml says, with every value still as the user wrote it (port as int)."""

    path: Path
    connection: dict[str, object] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    timeout: str | None = None
    #: The `targets:` node as composed (a fleet's list, parsed by pgmilib.fleet.targets); None when absent.
    targets_node: object = None


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
        root = compose_yaml(path, "pgmi.yaml")
    except FileNotFoundError:
        return None
    config = ProjectConfig(path=path)
    if root is None or _is_null(root):
        return config
    try:
        _fill(config, root)
    except _Schema as problem:
        raise ConfigError(f"failed to load pgmi.yaml: {path} line {problem.line}: {problem.message}") from None
    return config


def compose_yaml(path: Path, label: str):
    """The first YAML document of `path` as a node tree (BaseLoader: every scalar stays text).

    FileNotFoundError when absent; ConfigError (`failed to load <label>: ...`, with the line)
    when unreadable, not UTF-8 or not YAML. Shared by pgmi.yaml and fleet targets files.
    """
    try:
        raw = read_config_bytes(path)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ConfigError(f"failed to load {label}: read {path}: {describe(error)}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"failed to load {label}: {path}: not valid UTF-8 (byte {error.start})") from error

    import yaml  # only when there is a file to read (~15 ms of start-up otherwise)

    try:
        _check_depth(text, path, label)
        return next(iter(yaml.compose_all(text, Loader=yaml.BaseLoader)), None)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = ", ".join(p for p in (error.context, error.problem) if p) or "syntax error"
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"failed to load {label}: parse {path}:{where}: {what}") from error
    except yaml.reader.ReaderError as error:  # a NUL or other control byte: one line, with its line number
        line = text.count("\n", 0, error.position) + 1
        raise ConfigError(f"failed to load {label}: parse {path}: line {line}: character #x{error.character:04x} "
                          "is not allowed in YAML") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"failed to load {label}: parse {path}: {' '.join(str(error).split())}") from error


MAX_DEPTH = 64  # pgmi.yaml needs 3 levels; the YAML composer recurses once per level


def _check_depth(text: str, path: Path, label: str) -> None:
    """Refuse absurd nesting before composing (PyYAML's composer would hit the recursion limit).

    Walks the parser's event stream (not recursive) of the first document only. Aliases
    are not expanded by composing and the schema reads scalars only, so an alias bomb
    costs nothing here.
    """
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.BaseLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise ConfigError(f"failed to load {label}: {path} line {line}: "
                                  f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.DocumentEndEvent):
            return


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
    hint = _FORBIDDEN_HINTS.get(key.lower()) or _did_you_mean(key, where)
    return f"unknown key {go_quote(key)} in {where}" + (f" ({hint})" if hint else "")


def _did_you_mean(key: str, where: str) -> str:
    """A typo's closest allowed key; a connection key at the top level points into `connection:`."""
    import difflib

    if where == "pgmi.yaml" and key in CONNECTION_KEYS:
        return f"did you mean connection.{key}? connection settings go under 'connection:'"
    allowed = TOP_LEVEL_KEYS if where == "pgmi.yaml" else CONNECTION_KEYS
    close = difflib.get_close_matches(key.lower(), allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean {go_quote(close[0])}?"
    return "allowed: " + ", ".join(allowed)


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
        elif key == "targets":  # checked by pgmilib.fleet.targets when a fleet deploy uses it
            if not _is_null(node):
                config.targets_node = node
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
    if existing and existing.targets_node is not None:  # a fleet's list, kept as written (styles too)
        key = yaml.ScalarNode("tag:yaml.org,2002:str", "targets")
        targets = yaml.MappingNode("tag:yaml.org,2002:map", [(key, existing.targets_node)])
        text += yaml.serialize(targets, Dumper=yaml.BaseDumper, allow_unicode=True)
    return atomic_write(project / CONFIG_FILE, text, mode=0o600)


