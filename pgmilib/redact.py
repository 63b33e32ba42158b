"""Secret redaction for every text pgmi shows: error lines, JSON fields, verbose output, reports.

Two fixed passes (keyword, then URI userinfo) catch secrets pgmi never saw as values,
e.g. a password inside a connection string quoted back by a parser. On top of that,
values pgmi *did* see (the resolved password, tokens, sslpassword, secret-looking
parameters) are registered with `register_secret` and replaced wherever they appear.

Registered secrets belong to a run, not to the process: `deploy()` opens a
`secret_scope()`, and a secret registered inside it is known only to that run (and to
threads that copy its context). Two deploys in one process (threads of `pgmi serve` or a
fleet) therefore never share their secret lists. Outside any scope, secrets go to a
process-wide set (one-shot commands).

Every pattern here is linear in the length of the text: a 60,000-character NOTICE must
not cost seconds (the URI pattern only starts at a scheme boundary, so a long word is
scanned once, not once per character).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from contextvars import ContextVar

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any

REDACTED = "[redacted]"

# password=..., sslpassword=..., Password='a b', Password = "x y" (case-insensitive).
_KEYWORD = re.compile(r"""(?i)(ssl)?password\s*=\s*('[^']*'|"[^"]*"|[^\s&;'"]*)""")


# Only a text holding "://" and "@" needs the next two, compiled on first use (the URI pattern
# alone takes a millisecond to compile, on every start-up otherwise).
@functools.cache
def _uri() -> re.Pattern[str]:
    """scheme://user:secret@host -- the secret runs to the last '@' of the token. The lookbehind
    keeps the scheme from starting in the middle of a word (which made the pattern quadratic)."""
    return re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^:/@\s]+):[^\s]*@")


@functools.cache
def _token() -> re.Pattern[str]:
    return re.compile(r"\S+")


_MIN_SECRET = 3  # shorter values would mask ordinary words
_process_secrets: set[str] = set()
_run_secrets: ContextVar[set[str] | None] = ContextVar("pgmi_run_secrets", default=None)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked in all later output of this run."""
    if value and len(value) >= _MIN_SECRET:
        scope = _run_secrets.get()
        (_process_secrets if scope is None else scope).add(value)


@contextlib.contextmanager
def secret_scope() -> Iterator[set[str]]:
    """Secrets registered inside belong to this run only (yields the run's set)."""
    secrets: set[str] = set()
    token = _run_secrets.set(secrets)
    try:
        yield secrets
    finally:
        _run_secrets.reset(token)


def known_secrets() -> frozenset[str]:
    """The secrets the current run (or the process, outside a run) has registered."""
    scope = _run_secrets.get()
    return frozenset(_process_secrets if scope is None else scope | _process_secrets)


def redact(text: str) -> str:
    """Return `text` with passwords, tokens and connection-string secrets masked."""
    if not text:
        return text
    text = _KEYWORD.sub(lambda m: (m.group(1) or "").lower() + "password=" + REDACTED, text)
    if "://" in text and "@" in text:
        text = _token().sub(_redact_uri_token, text)
    for secret in sorted(known_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_nested(value: Any) -> Any:
    """`value` with every string inside it redacted (lists and dicts, as a JSON envelope holds)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_nested(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_nested(v) for k, v in value.items()}
    return value


def _redact_uri_token(match: re.Match[str]) -> str:
    """Mask the userinfo secret of the first URI in one whitespace-free token.

    The secret runs to the token's last '@', so at most one URI per token can carry one;
    searching only up to that '@' keeps the cost linear however many '://' the token has.
    """
    token = match.group(0)
    last_at = token.rfind("@")
    if last_at < 0 or "://" not in token:
        return token
    uri = _uri().search(token, 0, last_at + 1)
    if uri is None:
        return token
    return token[:uri.start()] + uri.group(1) + ":" + REDACTED + "@" + token[uri.end():]
