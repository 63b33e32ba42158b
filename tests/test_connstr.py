"""Connection strings, precedence, service file and .pgpass. No server needed."""

from __future__ import annotations

import io
import os
import random
import string
from urllib.parse import quote

import pytest

from pgmilib.cli.app import build_parser
from pgmilib.cli.deploy import connection_flags
from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.conn.pgpass import pgpass_lookup
from pgmilib.conn.resolve import resolve
from pgmilib.errors import ConfigError, Exit, exit_code
from pgmilib.output import Output, format_error

BASE_ENV = {"HOME": "/nonexistent-home", "USER": "osuser"}


def flags(*argv: str):
    return connection_flags(build_parser().parse_args(["deploy", "proj", *argv]))


def res(*argv: str, env: dict | None = None, yaml: dict | None = None) -> ConnParams:
    return resolve(flags(*argv), {**BASE_ENV, **(env or {})}, yaml)


def config_error(*argv: str, env: dict | None = None, yaml: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        res(*argv, env=env, yaml=yaml)
    assert exit_code(info.value) == Exit.CONFIG
    return info.value


# ---------------------------------------------------------------------------------------
# URI
# ---------------------------------------------------------------------------------------


def test_uri_components_and_defaults():
    p = parse_connection_string("postgresql://alice:s3cret@db.example.com:6543/app?sslmode=verify-full"
                                "&application_name=ci&connect_timeout=7&search_path=x,y")
    assert (p.host, p.port, p.user, p.password, p.database) == ("db.example.com", 6543, "alice", "s3cret", "app")
    assert (p.sslmode, p.application_name, p.connect_timeout) == ("verify-full", "ci", 7.0)
    assert p.options == {"search_path": "x,y"}
    d = parse_connection_string("postgres://")
    assert (d.host, d.port, d.database, d.user, d.password, d.sslmode) == ("localhost", 5432, "postgres", "", None, "")
    assert parse_connection_string("postgresql://h/").database == "postgres"


def test_uri_percent_encoding_and_password_without_colon():
    p = parse_connection_string("postgresql://us%40er:p%3Aw%2Fd%40x@h/my%20db")
    assert (p.user, p.password, p.database) == ("us@er", "p:w/d@x", "my db")
    assert parse_connection_string("postgresql://bob@h/db").password is None
    assert parse_connection_string("postgresql://bob:@h/db").password == ""


def test_uri_unix_socket_host():
    p = parse_connection_string("postgresql://postgres@%2Fvar%2Frun%2FPostgreSQL:5433/db")
    assert p.host == "/var/run/PostgreSQL" and p.port == 5433 and p.is_unix_socket
    q = parse_connection_string("postgresql:///db?host=/tmp/Sock&port=6000")
    assert (q.host, q.port, q.database) == ("/tmp/Sock", 6000, "db")


def test_uri_ipv6_and_query_key_rules():
    p = parse_connection_string("postgresql://[::1]:5433/db?SSLMode=require&sslmode=disable&ApplicationName=a")
    assert (p.host, p.port, p.sslmode, p.application_name) == ("::1", 5433, "require", "a")


@pytest.mark.parametrize("text, needle", [
    ("postgresql://h:abc/db", "invalid port"),
    ("postgresql://h:0/db", "between 1 and 65535"),
    ("postgresql://h:70000/db", "between 1 and 65535"),
    ("postgresql://u:p%zz@h/db", "percent-encoding in the password"),
    ("postgresql://[::1/db", "unterminated"),
    ("postgresql://h1,h2:x/db", "invalid port"),
    ("postgresql://h/db?sslmode=sometimes", "invalid sslmode"),
    ("postgresql://h/db?connect_timeout=soon", "invalid connect_timeout"),
    ("postgresql://h/db?sslmode", "has no '='"),
    ("", "empty"),
    ("just some words", "unrecognized connection string format"),
])
def test_bad_strings_are_config_errors(text, needle):
    with pytest.raises(ConfigError) as info:
        parse_connection_string(text)
    assert needle in str(info.value)
    assert "invalid connection string: " in str(info.value)


def test_uri_roundtrip_random_values():
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + " @:/?#&=%;'\"\\é"
    for _ in range(300):
        user, password, db = ("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3))
        port = rng.randint(1, 65535)
        uri = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@db.host:{port}/{quote(db, safe='')}"
        p = parse_connection_string(uri)
        assert (p.user, p.password, p.database, p.port, p.host) == (user, password, db, port, "db.host")


# ---------------------------------------------------------------------------------------
# ADO.NET and libpq key=value
# ---------------------------------------------------------------------------------------


def test_ado_keys_quotes_and_sslmode_case():
    p = parse_connection_string("Server=h;Port=6000;Initial Catalog=app;User Id=u;"
                                "Password='pa;ss''w';SSL Mode=Require;Timeout=3;Search Path=s;garbage;")
    assert (p.host, p.port, p.database, p.user, p.password) == ("h", 6000, "app", "u", "pa;ss'w")
    assert (p.sslmode, p.connect_timeout) == ("require", 3.0)
    assert p.options == {"Search Path": "s"}
    q = parse_connection_string('Host = h ; Password = "x ""y"" z" trailing ; Database=d')
    assert (q.host, q.password, q.database, q.port) == ("h", 'x "y" z', "d", 5432)


def test_ado_roundtrip_random_passwords():
    rng = random.Random(99)
    alphabet = string.ascii_letters + string.digits + " ;='\"@\\"
    for _ in range(300):
        password = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 15)))
        text = f"Host=h;Username=u;Password='{password.replace(chr(39), chr(39) * 2)}';Database=d"
        assert parse_connection_string(text).password == password


