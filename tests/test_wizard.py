"""The interactive parts, driven through a real pseudo-terminal (never by mocking input()).

Each test starts pgmi with stdin, stdout and stderr on a pty that is also its controlling
terminal (so getpass really turns echo off), reads the prompts and types answers.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import stat
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from tests.projects import own_cluster

REPO = Path(__file__).resolve().parent.parent


class Terminal:
    """A child process on a pseudo-terminal: expect() output, send() lines."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        master, slave = pty.openpty()

        def become_terminal_owner() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                     preexec_fn=become_terminal_owner,  # noqa: PLW1509 -- no threads here; getpass needs a controlling tty
                                     close_fds=True)
        os.close(slave)
        self.master = master
        self.output = ""
        self.pos = 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        return True

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output[self.pos:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(min(remaining, 0.5)) and text not in self.output[self.pos:]:
                raise AssertionError(f"did not see {text!r}; output so far:\n{self.output}")
        self.pos = self.output.index(text, self.pos) + len(text)

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def send_raw(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.2):
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0.1)[0]:
                break
        code = self.proc.wait(timeout=max(1, deadline - time.monotonic()))
        os.close(self.master)
        return code


@pytest.fixture
def term_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in ("CI", "PGMI_NON_INTERACTIVE")}
    env["PGPASSFILE"] = str(tmp_path / "pgpass")
    env["PGMI_NO_BANNER"] = "1"
    return env


def pgmi(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "pgmi.py"), *args]


def server_fields(pg) -> tuple[str, str, str, str]:
    """host, port, user, password to type into the wizard for the test server."""
    env = pg.env()
    return env["PGHOST"], env["PGPORT"], env["PGUSER"], env.get("PGPASSWORD", "s3cret-typed-pw")


def type_local_connection(term: Terminal, pg, database: str, password: str) -> None:
    host, port, user, _ = server_fields(pg)
    term.expect("Where is your PostgreSQL server?")
    term.expect("Choice [1]: ")
    term.send("1")  # Local / On-Premises
    term.expect("Host [localhost]: ")
    term.send(host)
    term.expect("Port [5432]: ")
    term.send(port)
    term.expect("Database: ")
    term.send(database)
    term.expect("Maintenance database [postgres]: ")
    term.send("")
    term.expect("Username [postgres]: ")
    term.send(user)
    term.expect("Password (empty: use $PGPASSWORD or .pgpass): ")
    term.send(password)


# ---- init wizard -------------------------------------------------------------------------

def test_init_wizard_without_connection(tmp_path, term_env):
    term = Terminal(pgmi("init", "proj"), tmp_path, term_env)
    term.expect("Directory [proj]: ")
    term.send("")
    term.expect("Template:")
    term.expect("2) advanced")
    term.expect("Choice [1]: ")
    term.send("2")
    term.expect("Set up the database connection now?")
    term.expect("Choice [1]: ")
    term.send("")
    term.expect("Wrote proj (advanced template).")
    assert term.finish() == 0
    assert (tmp_path / "proj" / "lib" / "api").is_dir()
    assert (tmp_path / "proj" / "pgmi.yaml").read_text() == (REPO / "templates/advanced/pgmi.yaml").read_text()
    assert "pgmi deploy proj -d mydb" in term.output


def test_init_wizard_refuses_a_busy_directory_then_configures_the_connection(tmp_path, term_env, pg):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep")
    _host, _port, _user, password = server_fields(pg)
    term = Terminal(pgmi("init"), tmp_path, term_env)
    term.expect("Directory [.]: ")
    term.send("busy")
    term.expect("is not empty (blocking: notes.txt); choose another directory.")
    term.expect("Directory [.]: ")
    term.send("fresh")
    term.expect("Choice [1]: ")
    term.send("1")  # basic
    term.expect("Choice [1]: ")
    term.send("2")  # yes, run the connection wizard
    type_local_connection(term, pg, "wizard_db", password)
    term.expect("Connected: PostgreSQL ")
    term.expect("Save password to .pgpass for future sessions? [Y/n]: ")
    term.send("y")
    term.expect("Saved to ")
    assert term.finish() == 0

    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep" and len(list((tmp_path / "busy").iterdir())) == 1
    config_path = tmp_path / "fresh" / "pgmi.yaml"
    config = yaml.safe_load(config_path.read_text())
    host, port, user, _ = server_fields(pg)
    assert config["connection"]["host"] == host and config["connection"]["port"] == int(port)
    assert config["connection"]["database"] == "wizard_db" and config["connection"]["username"] == user
    assert config["params"] == {"env": "development"} and config["timeout"] == "3m"  # kept from the template
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert password not in config_path.read_text()
    pgpass = Path(term_env["PGPASSFILE"])
    from pgmilib.conn.pgpass import escape_field, match_host

    # Every database of this server and user (the deploy also connects to the maintenance
    # database), and a socket directory written as libpq matches it: localhost.
    assert pgpass.read_text() == f"{escape_field(match_host(host))}:{port}:*:{user}:{password}\n"
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    assert password not in term.output  # getpass: no echo, and never printed
    assert "pgmi deploy fresh -d wizard_db" in term.output


