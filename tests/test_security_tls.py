"""TLS and .pgpass rules on the wire and on disk, each pinned by a test that fails when it is broken.

A server certificate whose CN is `localhost` but which has no subjectAltName: libpq's
verify-full (and pgmi's) must refuse it, because the CN is ignored once names are checked.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pgmilib.conn.connect import open_connection
from pgmilib.conn.params import ConnParams
from pgmilib.conn.pgpass import pgpass_lookup
from pgmilib.conn.resolve import ConnectionFlags, resolve
from pgmilib.conn.tls import build_ssl_context
from pgmilib.errors import ConfigError, ConnectionFailed, Exit, exit_code
from pgmilib.output import Output
from pgmilib.redact import known_secrets
from pgmilib.server.cluster import Cluster
from tests.test_tls import SSL_PG_BIN, _make_ca, _make_leaf, _make_pki
from tests.test_tls import pytestmark as tls_marks


@pytest.fixture(scope="module")
def pki():
    import shutil
    import tempfile

    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
    d = Path(tempfile.mkdtemp(prefix="pgmi-pki-", dir=parent))
    try:
        _make_pki(d)
        _make_leaf(d, "cnonly", "ca", "localhost", "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth")
        _make_ca(d, "spare")
        os.chmod(d / "cnonly.key", 0o600)
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(d / "cnonly.key", pw.pw_uid, pw.pw_gid)
        for name in ("cnonly.crt", "spare.crt"):
            os.chmod(d / name, 0o644)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _tls_cluster(pki: Path, cert: str):
    settings = {"ssl": "on", "ssl_cert_file": str(pki / f"{cert}.crt"), "ssl_key_file": str(pki / f"{cert}.key")}
    return Cluster(listen_tcp=True, settings=settings, pg_bin=SSL_PG_BIN or "")


@pytest.fixture(scope="module")
def cn_only_server(pki):
    with _tls_cluster(pki, "cnonly") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def san_server(pki):
    with _tls_cluster(pki, "server") as cluster:
        yield cluster


def _params(server, sslmode: str, host: str = "localhost", **extra) -> ConnParams:
    return ConnParams(host=host, port=server.port, user="postgres", database="postgres", sslmode=sslmode, **extra)


def _ssl_in_use(p: ConnParams) -> bool:
    conn = open_connection(p, retry=False)
    try:
        return conn.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0][0]
    finally:
        conn.close()


@tls_marks[0]
@tls_marks[1]
def test_verify_full_rejects_a_certificate_whose_cn_matches_but_has_no_san(cn_only_server, pki):
    root = str(pki / "ca.crt")
    assert _ssl_in_use(_params(cn_only_server, "verify-ca", sslrootcert=root)) is True  # the chain is fine
    with pytest.raises(ConnectionFailed) as info:
        open_connection(_params(cn_only_server, "verify-full", sslrootcert=root), retry=False)
    assert "SSL/TLS connection error" in str(info.value) and exit_code(info.value) == Exit.CONNECTION


@tls_marks[0]
@tls_marks[1]
def test_sslrootcert_system_uses_the_default_trust_store(san_server, pki, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.crt"))  # OpenSSL's default store, as a system CA would be
    assert _ssl_in_use(_params(san_server, "verify-full", sslrootcert="system")) is True
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "spare.crt"))
    with pytest.raises(ConnectionFailed) as info:
        open_connection(_params(san_server, "verify-full", sslrootcert="system"), retry=False)
    assert "certificate" in str(info.value)
    # `system` is a keyword, not a file name: no "cannot read sslrootcert file" here
    ctx = build_ssl_context(_params(san_server, "verify-ca", sslrootcert="system"), "localhost")
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname is False


def test_the_six_modes_build_the_context_libpq_defines(tmp_path):
    p = ConnParams(host="db.example", port=5432, user="u", database="d")
    for mode in ("allow", "prefer", "require", None):
        p.sslmode = mode
        ctx = build_ssl_context(p, "db.example")
        assert ctx.verify_mode.name == "CERT_NONE" and ctx.check_hostname is False, mode
    p.sslmode = "disable"
    assert build_ssl_context(p, "db.example") is False
    p.sslmode = "verify-ca"
    ctx = build_ssl_context(p, "db.example")
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname is False
    p.sslmode = "verify-full"
    ctx = build_ssl_context(p, "db.example")
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname is True
    assert ctx.hostname_checks_common_name is False


def test_sslmode_require_over_a_unix_socket_connects_in_plaintext(pg):
    socket_dir = getattr(pg, "dir", None) or pg.params.host
    assert socket_dir.startswith("/"), "needs a server reachable over a unix socket"
    for mode in ("require", "verify-full", "prefer"):
        p = ConnParams(host=socket_dir, port=pg.port if hasattr(pg, "port") else pg.params.port, user=pg.user,
                       database="postgres", sslmode=mode)
        assert build_ssl_context(p, socket_dir) is False
        assert _ssl_in_use(p) is False


# ---- sslcert and sslkey come as a pair, at every entry point ------------------------------------

PAIR = 'both "sslcert" and "sslkey" are required'


@pytest.mark.parametrize("given", ["sslcert", "sslkey"])
def test_client_cert_pair_rule_at_every_entry_point(given, tmp_path):
    missing = "sslkey" if given == "sslcert" else "sslcert"
    path = str(tmp_path / "client.pem")
    env = {"PGHOST": "db.example", "PGUSER": "u", "PGDATABASE": "d"}
    entry_points = {
        "flag": lambda: resolve(ConnectionFlags(**{given: path}), env, None),
        "string": lambda: resolve(ConnectionFlags(connection=f"host=h user=u dbname=d {given}={path}"), env, None),
        "uri": lambda: resolve(ConnectionFlags(connection=f"postgresql://u@h/d?{given}={path}"), env, None),
        "environment": lambda: resolve(ConnectionFlags(), {**env, f"PG{given.upper()}": path}, None),
        "pgmi.yaml": lambda: resolve(ConnectionFlags(), env, {given: path}),
        "ConnParams": lambda: build_ssl_context(ConnParams(host="h", sslmode="require", **{given: path}), "h"),
        "open_connection": lambda: open_connection(ConnParams(host="127.0.0.1", port=1, user="u", database="d",
                                                              sslmode="require", **{given: path}), retry=False),
    }
    for where, call in entry_points.items():
        with pytest.raises(ConfigError) as info:
            call()
        assert PAIR in str(info.value) and f"({missing} is missing)" in str(info.value), where
        assert exit_code(info.value) == Exit.CONFIG, where


# ---- .pgpass permissions and fields -------------------------------------------------------------


def _pgpass(tmp_path: Path, text: str, mode: int) -> dict[str, str]:
    path = tmp_path / "pgpass"
    path.write_text(text)
    os.chmod(path, mode)
    return {"PGPASSFILE": str(path)}


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610, 0o601, 0o620, 0o602, 0o700 | 0o010])
def test_pgpass_readable_or_writable_by_others_is_ignored_with_the_warning(tmp_path, mode):
    env = _pgpass(tmp_path, "*:*:*:*:Leaky-Pass\n", mode)
    err = io.StringIO()
    assert pgpass_lookup("h", 5432, "d", "u", env, Output(stderr=err, stdout=io.StringIO())) is None
    assert "group or world access" in err.getvalue() and "0600" in err.getvalue()
    assert str(tmp_path / "pgpass") in err.getvalue() and "Leaky-Pass" not in err.getvalue()
    assert "Leaky-Pass" not in known_secrets()


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_pgpass_owner_only_is_used(tmp_path, mode):
    env = _pgpass(tmp_path, "*:*:*:*:Owner-Only-Pass\n", mode)
    err = io.StringIO()
    assert pgpass_lookup("h", 5432, "d", "u", env, Output(stderr=err, stdout=io.StringIO())) == "Owner-Only-Pass"
    assert err.getvalue() == ""
    assert "Owner-Only-Pass" in known_secrets()


def test_pgpass_that_is_not_a_plain_file_is_ignored(tmp_path):
    (tmp_path / "dir").mkdir()
    err = io.StringIO()
    assert pgpass_lookup("h", 1, "d", "u", {"PGPASSFILE": str(tmp_path / "dir")},
                         Output(stderr=err, stdout=io.StringIO())) is None
    assert "not a plain file" in err.getvalue()
    assert pgpass_lookup("h", 1, "d", "u", {"PGPASSFILE": str(tmp_path / "missing")}) is None


@pytest.mark.parametrize(("field", "password"), [
    ("pa:ss", "pa:ss"),            # an unescaped ':' in the last field belongs to the password
    (r"pa\:ss", "pa:ss"),
    ("secret\\", "secret\\"),      # a trailing backslash is kept, as libpq does
    (r"a\\b", "a\\b"),
    ("x:y:z", "x:y:z"),
    (r"end\\", "end\\"),
])
def test_pgpass_password_field(tmp_path, field, password):
    env = _pgpass(tmp_path, f"h:5432:d:u:{field}\n", 0o600)
    assert pgpass_lookup("h", 5432, "d", "u", env) == password


def test_pgpass_matching(tmp_path):
    env = _pgpass(tmp_path, "  # comment\n\n"
                            "db:5432:app:alice:first\n"
                            "db:5432:app:alice:second\n"
                            "too:few:fields\n"
                            "db:*:*:bob:any-port\n"
                            "localhost:6000:postgres:dave:sock\n", 0o600)
    assert pgpass_lookup("db", 5432, "app", "alice", env) == "first"
    assert pgpass_lookup("db", 5433, "app", "alice", env) is None
    assert pgpass_lookup("db", 5432, "other", "alice", env) is None
    assert pgpass_lookup("DB", 5432, "app", "alice", env) is None
    assert pgpass_lookup("db", 1, "x", "bob", env) == "any-port"
    assert pgpass_lookup("/run/pg", 6000, "postgres", "dave", env) == "sock"
    assert pgpass_lookup("", 6000, "postgres", "dave", env) == "sock"
    assert pgpass_lookup("too", 0, "few", "fields", env) is None


def test_pgpass_default_is_home(tmp_path):
    (tmp_path / ".pgpass").write_text("*:*:*:*:From-Home\n")
    os.chmod(tmp_path / ".pgpass", 0o600)
    assert pgpass_lookup("h", 5432, "d", "u", {"HOME": str(tmp_path)}) == "From-Home"
    other = tmp_path / "elsewhere"
    other.write_text("*:*:*:*:From-Env\n")
    os.chmod(other, 0o600)
    assert pgpass_lookup("h", 5432, "d", "u", {"HOME": str(tmp_path), "PGPASSFILE": str(other)}) == "From-Env"



def test_unreadable_certificate_files_name_the_file_and_the_reason(tmp_path):
    missing = tmp_path / "missing.crt"
    for field in ("sslrootcert", "sslcert"):
        extra = {field: str(missing)} if field == "sslrootcert" else {"sslcert": str(missing), "sslkey": str(missing)}
        with pytest.raises(ConfigError) as info:
            build_ssl_context(ConnParams(host="h", sslmode="verify-full", **extra), "h")
        assert str(info.value) == (f'invalid configuration: cannot read {field} file "{missing}": '
                                   "No such file or directory")


# ---- client certificates (mutual TLS), a real handshake on loopback ------------------------------


def _mutual_handshake(pki: Path, client) -> str:
    """A TLS server that demands a client certificate from our CA; returns the client's CN."""
    import socket
    import ssl
    import threading

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(str(pki / "ca.crt"))
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn, server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen.extend(v for rdn in tls.getpeercert()["subject"] for k, v in rdn if k == "commonName")
                tls.sendall(b"x")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as sock, \
                client.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.recv(1)
    finally:
        listener.close()
        thread.join(10)
    return seen[0]


