"""The documentation tools: the same texts `pgmi ai`, `ai skills`, `ai skill` and `ai contract` print."""

from __future__ import annotations

from typing import Any

from pgmilib.ai import content
from pgmilib.errors import PgmiError
from pgmilib.mcp.jsonrpc import shown
from pgmilib.mcp.tools import CallContext, Tool, require

SKILLS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"skills": {"type": "array", "items": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                       "scope": {"type": "string"}, "filePath": {"type": "string"}},
        "required": ["name", "description", "scope", "filePath"],
    }}},
    "required": ["skills"],
}


def ai_overview(arguments: dict[str, Any], context: CallContext) -> str:
    return content.read_doc("overview.md")


def ai_skills(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    return {"skills": [{"name": s.name, "description": s.description, "scope": s.scope or "core",
                        "filePath": s.file_path} for s in content.list_skills()]}


def ai_skill(arguments: dict[str, Any], context: CallContext) -> str:
    require(arguments, "name")
    # A name with control characters or over 200 characters is no skill's: looking up its
    # escaped, shortened form gives the same "not found" answer without echoing it raw.
    try:
        return content.skill_text(shown(arguments["name"]))
    except PgmiError as error:
        # On the command line an unknown skill is a usage error (2); the tool reports it as a
        # general error (1), as the original's MCP server does.
        raise PgmiError(str(error)) from None


def ai_contract(arguments: dict[str, Any], context: CallContext) -> str:
    from pgmilib.ai.contract import contract_json

    return contract_json()


TOOLS = (
    Tool("ai_overview", "pgmi's entry document for assistants: what pgmi is, the session views, a canonical "
         "deploy.sql, the execution contract, the CLI and the list of skills (same as `pgmi ai`).", ai_overview),
    Tool("ai_skills", "List the skills (in-depth guides) with name, scope and description (same as "
         "`pgmi ai skills`).", ai_skills, output_schema=SKILLS_SCHEMA),
    Tool("ai_skill", "The full markdown of one skill, e.g. pgmi-sql or pgmi-debug-deploy (same as "
         "`pgmi ai skill NAME`).", ai_skill,
         input_schema={"type": "object", "properties": {"name": {"type": "string", "description": "skill name"}},
                       "required": ["name"]}),
    Tool("ai_contract", "The session API pgmi installs (views, functions, the test event type, exit codes, "
         "macros, execution contract) as JSON, generated from the SQL it runs (same as `pgmi ai contract`).",
         ai_contract),
)
