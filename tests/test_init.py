"""`pgmi init` rules and the shipped templates' static guarantees (no database needed).

The rules: refuse a non-empty target and leave it untouched, substitute
{{PROJECT_NAME}} (JSON-escaped inside .json), never overwrite pgmi.yaml/.env, print the
tree on stdout. The template checks: the expected shape, no stray files, one gated transaction.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from projects import run_cli

from pgmilib.errors import PgmiError, UsageError
from pgmilib.scaffold import create
from pgmilib.scaffold.catalogue import template_names

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for directories)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# ---- the rules ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["myapp", 'my"app', "my\\app", "日本語プロジェクト", "my-app-🚀"])
def test_project_name_is_json_escaped_in_json_files(tmp_path, name):
    target = tmp_path / "t"
    create.create_project("basic", target, name)
    assert json.loads((target / "project.json").read_text(encoding="utf-8"))["app_name"] == name
    assert (target / "README.md").read_text(encoding="utf-8").startswith(f"# {name}\n")  # raw elsewhere


def test_placeholder_never_survives(tmp_path):
    for template in template_names():
        target = tmp_path / template
        create.create_project(template, target)
        leftovers = [str(p) for p in target.rglob("*") if p.is_file() and "{{PROJECT_NAME}}" in p.read_text()]
        assert leftovers == []


@pytest.mark.parametrize("target,expected", [("a/b/myproj", "myproj"), ("myproj/", "myproj")])
def test_project_name_is_the_base_name(target, expected):
    assert create.project_name(target) == expected


def test_project_name_of_dot_is_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert create.project_name(".") == tmp_path.name
    assert create.project_name("..") == tmp_path.parent.name


def test_refused_target_is_left_untouched(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / ".hidden").write_text("")
    (target / "pgmi.yaml").write_text("timeout: 1m\n")
    before = snapshot(target)
    with pytest.raises(UsageError) as caught:
        create.create_project("basic", target)
    assert caught.value.message == f'usage error: directory "{target}" is not empty (blocking: [.hidden notes.txt])'
    assert "new directory" in caught.value.trailer[0]
    assert snapshot(target) == before


def test_a_subdirectory_blocks_too(tmp_path):
    (tmp_path / "t" / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"blocking: \[sub\]"):
        create.create_project("basic", tmp_path / "t")


def test_target_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UsageError, match="exists but is not a directory"):
        create.create_project("basic", target)
    assert target.read_text() == "x"


def test_unknown_template_lists_the_available_ones(tmp_path):
    with pytest.raises(UsageError) as caught:
        create.create_project("fancy", tmp_path / "t")
    assert caught.value.message == 'usage error: unknown template "fancy" (available: [basic advanced])'
    assert not (tmp_path / "t").exists()


def test_unwritable_target(tmp_path):
    """mkdir fails below a regular file (for every user, root included) and, for non-root
    users, inside a read-only directory: one-line error naming the path, nothing written."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(PgmiError, match=r'^cannot write ".*blocker/app": Not a directory$'):
        create.create_project("basic", blocker / "app")
    if os.geteuid() != 0:  # root ignores directory permissions; the case above still ran
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(PgmiError, match=r'^cannot write ".*ro/app": Permission denied$'):
                create.create_project("basic", parent / "app")
        finally:
            parent.chmod(0o755)