def _client_params(pki: Path, mode: str = "verify-full", **extra) -> ConnParams:
    extra.setdefault("sslrootcert", str(pki / "ca.crt"))
    return ConnParams(host="localhost", port=5432, user="certuser", database="d", sslmode=mode, **extra)


@tls_marks[0]
def test_client_certificate_is_presented(pki):
    plain = _client_params(pki, sslcert=str(pki / "client.crt"), sslkey=str(pki / "client.key"))
    assert _mutual_handshake(pki, build_ssl_context(plain, "localhost")) == "certuser"
    from tests.test_tls import KEY_PASSWORD

    enc = _client_params(pki, "require", sslcert=str(pki / "client.crt"), sslkey=str(pki / "client_enc.key"),
                         sslpassword=KEY_PASSWORD)
    assert _mutual_handshake(pki, build_ssl_context(enc, "localhost")) == "certuser"


@tls_marks[0]
@pytest.mark.parametrize("sslpassword", [None, "", "wrong"])
def test_encrypted_client_key_without_the_right_sslpassword(pki, sslpassword):
    enc = _client_params(pki, sslcert=str(pki / "client.crt"), sslkey=str(pki / "client_enc.key"),
                         sslpassword=sslpassword)
    with pytest.raises(ConfigError) as info:
        build_ssl_context(enc, "localhost")
    text = str(info.value)
    head = (f'invalid configuration: cannot load client certificate "{pki / "client.crt"}" with key '
            f'"{pki / "client_enc.key"}": ')
    tail = " (wrong sslpassword, or not a PEM certificate/key?)"
    assert text.startswith(head) and text.endswith(tail)
    assert text[len(head):-len(tail)].strip() not in ("", "None")  # OpenSSL's reason is passed on


