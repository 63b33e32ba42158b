"""Shell completion: `pgmi completion SHELL` scripts and the hidden `pgmi __complete`.

The bash script is exercised by bash itself: the generated script is sourced, COMP_WORDS /
COMP_CWORD are set as readline would set them, the registered function runs (calling back
into a real `pgmi` on PATH) and COMPREPLY is read back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgmilib.cli import main
from pgmilib.cli.app import build_parser
from pgmilib.cli.completion import FILTER_DIRS, NO_FILE, complete, script

REPO = Path(__file__).resolve().parent.parent


def names(before: list[str], current: str) -> tuple[list[str], int]:
    candidates, directive = complete(build_parser(), before, current)
    return [name for name, _ in candidates], directive


def test_subcommands_flags_and_values():
    commands, directive = names([], "")
    assert "deploy" in commands and "completion" in commands and directive == NO_FILE
    assert "__complete" not in commands  # hidden
    assert names([], "me") == (["metadata"], NO_FILE)
    assert names(["metadata"], "") == (["scaffold", "validate", "plan"], NO_FILE)
    flags, _ = names(["deploy"], "--ss")
    assert flags == ["--sslcert", "--sslkey", "--sslmode", "--sslrootcert"]
    assert names(["deploy", "--sslmode"], "")[0] == ["disable", "allow", "prefer", "require", "verify-ca",
                                                        "verify-full"]
    assert names(["init", "--template"], "")[0][:2] == ["basic", "advanced"]
    assert names(["templates", "describe"], "ad")[0] == ["advanced"]
    assert names(["completion"], "")[0] == ["bash", "zsh", "fish", "powershell"]
    assert "claude" in names(["ai", "setup", "--assistant"], "")[0]
    assert names(["ai", "client"], "py")[0] == ["python"]
    skills = names(["ai", "skill"], "")[0]
    assert skills and all(not name.startswith("-") for name in skills)


def test_paths_are_directories_and_other_values_get_nothing():
    assert names(["deploy"], "") == ([], FILTER_DIRS)
    assert names(["deploy", "-d", "app"], "./x") == ([], FILTER_DIRS)  # -d's value is skipped, not a positional
    assert names(["metadata", "plan"], "") == ([], FILTER_DIRS)
    assert names(["init"], "") == ([], FILTER_DIRS)
    assert names(["deploy", "--database"], "") == ([], NO_FILE)  # a database name: no file names
    assert names(["deploy", "--params-file"], "") == ([], 0)  # a file: the shell completes file names
    assert names(["deploy", ".", "x"], "") == ([], NO_FILE)  # no second positional


def test_hidden_complete_speaks_cobras_protocol(capsys):
    assert main(["__complete", "deploy", "--keep", "--ss"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ":4"
    assert out[0].split("\t") == ["--sslcert", "client certificate file"]
    # a flag-looking word right after __complete is a word to complete, not pgmi's own flag
    assert main(["__complete", "--ver"]) == 0
    assert capsys.readouterr().out.splitlines() == ["--verbose\tverbose diagnostics on stderr",
                                                    "--version\tprint version information and exit", ":4"]
    assert "__complete" not in build_parser().format_help()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_command_prints_a_script(shell, capsys):
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    assert "__complete" in text and "pgmi" in text
    assert text == script(shell, "pgmi")


@pytest.fixture
def bash_env(tmp_path):
    """A `pgmi` on PATH (this checkout), the bash script, and a directory to complete in."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "pgmi"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "pgmi.py"}" "$@"\n')
    launcher.chmod(0o755)
    work = tmp_path / "work"
    (work / "proj_a").mkdir(parents=True)
    (work / "proj_b").mkdir()
    (work / "notes.txt").write_text("x")
    generated = subprocess.run([str(launcher), "completion", "bash"], capture_output=True, text=True, check=True)
    (tmp_path / "pgmi.bash").write_text(generated.stdout)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    return tmp_path, work, env


def bash_complete(bash_env, *words: str) -> list[str]:
    """COMPREPLY of the registered completion function for the command line `words` (last = current)."""
    tmp_path, work, env = bash_env
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source {tmp_path / 'pgmi.bash'}\n"
               f"fn=$(complete -p pgmi | sed -E 's/.*-F ([^ ]+).*/\\1/')\n"
               f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
               "COMP_LINE=\"${COMP_WORDS[*]}\"; COMP_POINT=${#COMP_LINE}\n"
               "$fn pgmi \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n"
               "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], check=False, cwd=work, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_through_the_generated_script(bash_env):
    tmp_path, _, env = bash_env
    registered = subprocess.run(["bash", "--norc", "-c", f"source {tmp_path / 'pgmi.bash'}; complete -p pgmi"],
                                check=False, env=env, capture_output=True, text=True)
    assert registered.stdout.startswith("complete -F _pgmi_complete pgmi")
    assert bash_complete(bash_env, "pgmi", "dep") == ["deploy"]
    assert bash_complete(bash_env, "pgmi", "metadata", "v") == ["validate"]
    assert bash_complete(bash_env, "pgmi", "deploy", "--sslmode", "verify") == ["verify-ca", "verify-full"]
    assert bash_complete(bash_env, "pgmi", "deploy", "--ephem") == ["--ephemeral"]
    assert sorted(bash_complete(bash_env, "pgmi", "deploy", "proj")) == ["proj_a", "proj_b"]
    assert sorted(bash_complete(bash_env, "pgmi", "deploy", "")) == ["proj_a", "proj_b"]  # directories only
    assert bash_complete(bash_env, "pgmi", "deploy", "-d", "no") == []  # no file names for a database
    assert bash_complete(bash_env, "pgmi", "deploy", "--params-file", "no") == ["notes.txt"]


def test_compgen_style_listing_of_all_commands(bash_env):
    commands = bash_complete(bash_env, "pgmi", "")
    assert commands[:2] == ["deploy", "init"] and "completion" in commands and "__complete" not in commands