def test_managed_files_are_kept_byte_for_byte(tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    (target / "pgmi.yaml").write_bytes(b"# mine\nconnection:\n  database: keepme\n")
    (target / ".env").write_bytes(b"PGPASSWORD=secret\n")
    logged: list[str] = []
    create.create_project("basic", target, log=logged.append)
    assert (target / "pgmi.yaml").read_bytes() == b"# mine\nconnection:\n  database: keepme\n"
    assert (target / ".env").read_bytes() == b"PGPASSWORD=secret\n"
    assert "Skipping existing: pgmi.yaml" in logged
    assert (target / "deploy.sql").is_file()


def test_file_modes(tmp_path):
    create.create_project("basic", tmp_path / "t")
    assert stat.S_IMODE((tmp_path / "t" / "migrations").stat().st_mode) & 0o777 == 0o755 & ~_umask()
    assert stat.S_IMODE((tmp_path / "t" / "deploy.sql").stat().st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_tree_lines(tmp_path):
    root = create.create_project("basic", tmp_path / "t")
    lines = create.tree_lines(root)
    assert lines[0] == f"{root}/"
    assert "├── __test__/" in lines and "│   ├── _setup.sql" in lines and "│   └── test_user_crud.sql" in lines
    assert lines[-1] == "└── project.json"


# ---- the command -------------------------------------------------------------------------

def test_cli_init_prints_the_tree_and_next_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["init", "demo", "-t", "basic"], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"{tmp_path / 'demo'}/"
    assert "Wrote demo (basic template)." in err
    assert "pgmi deploy demo -d mydb" in err and "pgmi ai setup" in err
    assert "CREATEROLE" not in err


def test_cli_init_advanced_warns_about_managed_clouds(tmp_path, capsys):
    code, _out, err = run_cli(["init", str(tmp_path / "adv"), "--template", "advanced"], capsys)
    assert code == 0
    assert "CREATEROLE" in err and "CREATE EXTENSION hstore" in err and "pgcrypto" not in err


@pytest.mark.parametrize("argv,message", [
    (["init", "{dir}", "-t", "nope"], 'unknown template "nope"'),
    (["init", "{busy}"], "is not empty"),
    (["init", "{file}"], "exists but is not a directory"),
    (["init", "a", "b"], "unrecognized arguments"),
])
def test_cli_init_bad_input_exits_2(tmp_path, capsys, argv, message):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    (tmp_path / "file").write_text("")
    argv = [a.format(dir=tmp_path / "new", busy=tmp_path / "busy", file=tmp_path / "file") for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("pgmi: error: usage error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_verbose_lists_every_file(tmp_path, capsys):
    code, _out, err = run_cli(["init", str(tmp_path / "v"), "-t", "basic", "-v"], capsys)
    assert code == 0
    assert "[VERBOSE] Created file: migrations/001_users.sql" in err


def test_non_interactive_without_template_uses_basic(tmp_path):
    """Through a pipe (not a terminal) there is no wizard even without -t."""
    result = subprocess.run([sys.executable, str(REPO / "pgmi.py"), "init", "p"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "migrations" / "001_users.sql").is_file()


# ---- the templates themselves ----------------------------------------------------------------

def test_every_template_directory_is_listed():
    assert template_names() == ["basic", "advanced"]


@pytest.mark.parametrize("template", ["basic", "advanced"])
def test_template_shape(template):
    root = TEMPLATES / template
    deploy = (root / "deploy.sql").read_text()
    assert "pg_temp.pgmi" in deploy and "$$" in deploy and "RAISE" in deploy
    assert (root / "README.md").read_text().strip()
    for path in root.rglob("*"):
        assert not (path.is_dir() and path.name.startswith(".")), path
        assert path.name not in (".DS_Store", "Thumbs.db") and not path.name.endswith("~"), path
        if path.suffix == ".sql":
            assert re.search(r"\b(SELECT|CREATE|INSERT|DO)\b", path.read_text()), path
    required = ["migrations"] if template == "basic" else ["api", "lib", "lib/api", "lib/core", "lib/common"]
    assert all((root / d).is_dir() for d in required)


@pytest.mark.parametrize("template", ["basic", "advanced"])
def test_deploy_sql_is_one_gated_transaction_with_nothing_after_commit(template):
    """Split at top-level transaction terminators: one unit, ending in COMMIT, with the test gate
    and the DONE banner inside (a statement after COMMIT would make --rehearse refuse the script)."""
    from pgmilib.sqllex import split_units

    units = split_units((TEMPLATES / template / "deploy.sql").read_text())
    assert len(units) == 1
    head = units[0].text
    assert head.rstrip().endswith("COMMIT;")
    assert "ROLLBACK TO SAVEPOINT" in head and "pgmi_test" in head
    assert head.index("ROLLBACK TO SAVEPOINT") < head.index("RAISE NOTICE E'\\n  ____")
    if template == "advanced":
        assert "Required deployment parameter" in head
        order = [head.index(s) for s in ("SELECT pg_temp.deploy();", "SELECT pg_temp.apply_entity_standards_all();",
                                         "CALL pgmi_test(NULL")]
        assert order == sorted(order)


def _sql_files(*roots: Path):
    for root in roots:
        yield from (p for p in root.rglob("*") if p.suffix == ".sql")


_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_ASSERT = re.compile(r"\bIF\b((?:(?!\bIF\b|\bTHEN\b).)*?)\bTHEN\s+RAISE\s+EXCEPTION", re.DOTALL | re.IGNORECASE)


def test_assertions_are_null_safe():
    """An IF ... THEN RAISE EXCEPTION must not compare with <>/!=, test a bare boolean,
    use an unguarded NOT LIKE or an un-coalesced array_length (a NULL would skip it)."""
    problems = []
    for path in _sql_files(TEMPLATES, REPO / "examples"):
        text = _COMMENT.sub("", path.read_text())
        for match in _ASSERT.finditer(text):
            cond = match.group(1).strip()
            if re.match(r"(NOT\s+)?EXISTS\b", cond, re.IGNORECASE):
                continue
            if ("<>" in cond or "!=" in cond or re.fullmatch(r"(NOT\s+)?[\w.]+", cond)
                    or (re.search(r"NOT\s+LIKE", cond, re.IGNORECASE) and "coalesce" not in cond.lower())
                    or (re.search(r"(?<![\w.])array_length", cond, re.IGNORECASE) and "coalesce" not in cond.lower())):
                problems.append(f"{path.relative_to(REPO)}: IF {cond} THEN")
    assert problems == []


def test_template_tests_avoid_inequality_operators():
    for path in TEMPLATES.rglob("*.sql"):
        if "__test__" in path.parts or "__tests__" in path.parts:
            code = _COMMENT.sub("", path.read_text())
            assert "<>" not in code and "!=" not in code, path


def test_advanced_test_suite_is_big_enough_and_every_test_asserts():
    tests = [p for p in (TEMPLATES / "advanced").rglob("test_*.sql") if "__test__" in p.parts]
    assert len(tests) >= 25
    assert [p for p in tests if "RAISE EXCEPTION" not in p.read_text()] == []


def test_every_advanced_script_has_metadata_with_a_unique_id():
    ids = []
    for path in _sql_files(TEMPLATES / "advanced"):
        if "__test__" in path.parts or path.name == "deploy.sql":
            continue
        match = re.search(r'<pgmi-meta id="([0-9a-f-]{36})" idempotent="(true|false)">', path.read_text())
        assert match, path
        ids.append(match.group(1))
    assert len(ids) == len(set(ids)) >= 10


@pytest.mark.build
def test_zipapp_scaffolds_every_template(tmp_path):
    """The single-file build carries the templates, dotfiles included, and its init works."""
    app = tmp_path / "pgmi"
    built = subprocess.run([sys.executable, str(REPO / "build.py"), "-o", str(app)], capture_output=True, text=True,
                           timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    env = {**os.environ, "SHIV_ROOT": str(tmp_path / "shiv"), "PGMI_NON_INTERACTIVE": "1"}
    for template in ("basic", "advanced"):
        target = tmp_path / template
        result = subprocess.run([sys.executable, str(app), "init", str(target), "-t", template], capture_output=True,
                                text=True, timeout=120, check=False, env=env)
        assert result.returncode == 0, result.stderr
        copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
        source = TEMPLATES / template
        assert copied == sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
        assert ".gitignore" in copied


@pytest.mark.parametrize("name", ['my"app', "日本語プロジェクト", "it's-🚀"])
def test_cli_init_with_awkward_project_names(tmp_path, capsys, name):
    code, out, _err = run_cli(["init", str(tmp_path / name), "-t", "basic"], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"{tmp_path / name}/"
    assert json.loads((tmp_path / name / "project.json").read_text(encoding="utf-8")) == {
        "app_name": name, "version": "1.0.0"}


@pytest.mark.parametrize("template", ["basic", "advanced"])
def test_template_scans_cleanly_and_plans(template):
    """The scanner accepts every file (checksums, content, metadata); root __test__ files keep ./ paths."""
    from pgmilib.project.metadata import plan
    from pgmilib.project.scan import scan_project

    project = scan_project(str(TEMPLATES / template))
    on_disk = {"./" + str(p.relative_to(TEMPLATES / template)) for p in (TEMPLATES / template).rglob("*")
               if p.is_file() and p.name != "deploy.sql" and not p.name.startswith(".")}  # the scanner skips dotfiles
    assert {f.path for f in project.files} == on_disk
    assert all(f.content and len(f.checksum) == 64 and len(f.pgmi_checksum) == 64 for f in project.files)
    if template == "basic":
        assert {"./__test__/_setup.sql", "./__test__/test_user_crud.sql"} <= {f.path for f in project.test_files()}
    else:
        keyed = [e for e in plan(project.files) if e.id is not None]
        assert [e.sort_key for e in keyed] == sorted(e.sort_key for e in keyed)  # bytewise order by key
        assert keyed[0].path == "./lib/common/cast.sql" and keyed[-1].path == "./api/examples.sql"