@tls_marks[0]
def test_unreadable_client_key_names_the_key(pki, tmp_path):
    p = _client_params(pki, sslcert=str(pki / "client.crt"), sslkey=str(tmp_path / "none.key"))
    with pytest.raises(ConfigError) as info:
        build_ssl_context(p, "localhost")
    assert str(info.value) == f'invalid configuration: cannot read sslkey file "{tmp_path / "none.key"}": ' \
                              "No such file or directory"


@tls_marks[0]
def test_invalid_sslrootcert_names_the_file(pki):
    with pytest.raises(ConfigError) as info:
        build_ssl_context(_client_params(pki, sslrootcert=str(pki / "client.key")), "localhost")
    assert str(info.value).startswith(f'invalid configuration: invalid sslrootcert file "{pki / "client.key"}": ')


def test_require_with_a_root_certificate_verifies_and_prefer_does_not(tmp_path):
    for mode, verify in (("require", "CERT_REQUIRED"), ("prefer", "CERT_NONE"), ("allow", "CERT_NONE")):
        ctx = build_ssl_context(ConnParams(host="h", sslmode=mode, sslrootcert="system"), "h")
        assert ctx.verify_mode.name == verify, mode
        assert ctx.check_hostname is False


# ---- .pgpass details ----------------------------------------------------------------------------


