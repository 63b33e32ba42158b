"""`pgmi ai setup` / `ai check` in a project someone prepared with hostile file-system shapes.

The rule (pgmilib/fileio.py, read_regular/write_regular): regular files only, bounded
reads, and nothing outside the project. A CLAUDE.md or a .github that links out of the
project once made pgmi append to or create files outside it; an AGENTS.md that is a FIFO
hung `ai setup` forever, one that links to /dev/zero ran `ai check` out of memory. Each is
now one `pgmi: error:` line, exit 1, and the outside untouched. Links that stay inside the
project are followed (AGENTS.md -> docs/AGENTS.md is a common layout).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgmilib.errors import PgmiError
from pgmilib.fileio import read_regular, write_regular

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "deploy.sql").write_text("SELECT 1;\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "home").mkdir()
    return root, outside


def ai(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=str(root.parent / "home"), PGMI_NON_INTERACTIVE="1")
    return subprocess.run([sys.executable, str(REPO / "pgmi.py"), "ai", *args], cwd=root, capture_output=True,
                          text=True, timeout=60, check=False, env=env, stdin=subprocess.DEVNULL)


def refused(proc, says: str) -> None:
    assert "Traceback" not in proc.stderr and "this is a bug" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pgmi: error:")]
    assert proc.returncode == 1 and len(errors) == 1 and says in errors[0], proc.stderr


def test_claude_md_linking_out_of_the_project(project):
    root, outside = project
    (outside / "bashrc").write_text("export KEEP=1\n")
    (root / "CLAUDE.md").symlink_to(outside / "bashrc")
    proc = ai(root, "setup", "--assistant", "claude", "--claude-md")
    refused(proc, 'refusing to read "CLAUDE.md": it leads outside')
    assert (outside / "bashrc").read_text() == "export KEEP=1\n"


def test_a_directory_linking_out_of_the_project(project):
    root, outside = project
    (root / ".github").symlink_to(outside)
    proc = ai(root, "setup", "--assistant", "copilot")
    refused(proc, 'refusing to read ".github/copilot-instructions.md": it leads outside')
    assert os.listdir(outside) == []


def test_a_dangling_link_out_of_the_project_is_not_created(project):
    root, outside = project
    (root / "AGENTS.md").symlink_to(outside / "created-by-pgmi.md")
    refused(ai(root, "setup", "--assistant", "agents"), "it leads outside")
    assert os.listdir(outside) == []


def test_a_fifo_is_refused_without_hanging(project):
    root, _ = project
    os.mkfifo(root / "AGENTS.md")
    refused(ai(root, "setup", "--assistant", "agents"), 'refusing to read "AGENTS.md": it is a FIFO')
    refused(ai(root, "check", "--assistant", "agents"), "it is a FIFO, not a regular file")


def test_dev_zero_is_refused_without_reading_it(project):
    root, _ = project
    (root / "AGENTS.md").symlink_to("/dev/zero")
    refused(ai(root, "check", "--assistant", "agents"), "it leads outside")
    (root / "GEMINI.md").symlink_to("/dev/zero")
    with pytest.raises(PgmiError, match="it is a character device"):
        read_regular(root / "GEMINI.md")  # without `inside` (--global): still never read


def test_a_link_inside_the_project_is_followed_and_kept(project):
    root, _ = project
    (root / "docs").mkdir()
    (root / "docs" / "AGENTS.md").write_text("")
    (root / "AGENTS.md").symlink_to("docs/AGENTS.md")
    proc = ai(root, "setup", "--assistant", "agents", "--force")
    assert proc.returncode == 0, proc.stderr
    assert (root / "AGENTS.md").is_symlink() and "pgmi" in (root / "docs" / "AGENTS.md").read_text()
    assert ai(root, "check", "--assistant", "agents").returncode == 0


def test_bounded_read_and_regular_writes(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    assert read_regular(big, limit=101) == b"x" * 101
    with pytest.raises(PgmiError, match="larger than 100 bytes"):
        read_regular(big, limit=100)
    assert read_regular(tmp_path / "absent") is None
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(PgmiError, match="it is a FIFO"):
        write_regular(tmp_path / "fifo", "x")
    with pytest.raises(PgmiError, match="it is a directory"):
        write_regular(tmp_path, "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(PgmiError, match="refusing to write"):
        write_regular(tmp_path / "file" / "below", "x")  # a parent that is a file: one line, not an OSError
