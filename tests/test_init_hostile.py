"""`pgmi init` (CLI and the MCP `init` tool) with hostile names and file-system shapes.

The contract: a one-line `pgmi: error:` with exit 2 for a name pgmi cannot use (not UTF-8,
longer than the file system allows, a dangling symbolic link), no traceback, nothing made;
a scaffold that fails half-way removes what it made; printed next steps are quoted for the
shell, so pasting them never runs what a directory name holds.
"""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pgmilib.errors import PgmiError, UsageError
from pgmilib.scaffold import create

REPO = Path(__file__).resolve().parent.parent


def pgmi(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run([sys.executable, str(REPO / "pgmi.py"), *args], cwd=cwd, capture_output=True,
                          timeout=60, check=False, env=env, stdin=subprocess.DEVNULL)


def one_error_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text and "this is a bug" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgmi: error: usage error: "), text
    return lines[0]


@pytest.mark.parametrize("name, says", [
    (b"bad\xffname", 'project name "bad\\xffname" is not valid UTF-8'),
    (b"a" * 300, "is 300 bytes long; the file system allows at most 255"),
    (b"deep/" + b"b" * 256 + b"/x", "is 256 bytes long"),
])
def test_unusable_names_are_refused_before_anything_is_made(tmp_path, name, says):
    proc = pgmi([b"init", name, b"-t", b"basic"], tmp_path)
    assert proc.returncode == 2
    assert says in one_error_line(proc.stderr)
    assert os.listdir(tmp_path) == []  # nothing half-made


def test_a_dangling_symlink_target_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    proc = pgmi(["init", "link", "-t", "basic"], tmp_path)
    assert proc.returncode == 2
    assert "is a dangling symbolic link" in one_error_line(proc.stderr)
    assert sorted(os.listdir(tmp_path)) == ["link"] and not (tmp_path / "nowhere").exists()


def test_a_path_longer_than_the_system_allows_is_one_line(tmp_path):
    target = "/".join(["d" * 200] * 25)  # 5,000 bytes: every name fits, the path does not
    proc = pgmi(["init", target, "-t", "basic"], tmp_path)
    text = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in text
    assert text.startswith("pgmi: error: cannot write ") and text.rstrip().endswith("File name too long")
    assert os.listdir(tmp_path) == []


def test_next_steps_are_quoted_for_the_shell(tmp_path):
    name = "my proj; $(touch pwned)"
    proc = pgmi(["init", name, "-t", "basic"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    steps = [line.strip() for line in proc.stderr.decode().splitlines() if line.strip().startswith(("pgmi", "cd"))]
    assert steps[0] == f"pgmi deploy {shlex.quote(name)} -d mydb"
    assert shlex.split(steps[1])[:2] == ["cd", name]
    # Pasting the printed line into a shell changes into the directory and runs nothing else.
    subprocess.run(["sh", "-c", steps[1].split(" && ")[0]], cwd=tmp_path, check=True, timeout=30)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / name / "pwned").exists()


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_a_scaffold_failing_half_way_leaves_nothing_behind(tmp_path, monkeypatch, failure, existing):
    target = tmp_path / "a" / "b" / "proj"
    if existing:  # an empty directory with a prepared pgmi.yaml: only what init made goes
        target.mkdir(parents=True)
        (target / "pgmi.yaml").write_text("connection: {}\n")
    real_open, opened = os.open, []

    def flaky(path, flags, mode=0o777, **kwargs):
        if str(path).startswith(str(target)) and flags & os.O_CREAT:
            opened.append(path)
            if len(opened) == 4:
                if isinstance(failure, OSError):
                    raise OSError(failure.errno, failure.strerror, str(path))
                raise failure
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(create.os, "open", flaky)
    with pytest.raises(PgmiError if isinstance(failure, OSError) else KeyboardInterrupt) as raised:
        create.create_project("basic", target)
    if isinstance(failure, OSError):
        assert str(raised.value).endswith(": No space left on device")
    if existing:
        assert sorted(os.listdir(target)) == ["pgmi.yaml"]
    else:
        assert os.listdir(tmp_path) == []


def test_the_api_refuses_a_lone_surrogate_name(tmp_path):
    with pytest.raises(UsageError, match=r'project name "x\\ud800" is not valid UTF-8'):
        create.create_project("basic", tmp_path / "t", "x\ud800")
    assert not (tmp_path / "t").exists()