@pytest.mark.parametrize("key", [b"\x03", b"\x04"], ids=["ctrl-c", "ctrl-d"])
def test_init_wizard_cancel_writes_nothing(tmp_path, term_env, key):
    term = Terminal(pgmi("init", "proj"), tmp_path, term_env)
    term.expect("Directory [proj]: ")
    term.send("")
    term.expect("Choice [1]: ")
    term.send_raw(key)
    term.expect("Cancelled.")
    assert term.finish() == 0
    assert list(tmp_path.iterdir()) == []


def test_explicit_template_skips_the_wizard_on_a_terminal(tmp_path, term_env):
    term = Terminal(pgmi("init", "quick", "-t", "basic"), tmp_path, term_env)
    term.expect("Wrote quick (basic template).")
    assert term.finish() == 0
    assert "Directory" not in term.output


# ---- pgmi config -------------------------------------------------------------------------

def test_config_retries_a_failed_connection_and_keeps_params(tmp_path, term_env, pg):
    (tmp_path / "pgmi.yaml").write_text("params:\n  env: staging\ntimeout: 7m\n")
    host, port, user, password = server_fields(pg)
    bad_port = str(int(port) + 1 if int(port) < 65535 else int(port) - 1)
    term = Terminal(pgmi("config"), tmp_path, term_env)
    term.expect("pgmi.yaml exists.")
    term.expect("Overwrite connection settings? [Y/n]: ")
    term.send("")
    term.expect("Choice [1]: ")
    term.send("5")  # Other / connection string
    term.expect("Connection string (URI or key=value): ")
    term.send(f"host={host} port={bad_port} user={user} dbname=cfg_db password={password}")
    term.expect("Connection failed: ")
    term.expect("Edit the settings and try again? [Y/n]: ")
    term.send("y")
    term.expect("Connection string (URI or key=value): ")
    term.send(f"host={host} port={port} user={user} dbname=cfg_db password={password}")
    term.expect("Connected: PostgreSQL ")
    term.expect("[Y/n]: ")
    term.send("n")
    term.expect("Tip: ")
    assert term.finish() == 0
    config = yaml.safe_load((tmp_path / "pgmi.yaml").read_text())
    assert config["connection"]["database"] == "cfg_db" and config["connection"]["port"] == int(port)
    assert config["params"] == {"env": "staging"} and config["timeout"] == "7m"
    assert not Path(term_env["PGPASSFILE"]).exists()


def test_config_names_the_string_keys_pgmi_yaml_cannot_hold(tmp_path, term_env, pg):
    host, port, user, password = server_fields(pg)
    term = Terminal(pgmi("config"), tmp_path, term_env)
    term.expect("Choice [1]: ")
    term.send("5")  # Other / connection string
    term.expect("Connection string (URI or key=value): ")
    term.send(f"host={host} port={port} user={user} dbname=kept_db password={password} "
              "application_name=ci require_auth=scram-sha-256,md5,password")
    term.expect("Not kept in pgmi.yaml: application_name, require_auth; ")
    term.expect("Connected: PostgreSQL ")
    term.expect("[Y/n]: ")
    term.send("n")
    term.expect("Tip: ")
    assert term.finish() == 0
    connection = yaml.safe_load((tmp_path / "pgmi.yaml").read_text())["connection"]
    assert connection["database"] == "kept_db" and "require_auth" not in connection


