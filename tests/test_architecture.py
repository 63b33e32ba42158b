"""The layout docs/ARCHITECTURE.md describes: imports point one way, no module imports itself in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pgmilib"

#: Each top-level unit of the package and its layer. A module may import its own unit or a
#: strictly lower layer, never a higher or a sibling one.
LAYER = {
    "pgmilib": 0, "errors": 0, "redact": 0, "resources": 0, "sqllex": 0, "fileio": 0, "python_floor": 0,
    "output": 1,
    "config": 2, "conn": 2, "cluster": 2, "project": 2,
    "deploy": 3, "scaffold": 3, "ai": 3,
    "fleet": 4, "mcp": 4,
    "cli": 5,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports() -> dict[str, set[str]]:
    """module -> the pgmilib modules it imports (function-level imports included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pgmilib"):
                submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                deps.update(submodules or [node.module])
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("pgmilib"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pgmilib"


def test_every_unit_has_a_layer():
    assert {_unit(m) for m in _modules()} <= set(LAYER), "add the new package to LAYER (and ARCHITECTURE.md)"


def test_imports_point_down():
    wrong = sorted(f"{m} -> {d}" for m, deps in _imports().items() for d in deps
                   if _unit(m) != _unit(d) and LAYER[_unit(d)] >= LAYER[_unit(m)])
    assert not wrong, "imports must point to a lower layer:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            # a package's __init__ re-exporting its own submodules is not a cycle of logic
            if dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_pg8000_private_attributes_are_touched_in_one_module():
    private = ("_usock", "_backend_key_data", "_client_encoding", "_transaction_status", "_sock")
    offenders = sorted(str(path.relative_to(PACKAGE.parent)) for name, path in _modules().items()
                       if name != "pgmilib.conn.wire"
                       and any(f".{attr}" in path.read_text(encoding="utf-8") for attr in private))
    assert not offenders, f"pg8000 internals belong in pgmilib/conn/wire.py only: {offenders}"
