"""The template catalogue: names come from the bundled `templates/` directories, texts from here.

A template is any directory under `templates/` (plain files there, like README.md, are not
templates). Listing order is by recommendation (basic, advanced, then the rest by name), not
alphabetical: the first entry is the one to start with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgmilib.records import record
from pgmilib.resources import resource_dir

if TYPE_CHECKING:  # importlib.abc's name warns since 3.12 and is gone in 3.14; annotations are never evaluated
    from importlib.abc import Traversable

#: The template `pgmi init` and the MCP `init` tool use when none is named.
DEFAULT_TEMPLATE = "basic"


@record(frozen=True)
class Description:
    short: str
    long: str = ""
    structure: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    best_for: str = ""


DESCRIPTIONS: dict[str, Description] = {
    "basic": Description(
        short="Linear migrations, minimal structure",
        long=(
            "A small starter to learn pgmi with. deploy.sql runs the files in migrations/ in name\n"
            "order, reads project.json as data, seeds a development administrator unless env is\n"
            "production, and commits only after the tests in __test__/ pass. No metadata, no\n"
            "tracking tables, no libraries: everything it does is on one screen of deploy.sql."
        ),
        structure=(
            "deploy.sql", "project.json", "pgmi.yaml", "README.md",
            "migrations/", "  001_users.sql", "  002_user_crud.sql",
            "__test__/", "  _setup.sql", "  test_user_crud.sql",
        ),
        features=(
            "migrations run in filename order, re-runnable on every deploy",
            "--param env=production skips the development seed",
            "non-SQL data through pgmi_source_view (project.json)",
            "tests gate the COMMIT via CALL pgmi_test()",
            "optional apply-once ledger, explained in deploy.sql comments",
        ),
        best_for="Start here. Small, explicit, works on any managed PostgreSQL provider.",
    ),
    "advanced": Description(
        short="Reference app: SQL-native REST/RPC/MCP, multi-tenant RLS, audit",
        long=(
            "A complete application written in SQL, meant to be read, trimmed and owned (not a\n"
            "framework). Files carry <pgmi-meta> sort keys; a script ledger runs apply-once files\n"
            "once and idempotent files every time; an owner/admin/api/customer role hierarchy with\n"
            "least privilege; API keys stored only as hashes; REST, RPC and MCP entry points that\n"
            "route through one api.handler registry; row-level security on tenant tables.\n"
            "Needs PostgreSQL 13 or newer with the hstore contrib extension, nothing optional (no\n"
            "XML, ICU, lz4, OpenSSL): it runs on the embedded server --ephemeral starts, too.\n"
            "More infrastructure, not a higher safety tier."
        ),
        structure=(
            "deploy.sql", "pgmi.yaml", "session.json", "README.md", "ARCHITECTURE.md",
            "lib/", "  README.md", "  core/", "  common/", "  api/", "membership/", "api/", "tools/",
        ),
        features=(
            "<pgmi-meta> sortKeys order the phases",
            "script-UUID ledger in internal.deployment_script (apply-once vs idempotent)",
            "role hierarchy owner -> admin -> api -> customer, least privilege",
            "API keys (SHA-256 hashed, never stored in clear)",
            "REST/RPC/MCP routing via the api.handler registry (MCP tools, resources, prompts)",
            "RLS on membership tables",
            "inbound message queue (at-least-once, retries, dead letters), admin API and stats views",
            "HTTP helpers (content negotiation, paging, path templates, WWW-Authenticate)",
            "tools/mcp_gateway.py: the SQL MCP handlers over stdio (Python + psql)",
            "no superuser, no event trigger; needs CREATEROLE and CREATE EXTENSION hstore",
        ),
        best_for="SQL-native application stack: scaffold it, read it, trim it.",
    ),
}

_RANK = {"basic": 0, "advanced": 1}


def templates_root() -> Traversable:
    return resource_dir("templates")


def template_names() -> list[str]:
    """Names of the bundled templates, in recommendation order."""
    names = [entry.name for entry in templates_root().iterdir()
             if entry.is_dir() and not entry.name.startswith((".", "_"))]
    return sorted(names, key=lambda n: (_RANK.get(n, 2), n))


def template_dir(name: str) -> Traversable | None:
    """The directory of template `name`, or None if there is no such template."""
    return templates_root() / name if name in template_names() else None


def describe(name: str) -> Description:
    return DESCRIPTIONS.get(name, Description(short="(no description)"))
