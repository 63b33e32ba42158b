"""Durations as Go writes them (`time.ParseDuration` / `Duration.String`), and the timeout flags.

Users copy values between the two implementations and CI scripts, so the grammar is Go's.
"""

from __future__ import annotations

from pgmilib.config.project_file import ProjectConfig
from pgmilib.errors import ConfigError, Marker, PgmiError, UsageError, go_quote

#: The built-in --timeout when neither the flag nor pgmi.yaml sets one.
DEFAULT_TIMEOUT = "3m"


# ---- durations (Go time.ParseDuration / Duration.String) -------------------------------

_UNITS_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
             "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX_NS = (1 << 63) - 1


def parse_duration_ns(text: str) -> int:
    """Go's time.ParseDuration, in integer nanoseconds; ValueError with Go's message."""
    orig, s = text, text

    def invalid() -> ValueError:  # made only when raised: go_quote imports json
        return ValueError(f"time: invalid duration {go_quote(orig)}")

    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid()
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid()
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        whole, pre = (int(s[:i]) if i else 0), i > 0
        s = s[i:]
        frac, scale, post = 0, 1, False
        if s.startswith("."):
            s = s[1:]
            i = 0
            while i < len(s) and "0" <= s[i] <= "9":
                i += 1
            post = i > 0
            if post:
                frac, scale = int(s[:i]), 10 ** i
            s = s[i:]
        if not pre and not post:
            raise invalid()
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        unit, s = s[:i], s[i:]
        if not unit:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        if unit not in _UNITS_NS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        per = _UNITS_NS[unit]
        total += whole * per + (frac * per) // scale  # Go truncates the fractional part
        if total > _MAX_NS + (1 if negative else 0):
            raise invalid()
    if not negative and total > _MAX_NS:
        raise invalid()
    return -total if negative else total


def parse_duration(text: str) -> float:
    """Go duration text -> seconds ('300ms' -> 0.3, '1h30m' -> 5400.0, '0' -> 0.0)."""
    return parse_duration_ns(text) / 1e9


def format_duration_ns(ns: int) -> str:
    """Go's Duration.String for integer nanoseconds: '3m0s', '1.5s', '1h0m0s', '250ms'."""
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u == 0:
        return "0s"
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return sign + _decimal(u, 3) + "\u00b5s"
        return sign + _decimal(u, 6) + "ms"
    text = _decimal(u % 60_000_000_000, 9) + "s"
    minutes = u // 60_000_000_000
    if minutes:
        text = f"{minutes % 60}m" + text
        if minutes >= 60:
            text = f"{minutes // 60}h" + text
    return sign + text


def _decimal(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10 ** digits)
    tail = str(frac).rjust(digits, "0").rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def format_duration(seconds: float) -> str:
    """Seconds -> Go duration text (180 -> '3m0s', 1.5 -> '1.5s', 0 -> '0s')."""
    return format_duration_ns(round(seconds * 1e9))


def parse_duration_flag(flag: str, text: str) -> float:
    """A duration flag's value in seconds (--timeout, --lock-wait): bad text exit 2, negative exit 10."""
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise UsageError(f"invalid argument {go_quote(text)} for \"{flag}\" flag: {error}") from None
    if seconds < 0:
        raise ConfigError(f"{flag} cannot be negative")
    return seconds


#: How a caller names the explicit timeout it was given, for the error about a bad value.
TIMEOUT_FLAG = "--timeout"  # the CLI flag: Go's flag-parse wording
TIMEOUT_ARGUMENT = "timeout"  # the MCP deploy tool's argument: `invalid timeout: ...`


def parse_timeout(text: str, given_as: str = TIMEOUT_FLAG) -> float:
    """An explicit timeout (the --timeout flag, the MCP tool's `timeout`) in seconds; 0 means none.

    One rule for every caller: Go's duration grammar; a bad value is a usage error (exit 2)
    named as its caller knows it (`invalid argument "x" for "--timeout" flag: ...` on the command
    line, `invalid timeout: ...` for an MCP argument); a negative one is a configuration error
    (exit 10), worded the same for every caller.
    """
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        if given_as == TIMEOUT_FLAG:
            raise UsageError(f"invalid argument {go_quote(text)} for \"{TIMEOUT_FLAG}\" flag: {error}") from None
        raise PgmiError(f"invalid {given_as}: {error}", markers=(Marker.USAGE,)) from None
    if seconds < 0:
        raise ConfigError("timeout cannot be negative")
    return seconds


def resolve_timeout(explicit: str | float | None, config: ProjectConfig | None) -> float | None:
    """The deploy's effective timeout in seconds; None means no deadline.

    The explicit value (None: not given; text from the command line or an API caller, or
    seconds a caller already parsed with `parse_timeout`) > pgmi.yaml `timeout` > 3m. The CLI,
    the MCP server and fleet deploys all reach this through `deploy()`. pgmi.yaml's value is
    parsed only when it is used, so a bad one is harmless when a timeout is given; a bad one
    that is used is a configuration error (exit 10).
    """
    origin, value = _timeout_source(explicit, config)
    if origin == _FROM_YAML:
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise ConfigError(f"invalid timeout in pgmi.yaml: {error}") from None
    else:
        seconds = parse_timeout(value) if isinstance(value, str) else float(value)
    if seconds < 0:
        raise ConfigError("timeout cannot be negative")
    return None if seconds == 0 else seconds


def timeout_origin(explicit: str | float | None, config: ProjectConfig | None) -> str:
    """Where `resolve_timeout`'s answer came from, in the words an expiry message ends with."""
    return _timeout_source(explicit, config)[0]


_FROM_YAML = "pgmi.yaml timeout"


def _timeout_source(explicit: str | float | None, config: ProjectConfig | None) -> tuple[str, str | float]:
    """The precedence rule, once: (where the timeout comes from, its unparsed value)."""
    if explicit is not None:
        return "--timeout", explicit
    if config and config.timeout:
        return _FROM_YAML, config.timeout
    return f"the default {DEFAULT_TIMEOUT}; set --timeout or pgmi.yaml timeout", DEFAULT_TIMEOUT