def test_config_declined_overwrite_changes_nothing(tmp_path, term_env):
    (tmp_path / "pgmi.yaml").write_text("connection:\n  database: keep\n")
    term = Terminal(pgmi("config"), tmp_path, term_env)
    term.expect("Overwrite connection settings? [Y/n]: ")
    term.send("n")
    term.expect("Cancelled.")
    assert term.finish() == 0
    assert (tmp_path / "pgmi.yaml").read_text() == "connection:\n  database: keep\n"


def test_config_unparseable_yaml_is_offered_for_replacement(tmp_path, term_env):
    (tmp_path / "pgmi.yaml").write_text("connection: [oops\n")
    term = Terminal(pgmi("config"), tmp_path, term_env)
    term.expect("pgmi.yaml exists but could not be parsed: ")
    term.expect("Overwrite the unparseable pgmi.yaml? [Y/n]: ")
    term.send("no")
    term.expect("Cancelled.")
    assert term.finish() == 0


def test_config_requires_a_terminal(tmp_path):
    result = subprocess.run(pgmi("config", str(tmp_path)), capture_output=True, text=True, timeout=60, check=False,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr == ("pgmi: error: config requires an interactive terminal\n"
                             "for CI, write pgmi.yaml by hand or use PG* environment variables\n")


# ---- the connection wizard as a function (the deploy path calls it) ------------------------

WIZARD_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from pgmilib.scaffold.connection_wizard import run_connection_wizard
from pgmilib.scaffold.prompts import Prompter, Cancelled
try:
    result = run_connection_wizard(Prompter())
except (Cancelled, KeyboardInterrupt):
    print("RESULT cancelled")
else:
    print("RESULT " + json.dumps({{"connection": result.connection, "tested": result.tested,
                                   "has_password": result.password is not None}}, sort_keys=True))
"""


def run_wizard_function(tmp_path, term_env) -> Terminal:
    return Terminal([sys.executable, "-c", WIZARD_SCRIPT.format(repo=str(REPO))], tmp_path, term_env)


def result_of(term: Terminal) -> dict:
    term.expect("RESULT ")
    line = term.output[term.pos:].splitlines()[0]
    assert term.finish() == 0
    return json.loads(line)


def test_connection_wizard_returns_a_pgmi_yaml_connection_mapping(tmp_path, term_env, pg):
    _host, _port, _user, password = server_fields(pg)
    term = run_wizard_function(tmp_path, term_env)
    type_local_connection(term, pg, "target_db", password)
    result = result_of(term)
    host, port, user, _ = server_fields(pg)
    assert result == {"connection": {"host": host, "port": int(port), "database": "target_db",
                                     "maintenance_database": "postgres", "username": user, "sslmode": "prefer"},
                      "has_password": True, "tested": True}


def test_connection_wizard_cloud_auth_skips_the_test(tmp_path, term_env):
    term = run_wizard_function(tmp_path, term_env)
    term.expect("Choice [1]: ")
    term.send("3")  # AWS
    term.expect("Authentication:")
    term.expect("Choice [1]: ")
    term.send("2")  # IAM
    term.expect("Host: ")
    term.send("db.example.rds.amazonaws.com")
    term.expect("Port [5432]: ")
    term.send("")
    term.expect("Database: ")
    term.send("")
    term.expect("Database is required.")
    term.expect("Database: ")
    term.send("app")
    term.expect("Username: ")
    term.send("deployer")
    term.expect("Region (e.g. eu-west-1): ")
    term.send("eu-west-1")
    term.expect("the token is fetched at deploy time")
    result = result_of(term)
    assert result["connection"] == {"auth_method": "aws", "sslmode": "require", "port": 5432,
                                    "host": "db.example.rds.amazonaws.com", "database": "app",
                                    "username": "deployer", "aws_region": "eu-west-1"}
    assert result["has_password"] is False


def test_connection_wizard_rejects_bad_choices_and_ports(tmp_path, term_env):
    term = run_wizard_function(tmp_path, term_env)
    term.expect("Choice [1]: ")
    term.send("9")
    term.expect("Choose a number from 1 to 5.")
    term.send("1")
    term.expect("Host [localhost]: ")
    term.send("")
    term.expect("Port [5432]: ")
    term.send("70000")
    term.expect("Port must be a number from 1 to 65535.")
    term.expect("Port [5432]: ")
    term.send_raw(b"\x03")
    term.expect("RESULT cancelled")
    assert term.finish() == 0


# ---- the deploy trigger (nothing names a server) --------------------------------------------------------

@pytest.mark.parametrize("argv,environ,yaml_conn,expected", [
    ([], {}, None, True),
    ([], {"PGHOST": "h"}, {}, True),                      # PGHOST alone does not count
    (["-p", "5433", "-U", "me"], {}, None, True),         # neither do --port and -U
    (["-d", "x"], {}, None, False),
    (["--host", "h"], {}, None, False),
    (["--connection", "host=h"], {}, None, False),
    ([], {"DATABASE_URL": "postgres://h/x"}, None, False),
    ([], {"PGHOST": "h", "PGDATABASE": "x"}, None, False),
    ([], {}, {"database": "x"}, False),
    ([], {}, {"host": "h"}, False),
])
def test_no_connection_source(argv, environ, yaml_conn, expected):
    from pgmilib.cli.app import build_parser
    from pgmilib.cli.deploy import connection_flags
    from pgmilib.scaffold.deploy_hook import no_connection_source

    args = build_parser().parse_args(["deploy", "proj", *argv])
    assert no_connection_source(connection_flags(args), environ, yaml_conn) is expected


def test_merge_into_flags_keeps_given_flags_and_enables_cloud_auth():
    from pgmilib.conn.resolve import ConnectionFlags
    from pgmilib.scaffold.deploy_hook import merge_into_flags

    given = ConnectionFlags(username="given")
    flags = merge_into_flags(given, {"host": "db", "port": 6543, "username": "wizard", "database": "app",
                                     "auth_method": "aws", "aws_region": "eu-west-1", "sslmode": "require",
                                     "maintenance_database": "admin"})
    assert (flags.host, flags.port, flags.username, flags.database, flags.sslmode) == ("db", 6543, "given", "app",
                                                                                     "require")
    assert flags.aws is True and flags.aws_region == "eu-west-1" and flags.azure is False
    assert flags.maintenance_database == "admin"
    assert given == ConnectionFlags(username="given")  # a new value; the flags given are unchanged


DEPLOY_HOOK_SCRIPT = """
import json, os, sys
sys.path.insert(0, {repo!r})
from pgmilib.cli.app import build_parser
from pgmilib.cli.deploy import connection_flags
from pgmilib.errors import PgmiError
from pgmilib.output import Output
from pgmilib.scaffold.deploy_hook import maybe_run_deploy_wizard
args = build_parser().parse_args(["deploy", {project!r}] + {extra!r})
try:
    ran = maybe_run_deploy_wizard(connection_flags(args), os.environ, None, {project!r}, Output(), force=args.force)
except PgmiError as error:
    print("RESULT " + json.dumps({{"error": str(error)}}))
else:
    flags = ran[0] if ran else connection_flags(args)
    print("RESULT " + json.dumps({{"ran": ran is not None, "host": flags.host, "database": flags.database,
                                   "port": flags.port}}))
"""


def deploy_hook(tmp_path, term_env, *extra: str) -> Terminal:
    script = DEPLOY_HOOK_SCRIPT.format(repo=str(REPO), project=str(tmp_path), extra=list(extra))
    return Terminal([sys.executable, "-c", script], tmp_path, term_env)


def test_deploy_wizard_fills_the_flags_and_saves_on_request(tmp_path, term_env, pg):
    host, port, _user, password = server_fields(pg)
    term = deploy_hook(tmp_path, term_env)
    term.expect("No database connection configured.")
    type_local_connection(term, pg, "hook_db", password)
    term.expect("Save these connection settings to pgmi.yaml? [Y/n]: ")
    term.send("y")
    term.expect("Saved to ")
    term.expect("Save password to .pgpass for future sessions? [Y/n]: ")
    term.send("n")
    assert result_of(term) == {"ran": True, "host": host, "database": "hook_db", "port": int(port)}
    assert yaml.safe_load((tmp_path / "pgmi.yaml").read_text())["connection"]["database"] == "hook_db"


def test_deploy_wizard_cancel_is_approval_denied(tmp_path, term_env):
    term = deploy_hook(tmp_path, term_env)
    term.expect("Choice [1]: ")
    term.send_raw(b"\x04")
    assert result_of(term) == {"error": "approval denied: connection setup cancelled"}


def test_deploy_wizard_stays_out_of_the_way_with_force_or_a_database(tmp_path, term_env):
    for extra in (["--force"], ["-d", "x"]):
        term = deploy_hook(tmp_path, term_env, *extra)
        result = result_of(term)
        assert result["ran"] is False
        assert "No database connection configured." not in term.output


def test_pgmi_deploy_without_any_connection_asks_then_deploys(tmp_path, term_env, pg):
    """The real command: `pgmi deploy proj` on a terminal with no connection source runs the wizard,
    then deploys with its answers (the typed password reaches the run, not a file)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "deploy.sql").write_text("CREATE TABLE from_wizard(id int);\n", encoding="utf-8")
    _host, _port, _user, password = server_fields(pg)
    term = Terminal(pgmi("deploy", str(proj)), tmp_path, term_env)
    term.expect("No database connection configured.")
    type_local_connection(term, pg, "wizard_e2e", password)
    term.expect("Save these connection settings to pgmi.yaml? [Y/n]: ")
    term.send("n")
    term.expect("Save password to .pgpass for future sessions? [Y/n]: ")
    term.send("n")
    term.expect("wizard_e2e: 0 files loaded")
    assert term.finish() == 0
    assert not (proj / "pgmi.yaml").exists() and not (tmp_path / "pgpass").exists()
    import pg8000.native

    conn = pg8000.native.Connection(**pg.conn_kwargs("wizard_e2e"))
    try:
        assert conn.run("SELECT to_regclass('from_wizard') IS NOT NULL") == [[True]]
    finally:
        conn.close()


