"""RSA key pairs without a crypto package: prime generation, DER/PEM output, a private on-disk cache.

Used by the Cloud SQL connector (cloudsql.py): its client certificate is issued for a key
pgmi holds. Generation is textbook RSA (FIPS 186-4 shape): two random 1024-bit primes with
the top two bits set (so n has exactly 2048 bits), found by trial division by the small
primes then Miller-Rabin with random bases, e = 65537, d = e^-1 mod lcm(p-1, q-1). The
randomness is `secrets` (the OS's CSPRNG). It takes about a second of CPU in CPython,
so the key is generated once and cached.

The cache holds the private key, so it is written 0600 in a 0700 directory (atomic_write:
the temporary file is 0600 from its creation), and a cached file that another user could
read, or that is not ours, is never used: a new key replaces it.
"""

from __future__ import annotations

import base64
import math
import os
import secrets
import stat
from collections.abc import Mapping

from pgmilib.conn.auth.rsa import RSA_OID, BadKey, RsaKey, load_private_key
from pgmilib.fileio import atomic_write

PUBLIC_EXPONENT = 65537
KEY_BITS = 2048
MR_ROUNDS = 8  # with trial division first: error probability far below 2^-100 for 1024-bit candidates
CACHE_FILE = "cloudsql-client-key.pem"
_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, math.isqrt(p) + 1))]


def _probable_prime(n: int) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(MR_ROUNDS):
        a = 2 + secrets.randbelow(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (0b11 << (bits - 2)) | 1
        if (candidate - 1) % PUBLIC_EXPONENT and _probable_prime(candidate):
            return candidate


def generate(bits: int = KEY_BITS) -> RsaKey:
    """A fresh RSA key of exactly `bits` bits with e = 65537."""
    while True:
        p, q = _prime(bits // 2), _prime(bits - bits // 2)
        if p == q:
            continue
        if p < q:
            p, q = q, p
        n = p * q
        if n.bit_length() != bits:
            continue
        phi = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
        d = pow(PUBLIC_EXPONENT, -1, phi)
        return RsaKey(n, PUBLIC_EXPONENT, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))


# -- DER / PEM -----------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _len(len(body)) + body


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))  # a leading 0 keeps it positive


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def public_key_pem(key: RsaKey) -> str:
    """SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), what the Admin API's generateEphemeralCert takes."""
    rsa_public = _tlv(0x30, _int(key.n) + _int(key.e))
    algorithm = _tlv(0x30, _tlv(0x06, RSA_OID) + b"\x05\x00")
    return _pem("PUBLIC KEY", _tlv(0x30, algorithm + _tlv(0x03, b"\x00" + rsa_public)))


def private_key_pem(key: RsaKey) -> str:
    """PKCS#1 RSAPrivateKey (`BEGIN RSA PRIVATE KEY`), which `ssl` loads as a client key."""
    fields = (0, key.n, key.e, key.d, key.p, key.q, key.dp, key.dq, key.qinv)
    return _pem("RSA PRIVATE KEY", _tlv(0x30, b"".join(_int(v) for v in fields)))


# -- the cache -----------------------------------------------------------------------------


def cache_dir(environ: Mapping[str, str]) -> str | None:
    """$PGMI_CACHE_DIR (`off`: none), else $XDG_CACHE_HOME/pgmi, else ~/.cache/pgmi."""
    setting = environ.get("PGMI_CACHE_DIR", "")
    if setting.lower() == "off":
        return None
    if setting:
        return setting
    home = environ.get("HOME") or os.path.expanduser("~")
    base = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "pgmi") if os.path.isabs(base) else None


def private_file_usable(path: str) -> bool:
    """A regular file of ours that nobody else can read or write (links are not followed)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077


def cached_key(directory: str | None) -> tuple[RsaKey, str | None]:
    """The cached key and its file (0600), or a new key written there; (key, None) without a cache."""
    if directory is None:
        return generate(), None
    path = os.path.join(directory, CACHE_FILE)
    if private_file_usable(path):
        try:
            with open(path, encoding="ascii") as fh:
                key = load_private_key(fh.read())
            if key.e == PUBLIC_EXPONENT and key.n.bit_length() == KEY_BITS:
                return key, path
        except (OSError, UnicodeDecodeError, BadKey):
            pass  # damaged: replaced below
    key = generate()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write(path, private_key_pem(key), mode=0o600)
    except OSError:
        return key, None  # an unwritable cache only costs time
    return key, path
