"""A hostile project tree: loops, dangling links, FIFOs, sockets, odd names, many files, huge statements.

Each case is a real `pgmi deploy` against the reliability cluster (canary password and
token as everywhere in this suite). The contract: pgmi ends within a bound, with exit 0 or
a documented failure code, one `pgmi: error:` line naming the offending file, no crash.

Unreadable files: the suite runs as root, for whom `chmod 000` changes nothing, and running
pgmi as another user needs an interpreter outside /root. A unix-domain socket bound inside
the project is unreadable for everyone (open() fails with ENXIO), so it stands in for an
unreadable file; a FIFO (open() would block forever) is the other hostile special file.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from harness import CANARY_TOKEN, FIGURES, base_env, error_lines, run_pgmi, scale

MANY_FILES = scale(200, 100_000)
BIG_STATEMENT_MB = scale(1, 50)


def _deploy(rel_server, project: Path, label: str, timeout: float = 120):
    db = rel_server.create_database()
    try:
        proc = run_pgmi(["deploy", str(project), "--json", "--connection", rel_server.url(db), "--param",
                         f"api_token={CANARY_TOKEN}", "--timeout", f"{int(timeout)}s"], base_env(), label=label,
                        timeout=timeout + 30)
    finally:
        rel_server.drop_database(db)
    FIGURES["file-system cases"] += 1
    envelope = json.loads(proc.stdout)
    assert envelope["exitCode"] == proc.returncode
    if proc.returncode:
        assert len(error_lines(proc.stderr)) == 1, proc.stderr
    return proc, envelope


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    (root / "schema").mkdir(parents=True)
    (root / "deploy.sql").write_text("SELECT count(*) FROM pg_temp.pgmi_source_view;\n")
    (root / "schema" / "t.sql").write_text("SELECT 1;\n")
    return root


def test_symlink_loop_and_dangling_links(rel_server, tmp_path):
    root = _project(tmp_path)
    os.symlink("..", root / "schema" / "loop")  # a directory link back up: a walk that follows it never ends
    os.symlink(str(root), root / "self")
    os.symlink("does-not-exist.sql", root / "dangling.sql")
    proc, envelope = _deploy(rel_server, root, "fs symlinks")
    assert proc.returncode in (0, 1, 10), proc.stderr
    if proc.returncode == 0:
        assert envelope["filesLoaded"] < 50  # the loop was not followed
    else:
        assert "dangling.sql" in proc.stderr or "loop" in proc.stderr or "self" in proc.stderr


def test_fifo_in_the_project_does_not_hang(rel_server, tmp_path):
    root = _project(tmp_path)
    os.mkfifo(root / "schema" / "pipe.sql")
    proc, _ = _deploy(rel_server, root, "fs fifo", timeout=30)
    assert proc.returncode in (0, 1), proc.stderr
    if proc.returncode:
        assert "pipe.sql" in proc.stderr


def test_unopenable_file_is_named(rel_server, tmp_path):
    root = _project(tmp_path)
    path = root / "schema" / "sock.sql"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        proc, _ = _deploy(rel_server, root, "fs socket", timeout=30)
    assert proc.returncode in (0, 1), proc.stderr
    if proc.returncode:
        assert "sock.sql" in proc.stderr


ODD_NAMES = ["new\nline.sql", "tab\there.sql", "quote'\"s.sql", " lead.sql", "ünï©ødé.sql", "semi;colon.sql",
             "back\\slash.sql", "-dash.sql", "\u202eevil.sql", "trailing .sql", "x.sql~", "$(touch pwned).sql"]


def test_odd_file_names(rel_server, tmp_path):
    root = _project(tmp_path)
    for name in ODD_NAMES:
        (root / "schema" / name).write_text("SELECT 2;\n")
    (root / "deploy.sql").write_text(
        f"DO $$ BEGIN IF (SELECT count(*) FROM pg_temp.pgmi_source_view) <> {len(ODD_NAMES) + 1} THEN "
        "RAISE EXCEPTION 'some file is missing'; END IF; END $$;\n")
    proc, envelope = _deploy(rel_server, root, "fs names")
    assert proc.returncode == 0, proc.stderr
    assert envelope["filesLoaded"] == len(ODD_NAMES) + 1
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_many_files(rel_server, tmp_path):
    root = _project(tmp_path)
    for d in range(MANY_FILES // 1000 or 1):
        sub = root / "many" / f"d{d:03d}"
        sub.mkdir(parents=True)
        for f in range(min(1000, MANY_FILES)):
            (sub / f"f{f:04d}.sql").write_text(f"SELECT {f};\n")
    proc, envelope = _deploy(rel_server, root, "fs many", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert envelope["filesLoaded"] == MANY_FILES + 1
    FIGURES["largest project loaded (files)"] = max(FIGURES["largest project loaded (files)"], MANY_FILES + 1)


def test_one_huge_statement(rel_server, tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    size = BIG_STATEMENT_MB * 1024 * 1024
    (root / "deploy.sql").write_text(
        "DO $$ BEGIN IF length('" + "x" * size + f"') <> {size} THEN RAISE EXCEPTION 'wrong length'; END IF; END $$;\n")
    proc, _ = _deploy(rel_server, root, "fs huge statement", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    FIGURES["largest single statement (MB)"] = max(FIGURES["largest single statement (MB)"], BIG_STATEMENT_MB)