def test_libpq_key_value_form():
    p = parse_connection_string(r"host=/tmp/s port = 5433 user=postgres password='a b\'c' dbname=app "
                                "sslmode=disable options='-c x=1' fallback_application_name=tool")
    assert (p.host, p.port, p.user, p.password, p.database) == ("/tmp/s", 5433, "postgres", "a b'c", "app")
    assert (p.sslmode, p.application_name, p.options) == ("disable", "tool", {"options": "-c x=1"})
    with pytest.raises(ConfigError, match="missing"):
        parse_connection_string("host=h dbname")
    multi = parse_connection_string("host=a,b port=1,2 dbname=x")  # libpq's host list, tried in order
    assert (multi.host, multi.port, multi.fallback_hosts) == ("a", 1, [("b", 2)])
    with pytest.raises(ConfigError, match="could not match 3 port numbers to 2 hosts"):
        parse_connection_string("host=a,b port=1,2,3 dbname=x")


# ---------------------------------------------------------------------------------------
# Precedence: flags > connection string > PG* env / service > pgmi.yaml > defaults
# ---------------------------------------------------------------------------------------


def test_step_a_cloud_exclusivity():
    err = config_error("-d", "x", "--azure", "--aws-region", "eu-west-1")
    assert "multiple cloud authentication methods" in str(err)
    config_error("-d", "x", "--google-instance", "p:r:i", "--azure-client-id", "c")
    assert res("-d", "x", "--azure", "--azure-tenant-id", "t").auth_method == "azure"


def test_step_b_string_pick_order():
    env = {"PGMI_CONNECTION_STRING": "postgresql://pgmi-host/a", "DATABASE_URL": "postgresql://url-host/b"}
    assert res(env=env).host == "pgmi-host" and res(env=env).source == "$PGMI_CONNECTION_STRING"
    assert res("--connection", "postgresql://flag-host/c", env=env).host == "flag-host"
    only_url = res(env={"DATABASE_URL": "postgresql://url-host/b"})
    assert (only_url.host, only_url.source) == ("url-host", "$DATABASE_URL")


