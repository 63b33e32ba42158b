""".env files: the godotenv subset the original tool accepts.

The values are merged into an explicit environment *mapping* that the caller owns (a deploy
request's copy of the environment); nothing here writes to `os.environ`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path

from pgmilib.config.files import read_config_bytes
from pgmilib.errors import ConfigError

DOTENV_FILE = ".env"


# ---- .env (godotenv subset) -------------------------------------------------------------

_ENV_SPACE = " \t\v\f\r\x85\xa0"


@functools.cache
def _expand() -> re.Pattern[str]:
    """Compiled on first use: only a project with a .env file needs it."""
    return re.compile(r"(\\)?\$(\()?\{?([A-Z0-9_]+)?\}?")


class _EnvSyntax(Exception):
    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def parse_env_text(text: str, source: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse `.env` text (godotenv grammar); ConfigError naming `source:line`.

    KEY=VALUE or KEY: VALUE, optional `export `, `#` comment lines, unquoted values cut at
    a `#` that follows whitespace, 'single' (literal) and "double" (\\n, \\r, \\X escapes)
    quotes that may span lines, and $VAR / ${VAR} expansion (earlier keys of this file,
    then `environ`, else empty) outside single quotes. Last duplicate wins.
    Errors never quote the file's content (it usually holds credentials).
    Unlike godotenv, an unquoted value is cut at the *first* whitespace-preceded `#`
    (godotenv cuts at the last one, keeping `a # b` of `a # b # c`), and anything but a
    comment after a closing quote is an error.
    """
    environ = {} if environ is None else environ
    src = text.replace("\r\n", "\n")
    src = src.removeprefix("\ufeff")
    values: dict[str, str] = {}
    pos, n = 0, len(src)

    counted = [0, 1]  # [offset, line at offset]: line numbers are counted forward only (linear)

    def line_at(i: int) -> int:
        offset, line = counted
        line += src.count("\n", offset, i) if i >= offset else -src.count("\n", i, offset)
        counted[:] = [i, line]
        return line

    def expand(value: str) -> str:
        def one(match: re.Match) -> str:
            if match.group(1) or match.group(2):
                return match.group(0)[1:] if match.group(1) else match.group(0)
            name = match.group(3)
            if not name:
                return match.group(0)
            if name in values:
                return values[name]
            return environ.get(name, "")

        return _expand().sub(one, value)

    try:
        nul = src.find("\x00")
        if nul >= 0:  # an environment value cannot hold NUL (nor can a libpq parameter)
            raise _EnvSyntax(line_at(nul), "contains a NUL byte")
        while pos < n:
            # skip blank space and comment lines
            if src[pos] in _ENV_SPACE or src[pos] == "\n":
                pos += 1
                continue
            if src[pos] == "#":
                end = src.find("\n", pos)
                pos = n if end < 0 else end + 1
                continue
            start_line = line_at(pos)
            if src.startswith("export ", pos):
                pos += len("export ")
                while pos < n and src[pos] in _ENV_SPACE:
                    pos += 1
            key_start = pos
            while pos < n and (src[pos].isalnum() or src[pos] in "_."):
                pos += 1
            key = src[key_start:pos]
            while pos < n and src[pos] in _ENV_SPACE:
                pos += 1
            if not key or pos >= n or src[pos] not in "=:":
                raise _EnvSyntax(start_line, "expected KEY=VALUE (a key of letters, digits, '_' or '.')")
            pos += 1
            while pos < n and src[pos] in _ENV_SPACE:
                pos += 1
            if pos < n and src[pos] in "'\"":
                quote = src[pos]
                close = pos + 1
                while close < n and not (src[close] == quote and src[close - 1] != "\\"):
                    close += 1
                if close >= n:
                    raise _EnvSyntax(start_line, "unterminated quoted value")
                value = src[pos + 1:close]
                if quote == '"':
                    value = expand(_unescape_double(value))
                pos = close + 1
                # only blank space or a comment may follow on the same line
                while pos < n and src[pos] in _ENV_SPACE:
                    pos += 1
                if pos < n and src[pos] not in "#\n":
                    raise _EnvSyntax(line_at(pos), "unexpected text after the closing quote")
                if pos < n and src[pos] == "#":
                    end = src.find("\n", pos)
                    pos = n if end < 0 else end
            else:
                end = n
                for i in range(pos, n):
                    if src[i] in "\n\r":
                        end = i
                        break
                raw = src[pos:end]
                for i in range(1, len(raw)):
                    if raw[i] == "#" and raw[i - 1] in _ENV_SPACE:
                        raw = raw[:i]
                        break
                value = expand(raw.strip(_ENV_SPACE))
                pos = end
            values[key] = value
    except _EnvSyntax as problem:
        raise ConfigError(f"{source}:{problem.line}: {problem.what}") from None
    return values


def _unescape_double(value: str) -> str:
    r"""Escapes inside "double" quotes: \n and \r become newline / CR, \X becomes X, \$ stays \$.

    `\$` is kept so that the expansion step turns it into a literal `$` (no expansion).
    """
    def one(match: re.Match) -> str:
        char = match.group(1)
        return {"n": "\n", "r": "\r"}.get(char, "\\$" if char == "$" else char)

    return re.sub(r"\\(.)", one, value, flags=re.DOTALL)


def load_dotenv(project_dir: str | Path, environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """`environ` plus `<project_dir>/.env`, as a new dict; variables already set win.

    Returns (merged environment, warning or None). `environ` itself is never modified, so
    two deploys in one process cannot see each other's .env. All-or-nothing: if the file
    cannot be read or parsed, nothing is applied and the warning (for `out.warn`) names
    only the path -- never the parser's text, which would quote credentials. A missing
    file is silent.
    """
    merged = dict(environ)
    path = Path(project_dir) / DOTENV_FILE
    try:
        raw = read_config_bytes(path)
    except FileNotFoundError:
        return merged, None
    except OSError:
        return merged, _dotenv_warning(path)
    try:
        values = parse_env_text(raw.decode("utf-8"), str(path), environ)
    except (UnicodeDecodeError, ConfigError):
        return merged, _dotenv_warning(path)
    for key, value in values.items():
        merged.setdefault(key, value)  # present-but-empty counts as set
    return merged, None


def _dotenv_warning(path: Path) -> str:
    return (f"{path} could not be parsed, so none of its values were applied.\n"
            "Every line must be KEY=VALUE, a # comment, or blank.")


