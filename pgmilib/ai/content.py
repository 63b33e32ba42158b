"""Reading the bundled documents: the overview, the skills and the client guidance.

Skills are markdown files with a small YAML-like front matter (name, description, scope).
The front matter is read with three regular expressions rather than a YAML parser: the
files are ours, the keys are flat, and `pgmi ai skills` must not pay for importing yaml.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

from pgmilib.errors import Marker, PgmiError
from pgmilib.records import record
from pgmilib.resources import resource_dir

if TYPE_CHECKING:  # importlib.abc's name warns since 3.12 and is gone in 3.14; annotations are never evaluated
    from importlib.abc import Traversable

SCOPES = ("core", "advanced-template", "contributor")
CLIENT_LANGUAGES = ("typescript", "python", "go", "csharp", "rust")
#: The virtual skill: the advanced template's own API reference, shipped with the template.
ADVANCED_TEMPLATE = "advanced-template"
ADVANCED_TEMPLATE_DESCRIPTION = "framework API reference (lib/README.md)"


def docs_root() -> Traversable:
    return resources.files("pgmilib.ai") / "docs"


def read_doc(relative: str) -> str:
    """Text of `docs/<relative>` (e.g. "overview.md", "client/go.md")."""
    node = docs_root()
    for part in relative.split("/"):
        node = node / part
    return node.read_text(encoding="utf-8")


@record(frozen=True)
class Skill:
    name: str
    description: str
    scope: str
    file_path: str  # where the text comes from, relative to the bundle ("skills/pgmi-sql.md")


_FIELD = {key: re.compile(rf"^{key}:\s*['\"]?(.*?)['\"]?\s*$", re.MULTILINE) for key in ("name", "description", "scope")}


def front_matter(text: str) -> dict[str, str]:
    """name/description/scope from a leading `---` ... `---` block ({} when there is none)."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    block = text[3:end] if end != -1 else ""
    found = {}
    for key, pattern in _FIELD.items():
        match = pattern.search(block)
        if match:
            found[key] = match.group(1)
    return found


def _skill_files() -> dict[str, Traversable]:
    """Stem -> file for `skills/<name>.md` and `skills/<name>/SKILL.md` (the former wins)."""
    found: dict[str, Traversable] = {}
    for entry in (docs_root() / "skills").iterdir():
        if entry.is_dir() and (entry / "SKILL.md").is_file():
            found.setdefault(entry.name, entry / "SKILL.md")
        elif entry.name.endswith(".md") and entry.is_file():
            found[entry.name[:-3]] = entry
    return found


def list_skills() -> list[Skill]:
    """Every skill, the virtual advanced-template one included, sorted by name."""
    skills = []
    for stem, entry in _skill_files().items():
        meta = front_matter(entry.read_text(encoding="utf-8"))
        relative = f"skills/{stem}.md" if entry.name.endswith(f"{stem}.md") else f"skills/{stem}/SKILL.md"
        skills.append(Skill(meta.get("name") or stem, meta.get("description", ""), meta.get("scope", ""), relative))
    skills.append(Skill(ADVANCED_TEMPLATE, ADVANCED_TEMPLATE_DESCRIPTION, ADVANCED_TEMPLATE,
                        "templates/advanced/lib/README.md"))
    return sorted(skills, key=lambda s: s.name)


def advanced_template_reference() -> str:
    """The advanced template's lib/README.md: the framework's API reference, shipped with the template."""
    return (resource_dir("templates") / "advanced" / "lib" / "README.md").read_text(encoding="utf-8")


def skill_text(name: str) -> str:
    """Full markdown of one skill; unknown name -> exit 2, listing the known ones."""
    if name == ADVANCED_TEMPLATE:
        return advanced_template_reference()
    files = _skill_files()
    if name not in files:
        known = ", ".join(s.name for s in list_skills())
        # Exit 2 like a usage error, but worded as the spec has it (no "usage error:" prefix).
        raise PgmiError(f"skill '{name}' not found. Available skills: {known}", markers=(Marker.USAGE,))
    return files[name].read_text(encoding="utf-8")


def skills_table() -> str:
    """The `pgmi ai skills` listing: a markdown table, sorted by name, with the total."""
    skills = list_skills()
    lines = ["# Available pgmi Skills", "", "Run `pgmi ai skill <name>` to read one.", "",
             "| Skill | Scope | Description |", "|-------|-------|-------------|"]
    for skill in skills:
        description = skill.description or "(no description)"
        lines.append(f"| `{skill.name}` | {skill.scope or 'core'} | {description} |")
    lines += ["", f"Total: {len(skills)} skills"]
    return "\n".join(lines) + "\n"


def client_text(language: str | None) -> str:
    """`pgmi ai client [lang]`: the doctrine, a language's guidance, or the doctrine plus a note."""
    doctrine = read_doc("client/doctrine.md")
    if not language:
        return doctrine
    if language in CLIENT_LANGUAGES:
        return read_doc(f"client/{language}.md")
    return (doctrine.rstrip("\n") + "\n\n---\n\n"
            f"No built-in guidance for '{language}'. Any OpenAPI client generator for that language, pointed at "
            "the application's `GET /openapi.json`, gives you the endpoint methods; write only the small "
            "transport core (base URL, Bearer token, problem+json errors) by hand.\n")
