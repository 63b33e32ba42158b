"""Deployment parameters: `--param`, `--params-file` (a simpler grammar than .env), merge, validation."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence

from pgmilib.config.files import describe, read_config_bytes
from pgmilib.errors import ConfigError, go_quote
from pgmilib.redact import register_secret

_PARAMS_FILE_TIP = "Tip: each line must be KEY=VALUE; blank lines and lines starting with # are ignored."


# ---- deployment parameters --------------------------------------------------------------


def parse_param(arg: str) -> tuple[str, str]:
    """`--param key=value` -> (key, value); split at the first '=', nothing trimmed.

    The empty-key message does not echo the argument (it is all value, maybe a secret).
    """
    key, sep, value = arg.partition("=")
    if not sep:
        raise ConfigError(f"invalid parameter format: --param {go_quote(arg)} is not in key=value format "
                          "(example: --param env=production)")
    if not key:
        raise ConfigError("invalid parameter format: --param has an empty key (expected key=value)")
    return key, value


def parse_params_text(text: str, source: str) -> dict[str, str]:
    """Params-file grammar: KEY=VALUE lines, `#` lines, blank lines.

    No export, no inline comments, no expansion, no multi-line values; one pair of
    matching surrounding quotes is removed. ConfigError names the file and line.
    """
    text = text.removeprefix("\ufeff")
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        problem = "invalid format, expected KEY=VALUE" if not sep else "empty key" if not key else ""
        if problem:
            error = ConfigError(f"failed to parse params file '{source}': line {number}: {problem}")
            error.trailer = ["", _PARAMS_FILE_TIP]
            raise error
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load_params_files(paths: Sequence[str]) -> dict[str, str]:
    """Read every `--params-file` in order; later files win. ConfigError names the file."""
    merged: dict[str, str] = {}
    for name in paths:
        try:
            text = read_config_bytes(name).decode("utf-8")
        except OSError as error:
            raise ConfigError(f"failed to read params file '{name}': {describe(error)}") from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"failed to read params file '{name}': not valid UTF-8 (byte {error.start})") from error
        merged.update(parse_params_text(text, name))
    return merged


def merge_params(
    yaml_params: Mapping[str, str] | None,
    file_params: Mapping[str, str] | None,
    cli_params: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> dict[str, str]:
    """pgmi.yaml < params files < --param, by exact (case-sensitive) key; later --param wins."""
    merged: dict[str, str] = dict(yaml_params or {})
    merged.update(file_params or {})
    pairs = cli_params.items() if isinstance(cli_params, Mapping) else (cli_params or ())
    for key, value in pairs:
        merged[key] = value
    return merged


def validate_params(params: Mapping[str, str]) -> None:
    """Check every key and value before anything connects.

    Messages name the key, never the value. Keys that differ only in case are rejected
    here: in the session both would become the same `pgmi.<lower(key)>` setting, and the
    original failed later with an opaque primary-key violation.
    """
    lowered: dict[str, str] = {}
    for key, value in params.items():
        if not _param_key().fullmatch(key):
            raise ConfigError(
                f"invalid parameter key '{key}': must start with a letter or underscore and contain only "
                "letters, digits and underscores, 1-63 characters (PostgreSQL identifier limit)")
        nul = value.find("\x00")
        if nul >= 0:
            raise ConfigError(f"invalid value for parameter '{key}': contains NUL byte at offset {nul}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"invalid value for parameter '{key}': not valid UTF-8") from None
        other = lowered.setdefault(key.lower(), key)
        if other != key:
            raise ConfigError(f"parameter keys '{other}' and '{key}' differ only in case; "
                              "parameter names are case-insensitive in the session")




# The two patterns are compiled on first use: only a deploy with parameters needs them.
@functools.cache
def _param_key() -> re.Pattern[str]:
    return re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@functools.cache
def _secret_name() -> re.Pattern[str]:
    """Parameter names that say "this value is a secret" (password, api_token, client_secret, ...)."""
    return re.compile(r"(?i)(pass(word|wd|phrase)|pwd|secret|token|api_?key|private_?key|credential)")


def is_secret_name(key: str) -> bool:
    """True for parameter names whose values must never be shown (matched anywhere in the name)."""
    return _secret_name().search(key) is not None


def register_secret_params(params: Mapping[str, str]) -> None:
    """Register the values of secret-looking parameters for redaction (like passwords)."""
    for key, value in params.items():
        if is_secret_name(key):
            register_secret(value)
