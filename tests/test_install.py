"""`pip install .` into a fresh virtual environment gives a working `pgmi` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

from projects import write_project

REPO = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(".git", ".venv", "dist", "build", "*.egg-info", "__pycache__", "bench", ".pytest_cache")


def test_pip_install_into_fresh_venv_runs_the_console_script(tmp_path, pg):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=_SKIP)  # pip builds in the tree: never in the real checkout
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, pgmi = env_dir / "bin" / "python", env_dir / "bin" / "pgmi"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], check=False, env=env,
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]

    # The package comes from the venv, with every bundled sql/ and templates/ file.
    where = subprocess.run([str(python), "-c", "import pgmilib; print(pgmilib.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    installed = Path(where).parent
    assert installed.is_relative_to(env_dir)
    for kind in ("sql", "templates"):
        wanted = {p.relative_to(REPO / kind) for p in (REPO / kind).rglob("*") if p.is_file()}
        shipped = {p.relative_to(installed / kind) for p in (installed / kind).rglob("*") if p.is_file()}
        assert wanted and wanted <= shipped, f"missing from the install: {sorted(map(str, wanted - shipped))}"

    version = subprocess.run([str(pgmi), "version"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pgmi "), version.stderr

    # A real deploy through the installed script.
    proj = write_project(tmp_path / "proj", {}, "CREATE TABLE installed_ok(id int);\n")
    run_env = {**{k: v for k, v in env.items() if not k.startswith("PG")}, **pg.env(), "PGMI_NON_INTERACTIVE": "1"}
    deployed = subprocess.run([str(pgmi), "deploy", str(proj), "-d", "pip_install_check", "--json"], check=False, cwd=tmp_path,
                              env=run_env, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    assert '"status": "success"' in deployed.stdout