# ---- the saved password serves the very next deploy ----------------------------------------

@pytest.fixture
def password_server():
    """A throwaway server that asks every role but the superuser for a password on its unix socket."""
    with own_cluster("CREATE ROLE wizard_user LOGIN CREATEDB PASSWORD 'typed:pass\\word'",
                     hba="local all postgres trust\nlocal all all scram-sha-256\n") as cluster:
        yield cluster


def test_the_wizards_saved_password_serves_the_next_deploy(tmp_path, term_env, password_server):
    """`pgmi config` on a terminal saves the password; the next `pgmi deploy` (no PGPASSWORD)
    creates the database through the maintenance database and deploys, over the unix socket."""
    import pg8000.native

    cluster, password = password_server, "typed:pass\\word"
    (tmp_path / "deploy.sql").write_text("CREATE TABLE after_wizard(id int);\n", encoding="utf-8")
    term = Terminal(pgmi("config"), tmp_path, term_env)
    term.expect("Choice [1]: ")
    term.send("1")  # Local / On-Premises
    term.expect("Host [localhost]: ")
    term.send(cluster.dir)  # the socket directory
    term.expect("Port [5432]: ")
    term.send(str(cluster.port))
    term.expect("Database: ")
    term.send("wizard_new")  # does not exist yet
    term.expect("Maintenance database [postgres]: ")
    term.send("")
    term.expect("Username [postgres]: ")
    term.send("wizard_user")
    term.expect("Password (empty: use $PGPASSWORD or .pgpass): ")
    term.send(password)
    term.expect("Connected: PostgreSQL ")
    term.expect("Save password to .pgpass for future sessions? [Y/n]: ")
    term.send("")
    term.expect("Saved to ")
    assert term.finish() == 0
    assert Path(term_env["PGPASSFILE"]).read_text() == f"localhost:{cluster.port}:*:wizard_user:typed\\:pass\\\\word\n"

    env = {**term_env, "PGMI_NON_INTERACTIVE": "1"}
    result = subprocess.run(pgmi("deploy", str(tmp_path)), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert password not in result.stderr + result.stdout
    admin = pg8000.native.Connection(**cluster.conn_kwargs("wizard_new"))
    try:
        assert admin.run("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'wizard_new'") == [
            ["wizard_user"]]
        assert admin.run("SELECT to_regclass('after_wizard') IS NOT NULL") == [[True]]
    finally:
        admin.close()


def test_without_a_password_the_error_names_the_database(tmp_path, password_server):
    cluster = password_server
    (tmp_path / "deploy.sql").write_text("SELECT 1;\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGMI_NON_INTERACTIVE="1", PGPASSFILE=str(tmp_path / "none"), PGHOST=cluster.dir,
               PGPORT=str(cluster.port), PGUSER="wizard_user")
    result = subprocess.run(pgmi("deploy", str(tmp_path), "-d", "some_target"), env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 11
    assert ('asked for a password for user "wizard_user" (database "some_target"), and none was found'
            in result.stderr), result.stderr
