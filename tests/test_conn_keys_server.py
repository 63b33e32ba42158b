"""require_auth, target_session_attrs and passfile against real PostgreSQL servers.

require_auth needs a server whose pg_hba.conf asks different roles for different methods (a
throwaway cluster of this module); target_session_attrs uses the session server with a role
whose sessions are read-only (`ALTER ROLE ... SET default_transaction_read_only`), which
PostgreSQL reports exactly as a hot standby reports it.
"""

from __future__ import annotations

import os
import uuid

import pg8000.native
import pytest

from pgmilib.conn.connect import open_connection
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.errors import ConnectionFailed, Exit, exit_code
from pgmilib.server.cluster import Cluster
from tests.projects import own_cluster, query, run_cli, write_project

SECRET = "Sek-ret-canary-7731"  # every role's password; never in any output
ROLES = {"scram_user": "scram-sha-256", "md5_user": "md5", "clear_user": "password", "trust_user": "trust"}


@pytest.fixture(scope="module")
def auth_server():
    """One role per authentication method over TCP (the socket stays trusted for the test's own queries)."""
    # md5 in pg_hba.conf still does SCRAM for a SCRAM verifier: the md5 role's is stored as md5
    roles = [sql for role, method in ROLES.items() for sql in (
        f"SET password_encryption = '{'md5' if method == 'md5' else 'scram-sha-256'}'",
        f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{SECRET}'")]
    hba = ("local all all trust\n" + "".join(f"host all {role} 127.0.0.1/32 {method}\n" for role, method in ROLES.items())
           + "host all all 127.0.0.1/32 scram-sha-256\n")
    with own_cluster(*roles, hba=hba, listen_tcp=True, settings={"password_encryption": "scram-sha-256"}) as cluster:
        yield cluster


def _params(cluster: Cluster, role: str, require_auth: str, password: str | None = SECRET) -> ConnParams:
    return ConnParams(host="127.0.0.1", port=cluster.port, user=role, password=password, database="postgres",
                      sslmode="disable", application_name="pgmi", require_auth=require_auth)


@pytest.mark.parametrize(("role", "rule"), [
    ("scram_user", "scram-sha-256"), ("md5_user", "md5,scram-sha-256"), ("clear_user", "password"),
    ("trust_user", "none"), ("scram_user", "!md5,!password"), ("trust_user", "!password"), ("md5_user", ""),
])
def test_require_auth_lets_an_allowed_method_log_in(auth_server, role, rule):
    conn = open_connection(_params(auth_server, role, rule), environ={})
    try:
        assert conn.run("SELECT current_user") == [[role]]
    finally:
        conn.close()


@pytest.mark.parametrize(("role", "rule", "asked"), [
    ("md5_user", "scram-sha-256", "md5"),  # the downgrade require_auth exists to refuse
    ("clear_user", "scram-sha-256,md5", "password"),
    ("scram_user", "!scram-sha-256", "scram-sha-256"),
    ("scram_user", "none", "scram-sha-256"),
    ("trust_user", "scram-sha-256", "none"),  # a server that asks for nothing is refused too
])
def test_require_auth_refuses_before_the_password_is_sent(auth_server, role, rule, asked):
    # A wrong password: had it been sent, the server would answer 28P01 instead.
    with pytest.raises(ConnectionFailed) as info:
        open_connection(_params(auth_server, role, rule, password="wrong-" + SECRET), environ={})
    error = info.value
    assert exit_code(error) == Exit.CONNECTION and error.details["attempts"] == 1  # not retried
    assert error.pg is None  # the server never judged a password
    assert str(error) == (f'cannot log in as "{role}" at 127.0.0.1:{auth_server.port}: require_auth={rule} '
                          f"does not allow {asked} authentication, which the server asked for")
    assert SECRET not in str(error) + "".join(error.trailer)


def test_require_auth_through_the_cli_fails_with_exit_11_and_creates_nothing(auth_server, tmp_path, capsys,
                                                                               monkeypatch):
    for name in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PGMI_NON_INTERACTIVE", "1")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.setenv("PGREQUIREAUTH", "scram-sha-256")
    target = "never_" + uuid.uuid4().hex[:8]
    project = write_project(tmp_path / "p", {}, "CREATE TABLE t (id int);\n")
    code, out, err = run_cli(["deploy", str(project), "-d", target, "-h", "127.0.0.1", "-p", str(auth_server.port),
                              "-U", "md5_user", "--sslmode", "disable"], capsys)
    assert code == Exit.CONNECTION
    errors = [line for line in err.splitlines() if line.startswith("pgmi: error:")]
    assert len(errors) == 1 and "require_auth=scram-sha-256" in errors[0] and "md5" in errors[0], err
    assert "Traceback" not in err and SECRET not in out + err
    admin = pg8000.native.Connection(**auth_server.conn_kwargs())
    try:
        assert admin.run("SELECT count(*) FROM pg_database WHERE datname = :d", d=target) == [[0]]
    finally:
        admin.close()


def test_the_passfile_key_supplies_the_password(auth_server, tmp_path):
    passfile = tmp_path / "my-pgpass"
    passfile.write_text(f"127.0.0.1:{auth_server.port}:*:scram_user:{SECRET}\n")
    passfile.chmod(0o600)
    params = parse_connection_string(f"host=127.0.0.1 port={auth_server.port} user=scram_user sslmode=disable "
                                     f"passfile={passfile}")
    conn = open_connection(params, environ={"PGPASSFILE": str(tmp_path / "not-this-one")})
    try:
        assert conn.run("SELECT current_user") == [["scram_user"]]
    finally:
        conn.close()


def test_the_wizard_saver_writes_what_the_connection_reads(auth_server, tmp_path, monkeypatch):
    """One .pgpass module: the line the wizard saves (a password with `:` and `\\`) is the one a
    deploy's connection finds, through the same path rule."""
    import io

    from pgmilib.output import Output
    from pgmilib.scaffold.connection_wizard import WizardResult
    from pgmilib.scaffold.persist import offer_pgpass
    from pgmilib.scaffold.prompts import Prompter

    odd = "co:lon\\back" + SECRET
    admin = pg8000.native.Connection(**auth_server.conn_kwargs())
    try:
        admin.run("CREATE ROLE odd_user LOGIN PASSWORD " + admin_literal(odd))
    finally:
        admin.close()
    monkeypatch.delenv("PGPASSFILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = WizardResult(connection={"host": "127.0.0.1", "port": auth_server.port, "username": "odd_user"},
                          password=odd)
    stderr = io.StringIO()
    offer_pgpass(result, Prompter(io.StringIO("y\n"), stderr), Output(stdout=stderr, stderr=stderr))
    assert r"co\:lon\\back" in (tmp_path / ".pgpass").read_text() and odd not in stderr.getvalue()
    params = ConnParams(host="127.0.0.1", port=auth_server.port, user="odd_user", database="postgres",
                        sslmode="disable")
    conn = open_connection(params, environ={"HOME": str(tmp_path)})
    try:
        assert conn.run("SELECT current_user") == [["odd_user"]]
    finally:
        conn.close()


def admin_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---- target_session_attrs on the session server ----------------------------------------------


@pytest.fixture
def read_only_role(pg):
    """A login role whose sessions start read-only; dropped afterwards."""
    role = "ro_" + uuid.uuid4().hex[:8]
    query(pg, "postgres", f"CREATE ROLE {role} LOGIN CREATEDB")
    query(pg, "postgres", f"ALTER ROLE {role} SET default_transaction_read_only = on")
    try:
        yield role
    finally:
        query(pg, "postgres", f"DROP ROLE {role}")


def _session(pg, user: str, wanted: str) -> ConnParams:
    params = parse_connection_string(pg.dsn())
    params.user, params.target_session_attrs = user, wanted
    return params


@pytest.mark.parametrize(("wanted", "as_read_only", "matches"), [
    ("read-write", False, True), ("read-write", True, False),
    ("read-only", False, False), ("read-only", True, True),
    ("primary", True, True), ("standby", False, False),
    ("prefer-standby", True, True), ("any", True, True),
])
def test_target_session_attrs_keeps_or_refuses_the_server(pg, read_only_role, wanted, as_read_only, matches):
    user = read_only_role if as_read_only else parse_connection_string(pg.dsn()).user
    params = _session(pg, user, wanted)
    if matches:
        conn = open_connection(params)
        try:
            assert conn.run("SELECT current_user") == [[user]]
        finally:
            conn.close()
        return
    before = query(pg, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE usename = :u", u=user)
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params)
    state = ("read-only" if as_read_only else "read-write") + ", primary"
    assert str(info.value) == (f"no server matches target_session_attrs={wanted}: tried {params.host}:{params.port} "
                               f"({state})")
    assert exit_code(info.value) == Exit.CONNECTION
    # the refused connection was closed, not left behind
    assert query(pg, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE usename = :u", u=user) == before


def test_target_session_attrs_through_the_cli_creates_nothing(pg, read_only_role, tmp_path, capsys, monkeypatch):
    for name in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PGMI_NON_INTERACTIVE", "1")
    target = "never_" + uuid.uuid4().hex[:8]
    project = write_project(tmp_path / "p", {}, "CREATE TABLE t (id int);\n")
    dsn = parse_connection_string(pg.dsn())
    connection = (f"host={dsn.host} port={dsn.port} user={read_only_role} dbname={target} sslmode=disable "
                  "target_session_attrs=read-write")
    code, _, err = run_cli(["deploy", str(project), "--connection", connection], capsys)
    assert code == Exit.CONNECTION, err
    errors = [line for line in err.splitlines() if line.startswith("pgmi: error:")]
    assert len(errors) == 1 and "target_session_attrs=read-write" in errors[0] and "read-only" in errors[0], err
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = :d", d=target) == [[0]]


def test_driver_tuning_keys_are_named_in_verbose_output_and_refused_keys_stop_hand_built_params(pg):
    import io

    from pgmilib.errors import ConfigError
    from pgmilib.output import Output

    params = parse_connection_string(pg.dsn() + " statement_cache_capacity=0 pool_max_conns=4")
    stderr = io.StringIO()
    conn = open_connection(params, out=Output(verbose=True, stdout=stderr, stderr=stderr))
    try:
        assert conn.run("SELECT 1") == [[1]]
    finally:
        conn.close()
    assert "not used by pgmi (tuning keys of the original's driver): pool_max_conns, statement_cache_capacity" \
        in stderr.getvalue()
    params.options["krbsrvname"] = "postgres"  # an API caller's ConnParams never went through resolve()
    with pytest.raises(ConfigError, match='connection key "krbsrvname"'):
        open_connection(params)


# ---- host lists: tried in order, as libpq does ------------------------------------------------


@pytest.fixture(scope="module")
def read_only_server():
    """A second throwaway server whose every session is read-only (as a hot standby's are, minus recovery)."""
    with own_cluster("ALTER SYSTEM SET default_transaction_read_only = on") as cluster:
        yield cluster


def _host_list(servers: list[tuple[str, int]], user: str, wanted: str = "") -> ConnParams:
    hosts = ",".join(host for host, _ in servers)
    ports = ",".join(str(port) for _, port in servers)
    extra = f" target_session_attrs={wanted}" if wanted else ""
    return parse_connection_string(f"host={hosts} port={ports} user={user} dbname=postgres sslmode=disable{extra}")


def _port_of(params: ConnParams) -> int:
    conn = open_connection(params)
    try:
        return int(conn.run("SELECT current_setting('port')")[0][0])
    finally:
        conn.close()


def _free_tcp_port() -> int:
    from pgmilib.server.cluster import _free_port

    return _free_port()


def test_a_host_list_moves_past_an_unreachable_host(pg):
    main = parse_connection_string(pg.dsn())
    dead = ("127.0.0.1", _free_tcp_port())
    assert _port_of(_host_list([dead, (main.host, main.port)], main.user)) == main.port


@pytest.mark.parametrize(("wanted", "lands_on"), [
    ("read-write", "main"), ("read-only", "ro"), ("primary", "ro"), ("prefer-standby", "ro"), ("any", "ro"),
])
def test_target_session_attrs_picks_the_matching_host(pg, read_only_server, wanted, lands_on):
    main = parse_connection_string(pg.dsn())
    ro = (read_only_server.dir, read_only_server.port)
    params = _host_list([ro, (main.host, main.port)], main.user, wanted)
    assert _port_of(params) == (main.port if lands_on == "main" else read_only_server.port)


def test_no_matching_host_lists_what_was_tried(pg, read_only_server):
    main = parse_connection_string(pg.dsn())
    dead = ("127.0.0.1", _free_tcp_port())
    params = _host_list([(read_only_server.dir, read_only_server.port), dead, (main.host, main.port)], main.user,
                        "standby")
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params)
    assert str(info.value) == (
        "no server matches target_session_attrs=standby: tried "
        f"{read_only_server.dir}:{read_only_server.port} (read-only, primary), "
        f"{dead[0]}:{dead[1]} (connection refused to {dead[0]}:{dead[1]}), "
        f"{main.host}:{main.port} (read-write, primary)")
    assert exit_code(info.value) == Exit.CONNECTION and "\n" not in str(info.value)


def test_a_refused_login_does_not_move_to_the_next_host(auth_server, pg):
    main = parse_connection_string(pg.dsn())
    params = _host_list([("127.0.0.1", auth_server.port), (main.host, main.port)], "scram_user")
    params.password = "wrong-" + SECRET
    with pytest.raises(ConnectionFailed) as info:
        open_connection(params)
    assert info.value.pg is not None and info.value.pg.sqlstate == "28P01"  # the first host's answer, kept
    assert "password authentication failed" in str(info.value) and SECRET not in str(info.value)