@pytest.mark.parametrize("flag", [["--host", "x"], ["--port", "5433"], ["--username", "u"], ["--sslmode", "require"]])
def test_step_c_conflict_including_env_strings(flag):
    err = config_error("--connection", "postgresql://h/db", *flag)
    assert "--connection" in str(err) and flag[0] in str(err)
    err = config_error(*flag, env={"DATABASE_URL": "postgresql://u:hunter22@h/db"})
    assert "$DATABASE_URL" in str(err)
    assert "hunter22" not in format_error(err)
    # -d and the TLS file flags never conflict
    assert res("--connection", "postgresql://h/db", "-d", "other", "--sslrootcert", "/ca").database == "other"


def test_step_d1_string_path_fields():
    env = {"PGHOST": "envhost", "PGPORT": "6000", "PGDATABASE": "envdb", "PGUSER": "envuser",
           "PGPASSWORD": "envpass", "PGSSLMODE": "require", "PGAPPNAME": "envapp", "PGCONNECT_TIMEOUT": "9"}
    yaml = {"host": "yh", "port": 7000, "database": "ydb", "username": "yu", "sslmode": "disable",
            "maintenance_database": "ymaint"}
    p = res("--connection", "postgresql://strhost", env=env, yaml=yaml)
    assert (p.host, p.port, p.database, p.user, p.password) == ("strhost", 5432, "postgres", "envuser", "envpass")
    assert (p.sslmode, p.application_name, p.connect_timeout) == ("require", "pgmi", 9.0)
    assert p.maintenance_database == "postgres"
    q = res("--connection", "postgresql://su:sp@h/d?sslmode=disable&application_name=a&connect_timeout=2", env=env)
    assert (q.user, q.password, q.sslmode, q.application_name, q.connect_timeout) == ("su", "sp", "disable", "a", 2)
    assert res("--connection", "postgresql://h/d", env={"USER": "me"}).user == "me"


def test_step_d2_granular_precedence_per_field():
    yaml = {"host": "yh", "port": 7000, "username": "yu", "database": "ydb", "sslmode": "require"}
    p = res(yaml=yaml)
    assert (p.host, p.port, p.user, p.database, p.sslmode) == ("yh", 7000, "yu", "ydb", "require")
    env = {"PGHOST": "eh", "PGPORT": "6000", "PGUSER": "eu", "PGDATABASE": "edb", "PGSSLMODE": "disable",
           "PGAPPNAME": "eapp", "PGPASSWORD": "epw", "PGCONNECT_TIMEOUT": "0"}
    p = res(env=env, yaml=yaml)
    assert (p.host, p.port, p.user, p.database, p.sslmode) == ("eh", 6000, "eu", "edb", "disable")
    assert (p.application_name, p.password, p.connect_timeout, p.source) == ("eapp", "epw", None, "flags")
    p = res("-h", "fh", "-p", "5999", "-U", "fu", "-d", "fdb", "--sslmode", "verify-ca", env=env, yaml=yaml)
    assert (p.host, p.port, p.user, p.database, p.sslmode) == ("fh", 5999, "fu", "fdb", "verify-ca")
    d = res("-d", "x", env={"USER": "", "USERNAME": "winuser"})
    assert (d.host, d.port, d.user, d.sslmode, d.application_name, d.password) == (
        "localhost", 5432, "winuser", "prefer", "pgmi", None)


def test_step_d2_validation():
    assert "invalid --port flag" in str(config_error("-d", "x", "-p", "70000"))
    assert "invalid --port flag" in str(config_error("-d", "x", "-p", "-1"))
    assert res("-d", "x", "-p", "0", env={"PGPORT": "6001"}).port == 6001  # -p 0 = not given
    assert "invalid $PGPORT value" in str(config_error("-d", "x", env={"PGPORT": "abc"}))
    assert "invalid $PGPORT value" in str(config_error("-d", "x", env={"PGPORT": "0"}))
    assert "pgmi.yaml connection.port" in str(config_error("-d", "x", yaml={"port": 99999}))
    for bad in ("-1", "1.5", "soon"):
        err = config_error("-d", "x", env={"PGCONNECT_TIMEOUT": bad})
        assert "invalid $PGCONNECT_TIMEOUT value" in str(err) and "non-negative integer" in str(err)
    config_error("--connection", "postgresql://h/d", env={"PGCONNECT_TIMEOUT": "x"})
    assert res("-d", "x", env={"PGCONNECT_TIMEOUT": "15"}).connect_timeout == 15.0


