"""Hostile file-system shapes where `pgmi init` and `pgmi ai setup` / `ai check` write and read.

Every shape (a link out of the project, to /dev/zero or /dev/null, dangling inside and
outside, a loop, a FIFO, a socket, a directory, a file too large to read, a non-UTF-8
file, a regular file) is put at every place these commands touch, and the real command
runs. The contract: it ends (a FIFO or /dev/zero once hung it or ran it out of memory)
with exit 0, 1 or 2, at most one `pgmi: error:` line, no traceback; nothing outside the
project changes (a snapshot of the outside tree before and after; /dev/null stays a
device); a refused `init` leaves the directory as it was. The full run tries every
(shape, place) pair; the fast slice a seeded sample.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from harness import FIGURES, FULL, SEED, assert_clean, base_env, error_lines, pgmi_cmd

SHAPES = ("missing", "regular", "not-utf8", "huge", "directory", "fifo", "socket", "link-out-file", "link-out-dir",
          "dangling-out", "dangling-in", "link-in", "loop", "dev-zero", "dev-null")
AI_PLACES = ("CLAUDE.md", "AGENTS.md", "GEMINI.md", ".claude", ".claude/skills", ".claude/skills/pgmi",
             ".claude/skills/pgmi/SKILL.md", ".github", ".github/copilot-instructions.md", ".cursor/rules",
             ".clinerules/pgmi.md", ".agents/skills/pgmi")
INIT_NAMES = (b"plain", b"bad\xffname", b"a" * 255, b"a" * 256, b"new\nline", b"tab\there", b"esc\x1b[2J",
              b"-dash", b"sp ace; $(id)", b"deep/" * 30 + b"x", "日本語".encode(), b"..x", b"x" * 200 + b"/" + b"y" * 200)


def _pick(pairs: list, fast: int) -> list:
    return pairs if FULL else random.Random(SEED).sample(pairs, min(fast, len(pairs)))


def _snapshot(root: Path) -> dict[str, str]:
    """Type and content digest of everything under root (links not followed)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(mode):
                found[str(path)] = "link:" + os.readlink(path)
            else:
                found[str(path)] = f"mode:{stat.S_IFMT(mode)}"
    return found


def _make(path: Path, shape: str, outside: Path, sockets: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if shape == "missing":
        return
    if shape == "regular":
        path.write_text("# written by hand\n")
    elif shape == "not-utf8":
        path.write_bytes(b"\xff\xfe hand-written \x80\n")
    elif shape == "huge":
        with open(path, "wb") as handle:
            handle.truncate(40 * 1024 * 1024)  # sparse: 40 MB to read, nothing on disk
    elif shape == "directory":
        path.mkdir()
    elif shape == "fifo":
        os.mkfifo(path)
    elif shape == "socket":
        sock = socket.socket(socket.AF_UNIX)
        if len(os.fsencode(str(path))) < 100:  # AF_UNIX path limit; a regular file stands in otherwise
            sock.bind(str(path))
            sockets.append(sock)
        else:
            sock.close()
            path.write_text("")
    elif shape == "link-out-file":
        path.symlink_to(outside / "victim.txt")
    elif shape == "link-out-dir":
        path.symlink_to(outside / "victim-dir")
    elif shape == "dangling-out":
        path.symlink_to(outside / "not-there")
    elif shape == "dangling-in":
        path.symlink_to(path.parent / "not-there-either")
    elif shape == "link-in":
        (path.parent / "real-target.md").write_text("inside\n")
        path.symlink_to("real-target.md")
    elif shape == "loop":
        path.symlink_to(path.name)
    elif shape == "dev-zero":
        path.symlink_to("/dev/zero")
    elif shape == "dev-null":
        path.symlink_to("/dev/null")


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "victim-dir").mkdir(parents=True)
    (outside / "victim.txt").write_text("do not touch\n")
    return outside


def _contract(proc, label: str) -> None:
    assert_clean(label, proc.stdout, proc.stderr)
    assert proc.returncode in (0, 1, 2), f"{label}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert len(error_lines(proc.stderr)) <= 1, f"{label}: {proc.stderr[-2000:]}"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), f"{label}: /dev/null is no longer a device"


AI_CASES = [(shape, place) for place in AI_PLACES for shape in SHAPES if shape != "missing"]


@pytest.mark.parametrize("shape, place", _pick(AI_CASES, 12))
def test_ai_setup_and_check_on_a_hostile_shape(tmp_path, shape, place):
    outside = _outside(tmp_path)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "deploy.sql").write_text("SELECT 1;\n")
    (tmp_path / "home").mkdir()
    sockets: list = []
    try:
        _make(project / place, shape, outside, sockets)
        before = _snapshot(outside)
        env = base_env({"HOME": str(tmp_path / "home")})
        for args in (["ai", "setup", "--all", "--claude-md", "--force"], ["ai", "check", "--assistant", "claude"],
                     ["ai", "check", "--assistant", "agents"], ["ai", "check", "--assistant", "copilot"]):
            proc = subprocess.run(pgmi_cmd(*args), cwd=project, env=env, capture_output=True, text=True,
                                  timeout=120, check=False, stdin=subprocess.DEVNULL)
            _contract(proc, f"{' '.join(args[:2])} with {place} as {shape}")
            FIGURES["file-system shapes tried (ai)"] += 1
        assert _snapshot(outside) == before, f"{place} as {shape}: something outside the project changed"
    finally:
        for sock in sockets:
            sock.close()


INIT_CASES = [(name, shape) for name in INIT_NAMES for shape in ("missing", "regular", "directory", "fifo",
                                                                  "link-out-dir", "dangling-out", "dangling-in",
                                                                  "loop", "dev-null")]


@pytest.mark.parametrize("name, shape", _pick(INIT_CASES, 12))
def test_init_on_a_hostile_name_and_shape(tmp_path, name, shape):
    outside = _outside(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    target = Path(os.fsdecode(work)) / os.fsdecode(name)
    sockets: list = []
    try:
        if len(os.fsencode(target.name)) <= 255 and "/" not in os.fsdecode(name):
            _make(target, shape, outside, sockets)
        before_outside, before_work = _snapshot(outside), _snapshot(work)
        proc = subprocess.run(pgmi_cmd("init", "-t", "basic", "--", os.fsdecode(name)) if name.startswith(b"-")
                              else pgmi_cmd("init", os.fsdecode(name), "-t", "basic"),
                              cwd=work, env=base_env(), capture_output=True, text=True, timeout=120, check=False,
                              stdin=subprocess.DEVNULL)
        label = f"init {name[:40]!r} over {shape}"
        _contract(proc, label)
        FIGURES["file-system shapes tried (init)"] += 1
        if shape == "link-out-dir" and proc.returncode == 0:
            return  # a link the user made to an empty directory is followed, like mkdir -p; documented
        assert _snapshot(outside) == before_outside, f"{label}: something outside changed"
        if proc.returncode != 0:
            assert _snapshot(work) == before_work, f"{label}: a refused init left something behind"
    finally:
        for sock in sockets:
            sock.close()
