"""Offline project tools: templates_list, init, metadata_plan, metadata_validate (no database).

Templates come from `pgmilib.scaffold` (catalogue.template_names / describe,
create.create_project); if this build has no scaffold package the two template tools
answer with a structured error instead of failing the session.
"""

from __future__ import annotations

from typing import Any

from pgmilib.errors import PgmiError
from pgmilib.mcp.tools import CallContext, Tool, require

_PATH = {"path": {"type": "string", "description": "project directory"}}

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "total_files": {"type": "integer"},
        "plan": {"type": "array", "items": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "id": {"type": "string"}, "idempotent": {"type": "boolean"},
                           "sort_keys": {"type": "array", "items": {"type": "string"}},
                           "description": {"type": "string"}},
            "required": ["path", "id", "idempotent", "sort_keys", "description"],
        }},
    },
    "required": ["total_files", "plan"],
}
VALIDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"total_files": {"type": "integer"}, "files_with_metadata": {"type": "integer"},
                   "files_without_metadata": {"type": "integer"}, "validation_passed": {"type": "boolean"},
                   "duplicate_ids": {"type": "array", "items": {"type": "string"}}},
    "required": ["total_files", "files_with_metadata", "files_without_metadata", "validation_passed",
                 "duplicate_ids"],
}
TEMPLATES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"templates": {"type": "array", "items": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "bestFor": {"type": "string"}},
        "required": ["name", "description", "bestFor"],
    }}},
    "required": ["templates"],
}
INIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"created": {"type": "boolean"}, "path": {"type": "string"}, "template": {"type": "string"}},
    "required": ["created", "path", "template"],
}


def _scaffold():
    try:
        from pgmilib.scaffold import catalogue, create
    except ImportError:
        raise PgmiError("templates are not available in this build (no pgmilib.scaffold package)") from None
    return catalogue, create


def templates_list(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    catalogue, _ = _scaffold()
    templates = []
    for name in catalogue.template_names():
        description = catalogue.describe(name)
        templates.append({"name": name, "description": description.short, "bestFor": description.best_for})
    return {"templates": templates}


def init(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    require(arguments, "path")
    catalogue, create = _scaffold()
    template = arguments.get("template") or catalogue.DEFAULT_TEMPLATE
    path = create.create_project(template, arguments["path"], arguments.get("name") or None)
    return {"created": True, "path": str(path), "template": template}


def metadata_plan(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    """Exactly what `pgmi metadata plan --json` prints (one builder: `project.reports`)."""
    require(arguments, "path")
    import os

    from pgmilib.project.reports import plan_report
    from pgmilib.project.root import max_file_size_from

    return plan_report(arguments["path"], max_file_size_from(os.environ))


def metadata_validate(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    """Exactly what `pgmi metadata validate --json` prints; duplicates are a result, not an error."""
    require(arguments, "path")
    import os

    from pgmilib.project.reports import validation_report
    from pgmilib.project.root import max_file_size_from

    return validation_report(arguments["path"], max_file_size_from(os.environ))


TOOLS = (
    Tool("templates_list", "List the project templates `init` can scaffold, with a short description and what "
         "each is best for (same as `pgmi templates list`).", templates_list, output_schema=TEMPLATES_SCHEMA),
    Tool("init", "Scaffold a new pgmi project from a template into an empty (or missing) directory (same as "
         "`pgmi init PATH -t TEMPLATE`). The project name defaults to the directory's base name.", init,
         input_schema={"type": "object", "properties": {
             **_PATH, "template": {"type": "string", "description": "template name (default basic)"},
             "name": {"type": "string", "description": "project name (default: the directory's base name)"}},
             "required": ["path"]},
         output_schema=INIT_SCHEMA),
    Tool("metadata_plan", "The execution order of a project's SQL files from their <pgmi-meta> sort keys, offline "
         "(same as `pgmi metadata plan --json PATH`).", metadata_plan,
         input_schema={"type": "object", "properties": _PATH, "required": ["path"]}, output_schema=PLAN_SCHEMA),
    Tool("metadata_validate", "Check a project's <pgmi-meta> blocks and duplicate ids, offline (same as "
         "`pgmi metadata validate --json PATH`).", metadata_validate,
         input_schema={"type": "object", "properties": _PATH, "required": ["path"]}, output_schema=VALIDATE_SCHEMA),
)
