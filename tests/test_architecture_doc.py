"""docs/ARCHITECTURE.md against the code: the module map is complete, every name it uses is defined.

- Every module under pgmilib/ has a line in the ```modules block, and every line names a module
  that exists (`deploy/pipeline.py`; a package is written `deploy/` for its __init__.py).
- Every code reference resolves to a definition found with `ast` (nothing is imported):
  `function()` and `module.name` spans, `Class.member`, CamelCase class names, and `name(` in the
  module map's descriptions. A bare `name()` may also be a function the SQL in sql/ defines or calls. A module may be named by the tail of its dotted path
  (`dbadmin.open_target()` is pgmilib.deploy.dbadmin's).
- Every file path it names (sql/, pgmilib/, tests/, docs/, bench/) exists.

Failure messages name the line to add, remove or rename, so the map can be updated right after
a merge that moved modules.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "pgmilib"
DOC = REPO / "docs" / "ARCHITECTURE.md"
#: Roots of dotted names that are not pgmi's (the standard library, the driver, build tools).
EXTERNAL = {"os", "sys", "argparse", "pg8000", "ssl", "signal", "shiv", "json", "socket", "threading"}


@dataclass
class Module:
    names: set[str] = field(default_factory=set)  # top-level definitions, assignments and imports
    classes: dict[str, set[str]] = field(default_factory=dict)  # class -> its members


def _members(node: ast.ClassDef) -> set[str]:
    found = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            found.add(item.target.id)
        elif isinstance(item, ast.Assign):
            found.update(t.id for t in item.targets if isinstance(t, ast.Name))
    for sub in ast.walk(node):  # self.x = ... in any method
        targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(sub, ast.AnnAssign) else []
        found.update(t.attr for t in targets
                     if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self")
    return found


def _index() -> dict[str, Module]:
    """Dotted module name relative to pgmilib ("" for the package itself) -> what it defines."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        module = Module()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                module.names.add(node.name)
            elif isinstance(node, ast.ClassDef):
                module.names.add(node.name)
                module.classes[node.name] = _members(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module.names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                module.names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                module.names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        modules[name] = module
    return modules


MODULES = _index()
CLASSES: dict[str, set[str]] = {}
for _m in MODULES.values():
    for _c, _members_of in _m.classes.items():
        CLASSES.setdefault(_c, set()).update(_members_of)
DEFINED = {n for m in MODULES.values() for n in m.names} | {n for s in CLASSES.values() for n in s}
#: Functions and procedures the SQL in sql/ defines or calls (`pgmi_test()`, `clock_timestamp()`).
SQL_CALLS = {m.group(1).lower() for p in (REPO / "sql").glob("*.sql")
             for m in re.finditer(r"([A-Za-z_]\w*)\s*\(", p.read_text(encoding="utf-8"))}


def unresolved(ref: str) -> str | None:
    """Why `ref` (a dotted name, no call parentheses) names nothing in pgmilib; None when it resolves."""
    parts = ref.split(".")
    if parts[0] in EXTERNAL:
        return None
    if parts[0] == "pgmilib":
        parts = parts[1:]
        if not parts:
            return None
    for k in range(len(parts), 0, -1):
        tail = ".".join(parts[:k])
        candidates = [name for name in MODULES if name == tail or name.endswith("." + tail)]
        if not candidates:
            continue
        rest = parts[k:]
        if not rest:
            return None
        for name in candidates:
            module = MODULES[name]
            if rest[0] not in module.names:
                continue
            if len(rest) == 1:
                return None
            members = module.classes.get(rest[0], CLASSES.get(rest[0]))
            if members is not None and rest[1] in members:
                return None
        shown = " or ".join("pgmilib." + c if c else "pgmilib" for c in candidates)
        return f"{shown} defines no {'.'.join(rest)!r}"
    if parts[0] in CLASSES:
        if len(parts) == 1 or parts[1] in CLASSES[parts[0]]:
            return None
        return f"class {parts[0]} has no member {parts[1]!r}"
    if len(parts) == 1 and (parts[0] in DEFINED or parts[0].lower() in SQL_CALLS):
        return None
    return f"no module, class or function {parts[0]!r} in pgmilib"


# ---- reading the document -----------------------------------------------------------------

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`\n]+)`")
_CALL = re.compile(r"([A-Za-z_][\w.]*)\(")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_CLASS = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")
_FILE_SUFFIXES = (".sql", ".py", ".md", ".yaml", ".yml", ".env", ".json", ".toml", ".conf", ".xml", ".txt", ".psql")
_PATH = re.compile(r"(?<![\w/.-])((?:pgmilib|tests|docs|bench|sql|templates|examples)/[\w/.*-]*[\w*/])")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def module_map(text: str) -> list[tuple[int, str, str]]:
    """(line, entry, description) of each line of the ```modules block."""
    blocks = [m for m in _FENCE.finditer(text) if m.group(1) == "modules"]
    assert len(blocks) == 1, "docs/ARCHITECTURE.md needs exactly one ```modules block (the module map)"
    start = _line_of(text, blocks[0].start(2))
    entries = []
    for i, line in enumerate(blocks[0].group(2).splitlines()):
        if line.strip():
            entry, _, description = line.strip().partition(" ")
            entries.append((start + i, entry, description.strip()))
    return entries


def references(text: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every code reference outside code blocks, and of calls in the map."""
    found = []
    prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in _SPAN.finditer(prose):
        body, line = span.group(1), _line_of(prose, span.start())
        if " " in body or "/" in body or body.startswith(("-", ".")):
            continue  # a command line, SQL, a flag, a path (checked apart) or a file name
        call = _CALL.match(body)
        name = call.group(1) if call else body
        if name.endswith(_FILE_SUFFIXES) or not name:
            continue
        if call or _DOTTED.fullmatch(name) or _CLASS.fullmatch(name):
            found.append((line, name))
    for line, _entry, description in module_map(text):
        plain = _SPAN.sub(lambda m: "" if " " in m.group(1) else m.group(1), description)
        found += [(line, m.group(1).rstrip(".")) for m in _CALL.finditer(plain)]
    return found


# ---- the tests ----------------------------------------------------------------------------

def _entry(module: str) -> str:
    parts = module.split(".") if module else []
    return "__init__.py" if not parts else "/".join(parts) + ("/" if (PACKAGE.joinpath(*parts)).is_dir() else ".py")


def test_every_module_of_the_package_is_in_the_module_map():
    listed = [entry for _line, entry, _d in module_map(_text())]
    missing = [f"  {_entry(m):<30}<its job in a few words>" for m in sorted(MODULES) if _entry(m) not in listed]
    assert not missing, ("docs/ARCHITECTURE.md's module map (the ```modules block) has no line for these modules; "
                         "add:\n" + "\n".join(missing))


def test_every_line_of_the_module_map_names_a_module_that_exists():
    entries = module_map(_text())
    known = {_entry(m) for m in MODULES}
    stale = [f"  line {line}: {entry} (remove or rename it)" for line, entry, _d in entries if entry not in known]
    seen: set[str] = set()
    twice = [entry for _l, entry, _d in entries if entry in seen or seen.add(entry)]
    empty = [f"  line {line}: {entry}" for line, entry, description in entries if not description]
    assert not stale, "docs/ARCHITECTURE.md's module map lists modules that do not exist:\n" + "\n".join(stale)
    assert not twice, f"listed twice in the module map: {twice}"
    assert not empty, "module map lines without a description:\n" + "\n".join(empty)


def test_every_name_the_document_uses_is_defined():
    text = _text()
    wrong = [f"  line {line}: `{name}`: {why}" for line, name in references(text)
             for why in [unresolved(name)] if why]
    assert not wrong, "docs/ARCHITECTURE.md names code that does not exist (rename or remove):\n" + "\n".join(wrong)


def test_the_example_imports_what_the_package_exports():
    wrong = []
    for block in _FENCE.finditer(_text()):
        if block.group(1) != "python":
            continue
        for node in ast.walk(ast.parse(block.group(2))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pgmilib"):
                wrong += [f"from {node.module} import {a.name}: {why}" for a in node.names
                          for why in [unresolved(f"{node.module}.{a.name}")] if why]
    assert not wrong, "docs/ARCHITECTURE.md's example:\n" + "\n".join(wrong)


def test_every_file_the_document_names_exists():
    text = _text()
    missing = [f"  line {_line_of(text, m.start())}: {m.group(1)}" for m in _PATH.finditer(text)
               if not list(REPO.glob(m.group(1).rstrip("/")))]
    assert not missing, "docs/ARCHITECTURE.md names files that do not exist:\n" + "\n".join(missing)


def test_every_sql_file_is_mentioned_or_loaded_by_a_documented_module():
    """Each sql/ file appears in the document, or is read by a module the map lists (so its job is findable)."""
    text = _text()
    sources = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    orphans = [p.name for p in sorted((REPO / "sql").glob("*.sql")) if p.name not in text and p.name not in sources]
    assert not orphans, f"sql/ files that neither the document nor any module names: {orphans}"


# ---- the checker itself ---------------------------------------------------------------------

@pytest.mark.parametrize("ref", [
    "deploy.pipeline.deploy", "dbadmin.open_target", "config.load_dotenv", "testing.TestEvents.on_notice",
    "LiveConnection.cancel", "DeployRequest.project", "Watchdog.deadline", "pgmilib.cli.main", "os.environ",
    "conn.wire.DRIVER_ERRORS", "retry.HeadRetry", "Output.data", "pgmi_test",
])
def test_the_resolver_finds_real_definitions(ref):
    assert unresolved(ref) is None


@pytest.mark.parametrize(("ref", "why"), [
    ("testing.expand_everything", "defines no 'expand_everything'"),
    ("deploy.nowhere.run", "defines no 'nowhere.run'"),
    ("LiveConnection.teleport", "has no member 'teleport'"),
    ("out.data", "no module, class or function 'out'"),
])
def test_the_resolver_names_what_is_missing(ref, why):
    assert why in (unresolved(ref) or "")


def test_references_are_read_from_spans_and_the_map():
    text = ("`a.b()` and `Foo.bar` and `BigThing` and `pgmi deploy` and `--json` and `x.sql` and `lower`\n"
            "```modules\nx.py   does y() and `pgmi z()`\n```\n")
    assert references(text) == [(1, "a.b"), (1, "Foo.bar"), (1, "BigThing"), (3, "y")]
