"""Small helpers shared by the test modules: write a project tree, run the CLI in-process."""

from __future__ import annotations

from pathlib import Path


def write_project(root: Path, files: dict[str, str | bytes], deploy_sql: str | None = "SELECT 1;\n") -> Path:
    """Write {relative path: text or bytes} under root, plus deploy.sql unless it is None."""
    root.mkdir(parents=True, exist_ok=True)
    if deploy_sql is not None:
        (root / "deploy.sql").write_text(deploy_sql, encoding="utf-8")
    for rel, body in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            target.write_bytes(body)
        else:
            target.write_text(body, encoding="utf-8", newline="")
    return root


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the real CLI in-process; returns (exit code, stdout, stderr)."""
    from pgmilib.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
