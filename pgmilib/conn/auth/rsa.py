"""RS256 without a crypto package: PEM/DER reading, PKCS#8 RSA keys, RSASSA-PKCS1-v1_5 with SHA-256.

Only signing is needed (service-account JWTs, Entra certificate assertions), and signing
with a key we were given is plain modular arithmetic: `pow(m, d, n)`, done here with the
CRT parameters for speed. Key generation (the Cloud SQL connector's own key) is rsagen.py.
The DER reader understands exactly what PKCS#8 and X.509 use here (definite lengths).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import NamedTuple

RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


class BadKey(ValueError):
    """The key text is not something we can sign with; the message says why."""


class RsaKey(NamedTuple):
    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8


def pem_blocks(text: str) -> list[tuple[str, bytes]]:
    """All PEM blocks of `text` as (label, DER bytes)."""
    blocks = []
    for label, body in _PEM.findall(text):
        try:
            blocks.append((label, base64.b64decode("".join(body.split()), validate=True)))
        except ValueError:
            raise BadKey(f"PEM block {label!r} is not valid base64") from None
    return blocks


def _read(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    if pos + 2 > len(der):
        raise BadKey("truncated DER")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(der):
            raise BadKey("bad DER length")
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise BadKey("truncated DER")
    return tag, pos, pos + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items, pos = [], start
    while pos < end:
        tag, s, e = _read(der, pos)
        items.append((tag, s, e))
        pos = e
    return items


def _sequence(der: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int]]:
    tag, s, e = _read(der, start)
    if tag != 0x30:
        raise BadKey("expected a DER SEQUENCE")
    return _children(der, s, e if end is None else min(e, end))


def _rsa_private(der: bytes) -> RsaKey:
    """PKCS#1 RSAPrivateKey: SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }."""
    items = _sequence(der)
    if len(items) < 9 or any(tag != 0x02 for tag, _, _ in items[:9]):
        raise BadKey("not an RSA private key")
    ints = [int.from_bytes(der[s:e], "big", signed=True) for _, s, e in items[:9]]
    key = RsaKey(*ints[1:9])
    if key.p * key.q != key.n or key.n.bit_length() < 1024:
        raise BadKey("inconsistent or too small RSA key")
    return key


def load_private_key(pem: str) -> RsaKey:
    """The RSA key of a PKCS#8 `BEGIN PRIVATE KEY` block (also accepts PKCS#1 `RSA PRIVATE KEY`)."""
    blocks = pem_blocks(pem)
    for label, der in blocks:
        if label == "PRIVATE KEY":
            items = _sequence(der)
            if len(items) < 3 or items[1][0] != 0x30 or items[2][0] != 0x04:
                raise BadKey("not a PKCS#8 PrivateKeyInfo")
            alg = _children(der, items[1][1], items[1][2])
            if not alg or alg[0][0] != 0x06 or der[alg[0][1]:alg[0][2]] != RSA_OID:
                raise BadKey("the PKCS#8 key is not an RSA key (only RSA keys can sign RS256)")
            return _rsa_private(der[items[2][1]:items[2][2]])
        if label == "RSA PRIVATE KEY":
            return _rsa_private(der)
        if label == "ENCRYPTED PRIVATE KEY":
            raise BadKey("encrypted private keys are not supported")
    found = ", ".join(label for label, _ in blocks) or "no PEM block"
    raise BadKey(f"expected a PKCS#8 'BEGIN PRIVATE KEY' block, found {found}")


def sign_rs256(key: RsaKey, data: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 signature over SHA-256(data) (RFC 8017 section 8.2), CRT exponentiation."""
    t = SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
    k = key.size
    if k < len(t) + 11:
        raise BadKey("RSA key too small for SHA-256")
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    m = int.from_bytes(em, "big")
    m1, m2 = pow(m, key.dp, key.p), pow(m, key.dq, key.q)
    h = (key.qinv * (m1 - m2)) % key.p
    s = m2 + h * key.q
    if pow(s, key.e, key.n) != m:  # a fault in the CRT inputs must never leak a bad signature
        raise BadKey("RSA key parameters are inconsistent")
    return s.to_bytes(k, "big")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_rs256(header: dict, claims: dict, key: RsaKey) -> str:
    """A compact JWS: base64url(header).base64url(claims).base64url(signature)."""
    import json

    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", **header}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    return f"{head}.{body}.{b64url(sign_rs256(key, signing_input))}"
