"""Fleet targets: a `targets:` list in a targets file (`--targets FILE`) or in pgmi.yaml.

The same strictness as pgmi.yaml, with its own helpers (pgmilib.config.project_file): the
YAML is composed with the BaseLoader resolver, so values stay the text written, unknown and
duplicate keys are errors naming the line, and a connection block accepts exactly the keys
of pgmi.yaml's `connection:` (never a password). Each entry::

    targets:
      - name: tenant-a                      # unique; letters, digits, '.', '_', '-'
        connection: postgresql://deploy@db1.internal/tenant_a   # a connection string, or
      - name: tenant-b
        connection: {host: db2.internal, database: tenant_b}    # a pgmi.yaml-style block
        params: {plan: gold}                # merged over pgmi.yaml's params

A block must name its `database`: with none, every target would fall back to the same
$PGDATABASE, and a fleet would deploy N times into one database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pgmilib.config import project_file as pf
from pgmilib.errors import ConfigError, go_quote
from pgmilib.records import field, record

TARGET_KEYS = ("name", "connection", "params")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@record(frozen=True)
class Target:
    """One database of a fleet: a connection string or a connection block, and its own params."""

    name: str
    connection: str = ""  # a connection string (URI or key=value); '' when `block` is used
    block: Mapping[str, object] | None = None  # pgmi.yaml-style connection keys
    params: Mapping[str, str] = field(default_factory=dict)
    line: int = 0  # where the entry starts in its file (for messages)


def load_targets_file(path: str | Path) -> list[Target]:
    """Read a targets file (`--targets FILE`): a mapping with one key, `targets:`."""
    path = Path(path)
    label = "targets file"
    try:
        root = pf.compose_yaml(path, label)
    except FileNotFoundError:
        raise ConfigError(f"failed to load {label}: {path}: no such file (--targets)") from None
    try:
        if root is None or pf._is_null(root):
            raise pf._Schema(1, "the file is empty; it needs a `targets:` list")
        node = None
        for key, value, line in pf._mapping(root, label):
            if key != "targets":  # not pf._unknown: its hints list pgmi.yaml's keys, which do not belong here either
                raise pf._Schema(line, f"unknown key {go_quote(key)} in {label}: only `targets:` belongs here")
            node = value
        if node is None:
            raise pf._Schema(pf._line(root), "no `targets:` list")
        return parse_targets(node)
    except pf._Schema as problem:
        raise ConfigError(f"failed to load {label}: {path} line {problem.line}: {problem.message}") from None


def targets_from_project(config: pf.ProjectConfig) -> list[Target]:
    """The `targets:` list of pgmi.yaml ([] when it has none)."""
    if config.targets_node is None:
        return []
    try:
        return parse_targets(config.targets_node)
    except pf._Schema as problem:
        raise ConfigError(f"failed to load pgmi.yaml: {config.path} line {problem.line}: {problem.message}") from None


def parse_targets(node: object) -> list[Target]:
    """The entries of a `targets:` node; raises project_file._Schema with the line."""
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        raise pf._Schema(pf._line(node), f"targets must be a list, not {pf._kind(node)}")
    if not node.value:
        raise pf._Schema(pf._line(node), "targets is an empty list")
    seen: dict[str, int] = {}
    targets = []
    for entry in node.value:
        target = _target(entry)
        if target.name in seen:
            raise pf._Schema(target.line, f"duplicate target name {go_quote(target.name)} "
                                          f"(first defined at line {seen[target.name]})")
        seen[target.name] = target.line
        targets.append(target)
    return targets


def _target(node: object) -> Target:
    import yaml

    line = pf._line(node)
    values: dict[str, object] = {}
    for key, value, key_line in pf._mapping(node, "a target"):
        if key not in TARGET_KEYS:
            raise pf._Schema(key_line, pf._unknown(key, "a target") + " (allowed: name, connection, params)")
        values[key] = value
    name_node = values.get("name")
    name = pf._scalar(name_node, "name") if name_node is not None else None
    if not name:
        raise pf._Schema(line, "a target needs a `name:`")
    if not _NAME.fullmatch(name):
        raise pf._Schema(pf._line(name_node), f"target name {go_quote(name)} must be 1-63 letters, digits, "
                                              "'.', '_' or '-', starting with a letter or digit")
    where = f"target {go_quote(name)}"
    conn_node = values.get("connection")
    if conn_node is None or pf._is_null(conn_node):
        raise pf._Schema(line, f"{where} needs a `connection:` (a connection string or a block)")
    connection, block = "", None
    if isinstance(conn_node, yaml.MappingNode):
        block = pf._connection(conn_node)
        if not block.get("database"):
            raise pf._Schema(pf._line(conn_node), f"{where}: its connection block needs a `database:`")
    else:
        connection = pf._scalar(conn_node, f"{where} connection") or ""
    params_node = values.get("params")
    params = pf._params(params_node) if params_node is not None and not pf._is_null(params_node) else {}
    return Target(name=name, connection=connection, block=block, params=params, line=line)
