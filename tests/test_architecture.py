"""The layout docs/ARCHITECTURE.md describes: imports point one way, no module imports itself in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pgmilib"

#: Each top-level unit of the package and its layer. A module may import its own unit or a
#: strictly lower layer, never a higher or a sibling one.
LAYER = {
    "records": -1,  # the dataclass subset: imports nothing of pgmi
    "pgmilib": 0, "errors": 0, "redact": 0, "resources": 0, "sqllex": 0, "python_floor": 0, "lean": 0,
    "fileio": 0.5,  # file rules; its refusals are errors.ConfigError
    "output": 1,
    "config": 2, "conn": 2, "server": 2, "project": 2,
    "observe": 2.5,  # reads the server about other sessions: uses config/conn, used by deploy
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


def _raw_imports(path: Path, *, top_level: bool = False) -> set[str]:
    """The module names import statements name (`from pgmilib.deploy import x` -> pgmilib.deploy);
    `top_level`: only those that run while the module itself is imported (not in functions)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in (tree.body if top_level else ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pgmilib"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("pgmilib"))
    return names


def test_no_module_imports_through_its_own_package_init():
    """A package whose __init__ imports its own modules (pgmilib.deploy re-exports `deploy`) must not
    be imported by those modules by its package name: `from pgmilib.deploy import reports` inside
    pgmilib/deploy runs into the half-initialised __init__ (a cycle that works only by import order)."""
    modules = _modules()
    reexporting = {name for name, path in modules.items() if path.name == "__init__.py" and name != "pgmilib"
                   and any(dep.startswith(name + ".") for dep in _raw_imports(path))}
    wrong = sorted(f"{name} imports {package}" for name, path in modules.items() for package in reexporting
                   if name.startswith(package + ".") and package in _raw_imports(path, top_level=True))
    assert not wrong, "import the module itself (from pgmilib.deploy.reports import ...):\n" + "\n".join(wrong)


def test_every_module_imports_on_its_own():
    """Each module imported first, in a fresh set of modules: an import cycle fails here with ImportError."""
    import subprocess
    import sys

    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 'pgmilib' or m.startswith('pgmilib.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as error:\n"
        "        failed.append(f'{name}: {error}')\n"
        "print('\\n'.join(failed))\n"
    )
    names = sorted(n for n in _modules() if not n.startswith("pgmilib.ai.docs"))
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", "modules that cannot be imported first:\n" + result.stdout


#: Modules outside pgmilib/conn/ that may import pg8000, and why.
PG8000_ALLOWED = {
    # Probes a container it started until it answers; server/ sits beside conn/ (same layer), so
    # it cannot borrow conn's connection, and its probe needs no pgmi connection settings.
    "pgmilib.server.docker",
}


def test_pg8000_is_imported_only_by_the_connection_layer():
    """The driver's exception classes are named once (pgmilib/conn/wire.py: SERVER_ERRORS, LOST_ERRORS,
    DRIVER_ERRORS); everything above conn/ catches those names, so each catches the same subset."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith("pgmilib.conn.") or name in PG8000_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            named = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "pg8000" or n.startswith("pg8000.") for n in named):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, "import the driver's names from pgmilib.conn.wire instead:\n" + "\n".join(offenders)


#: The core: what `deploy()` runs. It works for any caller (the CLI, the MCP server, a fleet, a
#: test), so it takes its environment, terminal and approver from the request, never from the process.
CORE_PACKAGES = ("pgmilib.deploy", "pgmilib.project", "pgmilib.conn")
#: Core modules that may read os.environ, and why. Each reads it only when its caller passed no
#: environment (an API caller's `environ=None`); the deploy always passes the run's own copy.
PROCESS_ENV_ALLOWED = {
    "pgmilib.conn.pgpass": "PGPASSFILE and the home directory, as libpq reads them",
    "pgmilib.conn.auth.base": "the cloud providers' own variables (AWS_*, AZURE_*, GOOGLE_*)",
}
_PROCESS_STATE = {("os", "environ"), ("os", "getenv"), ("os", "putenv"), ("os", "unsetenv"),
                  ("sys", "stdin"), ("sys", "stdout"), ("sys", "stderr")}


def test_the_core_reads_no_process_state():
    """No stdin, stdout/stderr or environment in deploy/, project/, conn/: an Output, an approver and
    an `environ` mapping come in with the request (the CLI reads the process once)."""
    offenders = []
    for name, path in sorted(_modules().items()):
        if not name.startswith(CORE_PACKAGES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found = None
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                found = (node.value.id, node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module in ("os", "sys"):
                found = next(((node.module, a.name) for a in node.names if (node.module, a.name) in _PROCESS_STATE),
                             None)
            if found not in _PROCESS_STATE:
                continue
            if found[1] in ("environ", "getenv") and name in PROCESS_ENV_ALLOWED:
                continue
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {'.'.join(found)}")
    assert not offenders, "the core takes these from its caller:\n" + "\n".join(offenders)


def test_no_catch_all_attribute_forwarding_in_the_deploy_core():
    """The session wrappers (the watchdog's guard, a rehearsal, the head retry) forward what they
    forward by name (deploy/execute.py SessionLayer); a `__getattr__` would hide a typo until run time."""
    offenders = sorted(str(path.relative_to(PACKAGE.parent)) for name, path in _modules().items()
                       if name.startswith("pgmilib.deploy") and "def __getattr__" in path.read_text(encoding="utf-8"))
    assert not offenders, f"forward attributes explicitly: {offenders}"


def test_no_run_time_import_of_names_the_newest_python_removes():
    """`importlib.abc.Traversable` warns from 3.12 and is gone in 3.14: annotations only
    (under TYPE_CHECKING), so no supported or coming interpreter ever imports it."""
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level, outside `if TYPE_CHECKING:`
            if isinstance(node, ast.ImportFrom) and node.module == "importlib.abc":
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, f"import importlib.abc under TYPE_CHECKING: {offenders}"
