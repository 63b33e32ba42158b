"""`pgmi ai setup` / `pgmi ai check`: install pgmi guidance where coding assistants look.

Each assistant has a target root (in the project, or in the home directory with
--global) and a set of files. Every file carries a managed stamp (stamp.py), so a re-run
updates what pgmi wrote, leaves alone what did not change, and refuses to overwrite a
file someone edited by hand unless --force says so.

Functions take `cwd` and `home` explicitly (no os.getcwd() deep inside) so tests can run
them against temporary directories.

Every file is read and written through fileio's rule for directories someone else prepared
(`read_regular` / `write_regular`): regular files only, bounded reads, and in a project
(not --global) nothing outside it, so a CLAUDE.md or .github that links elsewhere, an
AGENTS.md that is a FIFO or a link to /dev/zero is refused with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pgmilib import __version__
from pgmilib.ai import content, stamp
from pgmilib.errors import PgmiError, UsageError
from pgmilib.fileio import read_regular, write_regular
from pgmilib.records import record

ASSISTANTS = ("claude", "agents", "codex", "opencode", "codex-skills", "antigravity", "cursor", "copilot",
              "windsurf", "cline", "gemini")
#: --all: one assistant per distinct target (codex and opencode write the same AGENTS.md as agents).
ALL_TARGETS = ("claude", "agents", "codex-skills", "antigravity", "cursor", "copilot", "windsurf", "cline", "gemini")
SKILL_DIR_ASSISTANTS = ("claude", "codex-skills", "antigravity")

# assistant -> (project root, global root relative to home or None, layout)
_ROOTS: dict[str, tuple[str, str | None]] = {
    "claude": (".claude/skills", ".claude/skills"),
    "codex-skills": (".codex/skills", ".codex/skills"),
    "antigravity": (".agents/skills", None),
    "agents": (".", "."),
    "codex": (".", ".codex"),
    "opencode": (".", ".config/opencode"),
    "gemini": (".", ".gemini"),
    "cursor": (".cursor", None),
    "copilot": (".github", None),
    "windsurf": (".windsurf", None),
    "cline": (".clinerules", None),
}
_SINGLE_FILE = {  # assistant -> (file under its root, wrapper)
    "agents": ("AGENTS.md", "agents-md.md"),
    "codex": ("AGENTS.md", "agents-md.md"),
    "opencode": ("AGENTS.md", "agents-md.md"),
    "gemini": ("GEMINI.md", "agents-md.md"),
    "cursor": ("rules/pgmi.mdc", "cursor-rules.md"),
    "copilot": ("copilot-instructions.md", "agents-md.md"),
    "windsurf": ("rules/pgmi.md", "agents-md.md"),
    "cline": ("pgmi.md", "agents-md.md"),
}
CLAUDE_BEGIN = "<!-- pgmi:begin -->"
CLAUDE_END = "<!-- pgmi:end -->"
CLAUDE_POINTER = "This is a pgmi project: see `.claude/skills/pgmi/` or run `pgmi ai` for how deployments work here."


def resolve_assistants(assistant: str, all_targets: bool, interactive: bool) -> list[str]:
    names = ", ".join(ASSISTANTS)
    if all_targets:
        return list(ALL_TARGETS)
    if not assistant:
        if interactive:
            return ["claude"]
        raise UsageError(f"--assistant is required when not interactive (one of: {names}; or --all)")
    if assistant not in ASSISTANTS:
        raise UsageError(f"unknown --assistant '{assistant}' (one of: {names})")
    return [assistant]


def require_project(cwd: Path) -> None:
    if not (cwd / "deploy.sql").is_file() and not (cwd / "pgmi.yaml").is_file():
        raise PgmiError(f"{cwd} is not a pgmi project (no deploy.sql or pgmi.yaml): run this inside a project, "
                        "or use --global to install for your user")


def target_root(assistant: str, cwd: Path, home: Path, global_: bool) -> Path:
    project_root, global_root = _ROOTS[assistant]
    if not global_:
        return cwd / project_root
    if global_root is None:
        raise UsageError(f"--global is not supported for '{assistant}' (it reads project files only)")
    return home / global_root


def _core() -> str:
    return content.read_doc("setup/core.md").strip()


def _wrap(wrapper: str) -> str:
    text = content.read_doc(f"setup/{wrapper}")
    if "{{CORE}}" not in text:
        raise PgmiError(f"bundled setup/{wrapper} has no {{{{CORE}}}} marker (a packaging bug)")
    return text.replace("{{CORE}}", _core())


def _skill_index() -> str:
    lines = ["", "## Depth files", "", "Read the one that matches the task; each is self-contained.", ""]
    for skill in content.list_skills():
        lines.append(f"- `${{CLAUDE_SKILL_DIR}}/{skill.name}.md` — {skill.description}")
    return "\n".join(lines) + "\n"


def planned_files(assistant: str, root: Path) -> dict[Path, str]:
    """Path -> body (unstamped) of every file the assistant's adapter writes under `root`."""
    if assistant in SKILL_DIR_ASSISTANTS:
        directory = root / "pgmi"
        files = {directory / "SKILL.md": _wrap("claude-skill.md").rstrip("\n") + "\n" + _skill_index()}
        for skill in content.list_skills():
            files[directory / f"{skill.name}.md"] = content.skill_text(skill.name)
        return files
    relative, wrapper = _SINGLE_FILE[assistant]
    return {root / relative: _wrap(wrapper)}