def test_sslmode_validated_from_every_source():
    assert "--sslmode" in str(config_error("-d", "x", "--sslmode", "on"))
    assert "$PGSSLMODE" in str(config_error("-d", "x", env={"PGSSLMODE": "Require"}))
    assert "pgmi.yaml" in str(config_error("-d", "x", yaml={"sslmode": "maybe"}))
    assert "$PGSSLMODE" in str(config_error("--connection", "postgresql://h/d", env={"PGSSLMODE": "x"}))


def test_step_e_cloud_fields():
    env = {"AZURE_TENANT_ID": "et", "AZURE_CLIENT_ID": "ec", "AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-north-1"}
    az = res("-d", "x", "--azure", "--azure-client-id", "fc", env=env, yaml={"azure_tenant_id": "yt"})
    assert (az.auth_method, az.azure_tenant_id, az.azure_client_id) == ("azure", "et", "fc")
    assert res("-d", "x", env=env).auth_method == "password"  # env alone never enables a method
    aws = res("-d", "x", "--aws", env=env)
    assert (aws.auth_method, aws.aws_region) == ("aws", "eu-north-1")
    assert "region" in str(config_error("-d", "x", "--aws"))
    g = res("-d", "x", "--google", yaml={"auth_method": "azure", "google_instance": "p:r:i"})
    assert (g.auth_method, g.google_instance) == ("google", "p:r:i")  # last applied wins
    assert res("-d", "x", yaml={"auth_method": "AWS"}).auth_method == "password"  # other spellings ignored
    assert "--google-instance" in str(config_error("-d", "x", "--google"))


def test_step_f_tls_files():
    env = {"PGSSLROOTCERT": "/env/ca", "PGSSLCERT": "/env/c", "PGSSLKEY": "/env/k", "PGSSLPASSWORD": "envkeypw"}
    yaml = {"sslrootcert": "/y/ca", "sslcert": "/y/c", "sslkey": "/y/k"}
    p = res("--connection", "postgresql://h/d?sslrootcert=/s/ca&sslpassword=strpw", env=env, yaml=yaml)
    assert (p.sslrootcert, p.sslcert, p.sslkey, p.sslpassword) == ("/s/ca", "/env/c", "/env/k", "strpw")
    p = res("--connection", "postgresql://h/d?sslrootcert=/s/ca", "--sslrootcert", "/f/ca", env=env)
    assert (p.sslrootcert, p.sslpassword) == ("/f/ca", "envkeypw")
    p = res("-d", "x", yaml=yaml)
    assert (p.sslrootcert, p.sslcert, p.sslkey) == ("/y/ca", "/y/c", "/y/k")
    err = config_error("-d", "x", "--sslcert", "/c")
    assert '"sslcert" and "sslkey"' in str(err)
    config_error("-d", "x", env={"PGSSLKEY": "/k"})


def test_step_g_target_and_maintenance():
    p = res("--connection", "postgresql://h/postgres", "-d", "myapp")
    assert (p.database, p.maintenance_database) == ("myapp", "postgres")
    p = res("--connection", "postgresql://h/conndb", "-d", "flagdb")
    assert (p.database, p.maintenance_database) == ("flagdb", "conndb")
    p = res("--connection", "postgresql://h/myapp")
    assert (p.database, p.maintenance_database) == ("myapp", "postgres")
    p = res("--connection", "postgresql://h")
    assert (p.database, p.maintenance_database) == ("postgres", "postgres")
    # granular: yaml maintenance_database is honoured even without -d (fix of the original's quirk)
    p = res(env={"PGDATABASE": "envdb"}, yaml={"maintenance_database": "admin"})
    assert (p.database, p.maintenance_database) == ("envdb", "admin")
    p = res("-d", "t", yaml={"maintenance_database": "admin"})
    assert (p.database, p.maintenance_database) == ("t", "admin")
    assert res(env={"PGDATABASE": "envdb"}).maintenance_database == "postgres"
    # a dbname inside an env string beats yaml connection.database
    assert res(env={"DATABASE_URL": "postgresql://h/urldb"}, yaml={"database": "ydb"}).database == "urldb"