def test_pgpass_comments_never_match(tmp_path):
    env = _pgpass(tmp_path, "#db:5432:app:alice:commented\n  #db:5432:app:alice:indented\n"
                            "*:*:*:alice:real\n", 0o600)
    assert pgpass_lookup("#db", 5432, "app", "alice", env) == "real"
    assert pgpass_lookup("  #db", 5432, "app", "alice", env) == "real"


def test_pgpass_with_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "pgpass"
    path.write_bytes(b"h\xff:5432:d:u:latin\n*:*:*:u:P\xc3\xa4ss\n")
    os.chmod(path, 0o600)
    assert pgpass_lookup("h", 5432, "d", "u", {"PGPASSFILE": str(path)}) == "Päss"


def test_pgpass_not_a_plain_file_warning_names_it(tmp_path):
    err = io.StringIO()
    pgpass_lookup("h", 1, "d", "u", {"PGPASSFILE": str(tmp_path)}, Output(stderr=err, stdout=io.StringIO()))
    assert err.getvalue() == f'WARNING: password file "{tmp_path}" is not a plain file; ignoring it\n'


def test_pgpass_world_readable_warning_text(tmp_path):
    env = _pgpass(tmp_path, "*:*:*:*:x\n", 0o644)
    err = io.StringIO()
    pgpass_lookup("h", 1, "d", "u", env, Output(stderr=err, stdout=io.StringIO()))
    assert err.getvalue() == (f'WARNING: password file "{tmp_path / "pgpass"}" has group or world access; '
                              "permissions should be u=rw (0600) or less; ignoring it\n")


def test_pgpass_without_home_in_the_environment_uses_the_user_home(tmp_path, monkeypatch):
    (tmp_path / ".pgpass").write_text("*:*:*:*:From-User-Home\n")
    os.chmod(tmp_path / ".pgpass", 0o600)
    monkeypatch.setenv("HOME", str(tmp_path))  # what expanduser("~") reads
    assert pgpass_lookup("h", 5432, "d", "u", {}) == "From-User-Home"