@record
class FileAction:
    path: Path
    action: str  # create | update | overwrite | conflict | keep
    text: str


def _read(path: Path, inside: Path | None) -> str | None:
    data = read_regular(path, inside=inside)
    return None if data is None else data.decode("utf-8", errors="replace")


def _classify(path: Path, body: str, force: bool, inside: Path | None = None) -> FileAction:
    rendered = stamp.stamp(body, __version__)
    text = _read(path, inside)
    if text is None:
        return FileAction(path, "create", rendered)
    existing = stamp.parse(text)
    if existing is None or not existing.valid:
        return FileAction(path, "overwrite" if force else "conflict", rendered)
    if existing.body == stamp.normalise(body):
        return FileAction(path, "keep", rendered)
    return FileAction(path, "update", rendered)


def shown(path: Path, cwd: Path) -> str:
    """Relative to cwd when inside it, else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _write(path: Path, text: str, inside: Path | None) -> None:
    write_regular(path, text, inside=inside, mode=0o644)


_LABELS = {"create": "created", "update": "updated", "overwrite": "overwrote"}


def setup(assistants: list[str], *, cwd: Path, home: Path, global_: bool, dry_run: bool, force: bool,
          report: Callable[[str], None]) -> tuple[int, bool]:
    """Write (or, with dry_run, describe) every planned file. Returns (conflicts, claude written)."""
    conflicts = 0
    claude_written = False
    inside = None if global_ else cwd
    for assistant in assistants:
        root = target_root(assistant, cwd, home, global_)
        for path, body in planned_files(assistant, root).items():
            action = _classify(path, body, force, inside)
            name = shown(path, cwd)
            if action.action == "keep":
                continue
            if action.action == "conflict":
                conflicts += 1
                report(f"{'edited':<10} {name} (hand-edited; re-run with --force to overwrite)")
                continue
            if dry_run:
                report(f"would {action.action} {name}")
                continue
            _write(path, action.text, inside)
            report(f"{_LABELS[action.action]:<10} {name}")
        claude_written = claude_written or assistant == "claude"
    return conflicts, claude_written


def update_claude_md(path: Path) -> bool:
    """Insert or refresh the managed pointer block in CLAUDE.md (inside its directory, the
    project); True when the file changed."""
    block = f"{CLAUDE_BEGIN}\n{CLAUDE_POINTER}\n{CLAUDE_END}\n"
    data = read_regular(path, inside=path.parent)
    try:
        old = None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        raise PgmiError(f"{path.name} is not UTF-8 text; left it alone (the pgmi pointer was not added)") from None
    if old is None:
        new = block
    elif CLAUDE_BEGIN in old:
        start = old.index(CLAUDE_BEGIN)
        end = old.find(CLAUDE_END, start)
        # A begin without an end absorbs the rest of the file: the next run heals it.
        rest = old[end + len(CLAUDE_END):].lstrip("\n") if end != -1 else ""
        new = old[:start] + block + (("\n" + rest) if rest else "")
    else:
        new = old.rstrip("\n") + "\n\n" + block if old.strip() else block
    if new == old:
        return False
    write_regular(path, new, inside=path.parent, mode=None)
    return True


def check(assistant: str, *, cwd: Path, home: Path, global_: bool, report: Callable[[str], None]) -> int:
    """One line per planned file; returns how many are not current."""
    problems = 0
    root = target_root(assistant, cwd, home, global_)
    for path, body in planned_files(assistant, root).items():
        name = shown(path, cwd)
        text = _read(path, None if global_ else cwd)
        if text is None:
            line = f"{'missing':<8} {name}"
        else:
            existing = stamp.parse(text)
            if existing is None or not existing.valid:
                line = f"{'edited':<8} {name} (hand-edited since generation)"
            elif existing.body != stamp.normalise(body):
                line = (f"{'stale':<8} {name} (generated by pgmi {existing.version or 'unknown'}, "
                        f"binary is {__version__})")
            else:
                report(f"{'current':<8} {name} (content is current)")
                continue
        problems += 1
        report(line)
    return problems