def test_database_required_with_remedies():
    err = config_error(env={"PGHOST": "somewhere"})
    assert str(err).endswith("database name is required")
    text = format_error(err)
    assert "-d" in text and "connection string" in text and "PGDATABASE" in text


def test_worked_examples_6_8():
    assert res("-d", "prod_db", env={"PGDATABASE": "staging_db"}, yaml={"database": "myapp"}).database == "prod_db"
    yaml = {"host": "yh", "port": 5434, "username": "yu", "database": "ydb", "sslmode": "require"}
    p = res("--connection", "postgresql://other.host", yaml=yaml)
    assert (p.host, p.port, p.sslmode, p.database) == ("other.host", 5432, "prefer", "postgres")
    p = res("-d", "x", env={"PGHOST": "envhost", "PGPORT": "5433"},
            yaml={"host": "yamlhost", "port": 5434, "username": "yamluser"})
    assert (p.host, p.port, p.user) == ("envhost", 5433, "yamluser")
    both = {"PGMI_CONNECTION_STRING": "postgresql://a/x", "DATABASE_URL": "postgresql://b/y"}
    assert res(env=both).host == "a"
    assert res("--connection", "postgresql://A/x", env={"PGMI_CONNECTION_STRING": "postgresql://B/y"}).host == "A"
    config_error("--host", "x", env={"DATABASE_URL": "postgresql://h/d"})
    config_error(env={"PGHOST": "only"})


def test_bad_env_string_names_its_source():
    err = config_error(env={"DATABASE_URL": "postgresql://u:topsecret@h:port/db"})
    assert "invalid connection string in $DATABASE_URL: invalid port" in str(err)
    assert "topsecret" not in format_error(err)


# ---------------------------------------------------------------------------------------
# Service file
# ---------------------------------------------------------------------------------------


def test_pgservice_granular_and_string(tmp_path):
    svc = tmp_path / "services.conf"
    svc.write_text("# comment\n[prod]\nhost=svc-host\nport=6100\ndbname=svcdb\nuser=svcuser\n"
                   "sslmode=verify-full\nsearch_path=app\n[other]\nhost=o\n")
    env = {"PGSERVICEFILE": str(svc), "PGSERVICE": "prod", "PGHOST": "envhost", "PGUSER": "envuser"}
    p = res(env=env)
    assert (p.host, p.port, p.database, p.user, p.sslmode) == ("svc-host", 6100, "svcdb", "svcuser", "verify-full")
    assert p.options == {"search_path": "app"}
    assert res("-h", "flaghost", env=env).host == "flaghost"  # flags beat the service
    q = res("--connection", "host=strhost service=prod", env={"PGSERVICEFILE": str(svc)})
    assert (q.host, q.port, q.database) == ("strhost", 6100, "svcdb")
    err = config_error(env={"PGSERVICEFILE": str(svc), "PGSERVICE": "nope"})
    assert 'service "nope" not found' in str(err)
    (tmp_path / "bad.conf").write_text("[x]\nsslmode=sure\n")
    config_error(env={"PGSERVICEFILE": str(tmp_path / "bad.conf"), "PGSERVICE": "x"})


# ---------------------------------------------------------------------------------------
# .pgpass
# ---------------------------------------------------------------------------------------


def _pgpass(tmp_path, text: str, mode: int = 0o600) -> dict:
    path = tmp_path / "pgpass"
    path.write_text(text)
    os.chmod(path, mode)
    return {"PGPASSFILE": str(path)}


