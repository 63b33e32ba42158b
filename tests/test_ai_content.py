"""The bundled assistant documents and their content guards.

The guards keep the prose honest against the code: the overview's skill table lists
exactly the shipped skills, every `pg_temp.pgmi_*` object a document names exists in the
generated contract, and every shipped loop over pgmi_plan_view filters is_sql_file.
"""

from __future__ import annotations

import re

import pytest

from pgmilib.ai import content
from pgmilib.ai.contract import INTERNAL_FUNCTIONS, build_contract


def _shipped_documents() -> dict[str, str]:
    """Every markdown file under pgmilib/ai/docs, by relative path."""
    found: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        for entry in node.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".md"):
                found[prefix + entry.name] = entry.read_text(encoding="utf-8")

    walk(content.docs_root(), "")
    return found


DOCS = _shipped_documents()


def test_sixteen_skills_each_with_a_known_scope_and_description():
    skills = content.list_skills()
    assert len(skills) == 16
    assert [s.name for s in skills] == sorted(s.name for s in skills)
    for skill in skills:
        assert skill.scope in content.SCOPES, skill.name
        assert skill.description, skill.name
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", skill.name) and "--" not in skill.name


def test_skill_files_name_themselves_in_front_matter():
    for path, text in DOCS.items():
        if path.startswith("skills/"):
            meta = content.front_matter(text)
            assert meta.get("name") == path.removeprefix("skills/").removesuffix(".md"), path


def test_front_matter_parsing_tolerates_quotes_and_absence():
    assert content.front_matter('---\nname: "x"\ndescription: \'a b\'\nscope: core\n---\nbody') == {
        "name": "x", "description": "a b", "scope": "core"}
    assert content.front_matter("# no front matter\nname: y") == {}


def test_overview_skill_table_lists_exactly_the_shipped_skills():
    overview = content.read_doc("overview.md")
    table = overview[overview.index("## Skills"):]
    table = table[:table.index("\n## ", 3)]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \| ([a-z-]+) \|", table, re.MULTILINE)
    assert sorted(name for name, _ in listed) == [s.name for s in content.list_skills()]
    scopes = {s.name: s.scope for s in content.list_skills()}
    assert all(scopes[name] == scope for name, scope in listed)


def test_skills_table_format():
    table = content.skills_table()
    lines = table.splitlines()
    assert lines[0] == "# Available pgmi Skills"
    assert "pgmi ai skill <name>" in table
    assert "| Skill | Scope | Description |" in lines
    assert lines[-1] == "Total: 16 skills"
    assert "| `pgmi-sql` | core |" in table


def test_every_pgmi_object_named_in_the_docs_exists_in_the_contract():
    contract = build_contract()
    known = ({v["name"] for v in contract["views"]} | {f["name"] for f in contract["functions"]}
             | {t["name"] for t in contract["types"]})
    for path, text in DOCS.items():
        for name in re.findall(r"pg_temp\.(_?pgmi_\w+)", text):
            assert name in known, f"{path} names pg_temp.{name}, which the session API does not have"
        assert not set(re.findall(r"pg_temp\.(\w+)", text)) & INTERNAL_FUNCTIONS, path


def _sql_blocks(text: str) -> list[str]:
    return re.findall(r"```sql\n(.*?)```", text, re.DOTALL)


def test_every_shipped_plan_loop_filters_sql_files():
    loops = 0
    for path, text in DOCS.items():
        for block in _sql_blocks(text):
            for statement in re.findall(r"FOR\s+\w+\s+IN\s+(SELECT.*?)\bLOOP\b", block, re.DOTALL | re.IGNORECASE):
                if "pgmi_plan_view" not in statement:
                    continue
                loops += 1
                assert "is_sql_file" in statement or re.search(r"path\s*=\s*'", statement), (
                    f"{path}: a loop over pgmi_plan_view must filter is_sql_file:\n{statement}")
    assert loops >= 4  # the guard really looked at the canonical loops


def test_plan_loop_guard_catches_an_unfiltered_loop():
    bad = "```sql\nFOR f IN SELECT path, content FROM pg_temp.pgmi_plan_view ORDER BY execution_order LOOP\n```"
    statements = re.findall(r"FOR\s+\w+\s+IN\s+(SELECT.*?)\bLOOP\b", _sql_blocks(bad)[0], re.DOTALL)
    assert statements and "is_sql_file" not in statements[0]


