"""Secret redaction for every text pgmi shows: error lines, JSON fields, verbose output.

Two fixed passes (keyword, then URI userinfo) catch secrets pgmi never saw as values,
e.g. a password inside a connection string quoted back by a parser. On top of that,
values pgmi *did* see (the resolved password, tokens, sslpassword) are registered with
`register_secret` and replaced wherever they appear.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# password=..., sslpassword=..., Password='a b', Password = "x y" (case-insensitive).
_KEYWORD = re.compile(r"""(?i)(ssl)?password\s*=\s*('[^']*'|"[^"]*"|[^\s&;'"]*)""")
# scheme://user:secret@host -- the secret runs to the last '@' of the token.
_URI = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]+):[^\s]*@")

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked in all later output."""
    if value and len(value) >= 3:
        _secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with passwords, tokens and connection-string secrets masked."""
    if not text:
        return text
    text = _KEYWORD.sub(lambda m: (m.group(1) or "").lower() + "password=" + REDACTED, text)
    text = _URI.sub(lambda m: m.group(1) + ":" + REDACTED + "@", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