def test_pgpass_match_wildcards_escapes_first_wins(tmp_path):
    env = _pgpass(tmp_path, "# comment\n\n"
                            "db.example.com:5432:app:alice:first\n"
                            "db.example.com:5432:app:alice:second\n"
                            r"h\:x:5432:*:bob:pa\:ss\\w" + "\n"
                            "too:few:fields\n"
                            "*:*:*:carol:wild\n"
                            "localhost:6000:postgres:dave:sock\n")
    assert pgpass_lookup("db.example.com", 5432, "app", "alice", env) == "first"
    assert pgpass_lookup("db.example.com", 5433, "app", "alice", env) is None
    assert pgpass_lookup("h:x", 5432, "anything", "bob", env) == "pa:ss\\w"
    assert pgpass_lookup("any.host", 1, "db", "carol", env) == "wild"
    assert pgpass_lookup("/tmp/socketdir", 6000, "postgres", "dave", env) == "sock"  # unix socket = localhost
    assert pgpass_lookup("h", 1, "d", "nobody", env) is None
    assert pgpass_lookup("h", 1, "d", "u", {"PGPASSFILE": str(tmp_path / "missing")}) is None


def test_pgpass_default_location_is_home(tmp_path):
    (tmp_path / ".pgpass").write_text("*:*:*:*:fromhome\n")
    os.chmod(tmp_path / ".pgpass", 0o600)
    assert pgpass_lookup("h", 5432, "d", "u", {"HOME": str(tmp_path)}) == "fromhome"


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
def test_pgpass_group_readable_is_ignored_with_warning(tmp_path):
    env = _pgpass(tmp_path, "*:*:*:*:leaky\n", mode=0o644)
    err = io.StringIO()
    out = Output(stderr=err, stdout=io.StringIO())
    assert pgpass_lookup("h", 5432, "d", "u", env, out) is None
    assert "group or world access" in err.getvalue() and "leaky" not in err.getvalue()


# ---------------------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------------------


def test_repr_never_shows_secrets():
    p = parse_connection_string("postgresql://admin:Sup3rSecretPw@h/db?sslpassword=KeyPass99")
    text = repr(p) + str(p) + repr([p])
    assert "Sup3rSecretPw" not in text and "KeyPass99" not in text
    assert "password=[redacted]" in text and "sslpassword=[redacted]" in text and "admin" in text and "'h'" in text
    assert "password=unset" in repr(ConnParams())


def test_error_messages_never_show_the_password():
    rng = random.Random(7)
    bad_suffixes = ["@h:99999/db", "@h:x/db", "@[::1/db", "@h/db?sslmode=nah", "@h/db?connect_timeout=-3",
                    "@h1,h2:x/db"]
    for _ in range(100):
        secret = "pw" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        for suffix in bad_suffixes:
            for text in (f"postgresql://user:{secret}{suffix}",):
                with pytest.raises(ConfigError) as info:
                    parse_connection_string(text)
                assert secret not in str(info.value) and secret not in format_error(info.value)
        with pytest.raises(ConfigError) as info:
            parse_connection_string(f"Host=h;Password={secret};Port=abc")
        assert secret not in format_error(info.value)


def test_api_maintenance_database_wins_over_every_source():
    """ConnectionFlags.maintenance_database (API only, e.g. the MCP deploy tool) beats string and pgmi.yaml."""
    from pgmilib.records import replace

    base = flags("-d", "app")
    yaml = {"maintenance_database": "from_yaml"}
    assert resolve(base, dict(BASE_ENV), yaml).maintenance_database == "from_yaml"
    assert resolve(replace(base, maintenance_database="admin_db"), dict(BASE_ENV), yaml).maintenance_database == "admin_db"
    via_string = replace(flags("--connection", "postgresql://h/app"), maintenance_database="admin_db")
    assert resolve(via_string, dict(BASE_ENV), None).maintenance_database == "admin_db"