def test_docs_mention_only_real_exit_codes_in_the_debug_table():
    from pgmilib.errors import Exit

    text = content.skill_text("pgmi-debug-deploy")
    table = text[text.index("## 2. Exit code first"):text.index("## 3.")]
    codes = {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    assert codes and codes <= {int(e) for e in Exit}
    assert {10, 11, 13, 14, 15, 16, 130} <= codes


def test_docs_name_only_real_cli_commands_and_deploy_flags():
    from pgmilib.cli.app import build_parser

    parser = build_parser()
    subcommands = set(parser._subparsers._group_actions[0].choices)
    deploy_flags = {opt for action in parser._subparsers._group_actions[0].choices["deploy"]._actions
                    for opt in action.option_strings}
    for path, text in DOCS.items():
        if path.startswith("client/"):
            continue
        for command in re.findall(r"`pgmi ([a-z]+)", text):
            assert command in subcommands, f"{path}: pgmi {command}"
        for line in re.findall(r"pgmi deploy [^`\n]*", text):
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line):
                assert flag in deploy_flags, f"{path}: pgmi deploy {flag}"


def test_unknown_skill_is_a_usage_error_listing_the_skills():
    from pgmilib.errors import Exit, exit_code

    with pytest.raises(Exception) as info:
        content.skill_text("no-such-skill")
    assert exit_code(info.value) == Exit.USAGE
    assert str(info.value).startswith("skill 'no-such-skill' not found. Available skills: advanced-template, ")


def test_advanced_template_skill_is_the_template_reference(run_pgmi):
    readme = content.resource_dir("templates") / "advanced" / "lib" / "README.md"
    assert readme.is_file()
    text = content.skill_text("advanced-template")
    assert text == readme.read_text(encoding="utf-8")
    assert text.startswith("# The framework under `lib/`") and "carries no" not in text
    printed = run_pgmi("ai", "skill", "advanced-template")
    assert printed.returncode == 0 and printed.stdout.rstrip("\n") == text.rstrip("\n")


def test_client_guidance():
    doctrine = content.client_text(None)
    assert "openapi.json" in doctrine
    for language, generator in (("typescript", "openapi-typescript"), ("python", "openapi-python-client"),
                                ("go", "oapi-codegen"), ("csharp", "NSwag"), ("rust", "openapi-generator")):
        assert generator in content.client_text(language)
    other = content.client_text("cobol")
    assert other.startswith(doctrine.rstrip("\n")) and "No built-in guidance for 'cobol'" in other


@pytest.mark.parametrize("argv, needle", [
    (["ai"], "# pgmi — guide for AI coding assistants"),
    (["ai", "skills"], "Total: 16 skills"),
    (["ai", "skill", "pgmi-sql"], "name: pgmi-sql"),
    (["ai", "client", "go"], "oapi-codegen"),
])
def test_cli_documents_go_to_stdout(run_pgmi, argv, needle):
    result = run_pgmi(*argv)
    assert result.returncode == 0, result.stderr
    assert needle in result.stdout
    assert result.stderr == ""


def test_cli_unknown_skill_exit_2(run_pgmi):
    result = run_pgmi("ai", "skill", "nope")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("pgmi: error: skill 'nope' not found. Available skills: ")
    assert "Traceback" not in result.stderr


def test_cli_skill_without_name_exit_2(run_pgmi):
    result = run_pgmi("ai", "skill")
    assert result.returncode == 2 and "needs a skill name" in result.stderr


def test_cli_pager_cat_is_plain_output(run_pgmi):
    result = run_pgmi("ai", "skills", env={"PGMI_PAGER": "cat"})
    assert result.returncode == 0 and "Total: 16 skills" in result.stdout


def test_every_test_event_named_in_the_docs_is_emitted():
    events = set(build_contract()["types"][0]["events"])
    named = set()
    for text in DOCS.values():
        named |= set(re.findall(r"\b((?:suite|fixture|test|teardown)_(?:start|end))\b", text))
    assert named and named <= events
    assert events - {"rollback"} <= named  # the test-architecture skill lists them all


def test_exit_codes_listed_in_the_overview_are_exactly_the_real_ones():
    from pgmilib.errors import Exit

    overview = content.read_doc("overview.md")
    paragraph = overview[overview.index("Exit codes: "):].split("\n\n")[0]
    assert {int(n) for n in re.findall(r"(\d+) [a-z]", paragraph)} == {int(e) for e in Exit}


def test_pip_install_ships_every_document():
    """pyproject's package-data for pgmilib.ai is `docs/**/*.md`: every bundled document must match it."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11: the same parser as a package (requirements-dev.txt)
        import tomli as tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    config = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["package-data"]["pgmilib.ai"] == ["docs/**/*.md"]
    assert {"pgmilib.ai", "pgmilib.mcp"} <= set(config["packages"])
    files = [p for p in (repo / "pgmilib" / "ai" / "docs").rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".md" for p in files)
    assert len(files) == len(DOCS)
