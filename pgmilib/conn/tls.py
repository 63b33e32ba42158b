"""sslmode -> an explicit `ssl.SSLContext` (or False), as libpq defines the six modes.

pg8000's own default (`ssl_context=None`) tries TLS without verifying anything and falls
back to plaintext silently; pgmi never uses it.
"""

from __future__ import annotations

import os

from pgmilib.conn.params import ConnParams, check_client_cert_pair
from pgmilib.errors import ConfigError, go_quote
from pgmilib.redact import redact

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    import ssl


def _readable(path: str, what: str) -> str:
    path = os.path.expanduser(path)
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ConfigError(f"cannot read {what} file {go_quote(path)}: {error.strerror or error}") from None
    return path


def build_ssl_context(params: ConnParams, host: str) -> ssl.SSLContext | bool:
    """The SSLContext for a TLS attempt under params.sslmode, or False for no TLS.

    allow/prefer/require (without a root cert) encrypt without verifying the server, as
    libpq does; require *with* sslrootcert means verify-ca; verify-full also checks the
    host name against the certificate's SAN (CN ignored, like the original). `sslcrl` is
    loaded only when verifying (libpq ignores it otherwise); it must then hold a CRL from the
    CA that issued the server's certificate. The attempt
    order for allow/prefer is decided by `open_connection`. File problems are ConfigError.
    Unix-domain sockets never use TLS, whatever the sslmode (libpq does the same: the
    socket is local and protected by file permissions).
    """
    mode = params.sslmode or "prefer"
    if mode == "disable" or host.startswith("/"):
        return False
    import ssl  # here: a connection without TLS (a unix socket, sslmode=disable) never loads it

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and bool(params.sslrootcert))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = mode == "verify-full"
        ctx.verify_mode = ssl.CERT_REQUIRED
        if mode == "verify-full":
            ctx.hostname_checks_common_name = False
        if params.sslrootcert and params.sslrootcert != "system":
            path = _readable(params.sslrootcert, "sslrootcert")
            try:
                ctx.load_verify_locations(cafile=path)
            except (ssl.SSLError, ValueError) as error:
                raise ConfigError(f"invalid sslrootcert file {go_quote(path)}: {error}") from None
        else:
            ctx.load_default_certs()
        if params.sslcrl:  # a revoked server certificate fails the handshake
            path = _readable(params.sslcrl, "sslcrl")
            try:
                ctx.load_verify_locations(cafile=path)
            except (ssl.SSLError, ValueError) as error:
                raise ConfigError(f"invalid sslcrl file {go_quote(path)}: {error}") from None
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if params.sslcert or params.sslkey:
        check_client_cert_pair(params)  # resolve() checked already; ConnParams built by hand are checked here
        cert = _readable(params.sslcert, "sslcert")
        key = _readable(params.sslkey, "sslkey")
        passphrase = params.sslpassword or ""
        try:  # a password callable: never let OpenSSL prompt on the terminal
            ctx.load_cert_chain(cert, key, password=lambda: passphrase)
        except (ssl.SSLError, ValueError) as error:
            raise ConfigError(f"cannot load client certificate {go_quote(cert)} with key {go_quote(key)}: "
                              f"{redact(str(error))} (wrong sslpassword, or not a PEM certificate/key?)") from None
    return ctx
