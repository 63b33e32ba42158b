"""`pgmi ai` on a real terminal (a pseudo-terminal): the pager and the interactive set-up.

When stdin and stdout are terminals the documents go through $PGMI_PAGER / $PAGER; a pager
that cannot start falls back to plain output; `ai setup` without --assistant picks claude
and asks before touching CLAUDE.md.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_in_pty(args: list[str], *, cwd: Path, env: dict[str, str], answers: bytes = b"",
               timeout: float = 60) -> tuple[int, bytes]:
    """Run pgmi with stdin/stdout/stderr on a pty; send `answers` once output appears; return (code, output)."""
    primary, secondary = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "PGMI_NON_INTERACTIVE", "PAGER", "PGMI_PAGER")}
    proc = subprocess.Popen([sys.executable, str(REPO / "pgmi.py"), *args], stdin=secondary, stdout=secondary,
                            stderr=secondary, cwd=cwd, env={**base, **env}, close_fds=True)
    os.close(secondary)
    output = b""
    sent = not answers
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not sent and b"[y/N]" in output:
                os.write(primary, answers)
                sent = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=10)
    os.close(primary)
    return code, output


def test_documents_go_through_the_pager(tmp_path):
    paged = tmp_path / "paged.txt"
    code, output = run_in_pty(["ai", "skills"], cwd=tmp_path, env={"PGMI_PAGER": f"tee {paged}"})
    assert code == 0
    assert paged.read_text().rstrip("\n").endswith("Total: 16 skills")
    assert b"Total: 16 skills" in output  # tee passes it on to the terminal


def test_pager_that_cannot_start_falls_back_to_plain_output(tmp_path):
    code, output = run_in_pty(["ai", "skills"], cwd=tmp_path, env={"PGMI_PAGER": "no-such-pager-xyz"})
    assert code == 0 and b"Total: 16 skills" in output


def test_interactive_setup_defaults_to_claude_and_asks_about_claude_md(tmp_path):
    (tmp_path / "deploy.sql").write_text("SELECT 1;\n")
    home = tmp_path / "home"
    home.mkdir()
    code, output = run_in_pty(["ai", "setup"], cwd=tmp_path, env={"HOME": str(home), "PGMI_PAGER": "cat"},
                              answers=b"y\n")
    assert code == 0, output
    assert b"Add a pgmi pointer to CLAUDE.md? [y/N]" in output
    assert (tmp_path / ".claude/skills/pgmi/SKILL.md").is_file()
    assert "<!-- pgmi:begin -->" in (tmp_path / "CLAUDE.md").read_text()
    assert b"updated    CLAUDE.md (pgmi pointer)" in output


def test_interactive_setup_declined_leaves_claude_md_alone(tmp_path):
    (tmp_path / "deploy.sql").write_text("SELECT 1;\n")
    code, output = run_in_pty(["ai", "setup"], cwd=tmp_path, env={"HOME": str(tmp_path)}, answers=b"\n")
    assert code == 0, output
    assert not (tmp_path / "CLAUDE.md").exists()
    assert (tmp_path / ".claude/skills/pgmi/SKILL.md").is_file()
