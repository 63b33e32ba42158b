"""Script metadata (`<pgmi-meta>` blocks), the offline execution plan and the `pgmi metadata` commands.

A non-test SQL file may carry one XML block inside a top-level `/* … */` comment that gives
it a rename-stable id, an `idempotent` flag, sort keys and a description (docs/METADATA.md).
Everything here is filesystem-only: the deploy loads the same facts into session tables and
`pgmi_plan_view` orders them on the server; `plan()` reproduces that order offline so the
`pgmi metadata plan` preview and the deploy can never disagree.

The XML is read with expat from the standard library (the zipapp has no dependencies). Go's
decoder, which the original used, decodes the *first element* of the comment and ignores
prose before it and anything after it; ElementTree rejects both, so expat is driven directly
inside a synthetic wrapper element and parsing stops at the end of the first element.
"""

from __future__ import annotations

import re
import uuid
import xml.parsers.expat
from collections.abc import Iterable
from typing import Any

from pgmilib import sqllex
from pgmilib.errors import ConfigError
from pgmilib.project.paths import generic_id
from pgmilib.project.paths import normalise_path as dot_path  # the `./`-rooted form of a path
from pgmilib.records import record

MAX_BLOCK_BYTES = 10240
NIL_UUID = uuid.UUID(int=0)

# Go's regexp `\s` is ASCII whitespace only; keep the detector byte-for-byte compatible.
_OLD_FORMAT = re.compile(r"<[\t\n\f\r ]*pgmi:meta[\t\n\f\r >]")
_NEW_FORMAT = re.compile(r"<[\t\n\f\r ]*pgmi-meta[\t\n\f\r >]")
_HEX = re.compile(r"[0-9a-fA-F]{32}")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

_WRAPPER = "pgmi-wrapper-root"
_XML_DECL = re.compile(r"<\?xml[\t\n\r ][^>]*\?>")
_XML_HINT = (
    'Expected <pgmi-meta id="<uuid>" idempotent="true|false"> with optional <description> and '
    "<sortKeys><key>…</key></sortKeys>, inside a /* … */ comment"
)
_DECODE_HINT = "Check the <pgmi-meta> structure: quoted attributes, a valid UUID id, idempotent true or false"
_DOC_POINTER = (
    "See metadata format documentation:",
    "  Reference: docs/METADATA.md, or run `pgmi ai skill pgmi-metadata-system`",
)


@record(frozen=True)
class ScriptMeta:
    """The decoded, validated block of one file."""

    id: uuid.UUID
    idempotent: bool
    description: str
    sort_keys: tuple[str, ...]


@record(frozen=True)
class PlanEntry:
    """One row of the execution plan, exactly as `pgmi_plan_view` would show it."""

    path: str
    generic_id: uuid.UUID
    id: uuid.UUID | None
    idempotent: bool
    description: str
    sort_key: str
    execution_order: int


# ---- identity ---------------------------------------------------------------------------


def fallback_id(path: str) -> uuid.UUID:
    """The id of a file without a block: the 16 MD5 bytes of its UTF-8 `./`-path.

    It is the server's `md5(path::bytea)::uuid` (`generic_id`), so the scaffolded id, the
    plan preview and the deploy-time view all agree. (The original's scaffold hashed
    `././path` by mistake; we do not repeat that.)
    """
    return generic_id(dot_path(path))


def parse_uuid(text: str) -> uuid.UUID:
    """Parse the textual UUID forms Go's uuid package accepts; ValueError with its wording otherwise.

    Accepted: 36-char hyphenated, the same in braces, `urn:uuid:`-prefixed, 32 bare hex
    digits. No surrounding whitespace; version/variant bits are not checked.
    """
    n = len(text)
    if n == 36:
        body = text
    elif n == 38 and text[0] == "{" and text[-1] == "}":
        body = text[1:-1]
    elif n == 45 and text[:9].lower() == "urn:uuid:":
        body = text[9:]
    elif n == 32:
        if not _HEX.fullmatch(text):
            raise ValueError("invalid UUID format")
        return uuid.UUID(hex=text)
    elif n in (38, 45):
        raise ValueError("invalid UUID format")
    else:
        raise ValueError(f"invalid UUID length: {n}")
    if [body[i] for i in (8, 13, 18, 23)] != ["-"] * 4:
        raise ValueError("invalid UUID format")
    digits = body.replace("-", "")
    if not _HEX.fullmatch(digits):
        raise ValueError("invalid UUID format")
    return uuid.UUID(hex=digits)


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool after trimming; an empty value is false (Go's attribute quirk)."""
    value = text.strip()
    if value == "" or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


# ---- locating the block -----------------------------------------------------------------


def _comment_contents(content: str) -> Iterable[tuple[str, int]]:
    """Yield (trimmed inner text, offset of that text in the file) per top-level block comment."""
    for start, end in sqllex.block_comment_spans(content):
        inner_start, inner_end = start + 2, end - 2
        if inner_end < inner_start:  # unterminated with < 2 characters left: treat as empty
            continue
        inner = content[inner_start:inner_end]
        stripped = inner.lstrip()
        yield stripped.rstrip(), inner_start + (len(inner) - len(stripped))


def _error(path: str, message: str, *, line: int | None = None, field: str = "", hint: str = "") -> ConfigError:
    """A structural metadata error: one line naming file, line and field; the hint as trailer."""
    where = f" (line {line})" if line is not None else ""
    what = f" [field: {field}]" if field else ""
    err = ConfigError(
        f"metadata error in {dot_path(path)}{where}{what}: {message}",
        details={"file": dot_path(path), **({"line": line} if line is not None else {})},
    )
    if hint:
        err.trailer = ["", f"Hint: {hint}"]
    return err


def parse_block(content: str, path: str) -> ScriptMeta | None:
    """Decode and validate the file's `<pgmi-meta>` block; None when it has none.

    Callers decide *whether* to look (only non-test SQL files carry metadata); this function
    applies the rules of docs/METADATA.md to the text it is given. Line numbers in errors are
    lines of the file (the original counted them inside the comment, which points nowhere).
    """
    chosen: tuple[str, int] | None = None
    for text, offset in _comment_contents(content):
        line = content.count("\n", 0, offset) + 1
        old = _OLD_FORMAT.search(text)
        if old:
            raise _error(
                path,
                "Found old metadata format with namespace",
                line=line + text.count("\n", 0, old.start()),
                hint='remove the xmlns:pgmi attribute and rename <pgmi:meta> to <pgmi-meta>',
            )
        new = _NEW_FORMAT.search(text)
        if new:
            if chosen is not None:
                raise _error(
                    path,
                    "Multiple metadata blocks found",
                    line=line + text.count("\n", 0, new.start()),
                    hint="only one <pgmi-meta> block is allowed per file",
                )
            chosen = (text, offset)
    if chosen is None:
        return None
    text, offset = chosen
    first_line = content.count("\n", 0, offset) + 1
    size = len(text.encode("utf-8"))
    if size > MAX_BLOCK_BYTES:
        raise _error(
            path,
            f"Metadata block exceeds maximum size of {MAX_BLOCK_BYTES} bytes (got {size} bytes)",
            line=first_line,
            hint="keep the block concise; typical blocks are a few hundred bytes",
        )
    raw = _decode_first_element(text, path, first_line)
    return _validate(raw, path, first_line + raw.line - 1)


@record
class _RawBlock:
    """What the XML said, before validation (None = attribute absent)."""

    id_text: str | None
    idempotent_text: str | None
    description: str
    sort_keys: list[str]
    line: int  # line of the root element within the comment content


class _Stop(Exception):
    """Raised from the end handler of the first element: the rest is never looked at."""


def _decode_first_element(text: str, path: str, first_line: int) -> _RawBlock:
    """Run expat over `<wrapper>text</wrapper>` and collect the first element's fields."""
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    state: dict[str, Any] = {"depth": 0, "collect": None, "stack": []}
    block = _RawBlock(None, None, "", [], 1)
    buffer: list[str] = []

    def local(name: str) -> str:
        return name.rsplit(":", 1)[-1]

    def start(name: str, attrs: dict[str, str]) -> None:
        depth = state["depth"] = state["depth"] + 1
        if depth == 2:
            block.line = parser.CurrentLineNumber
            if local(name) != "pgmi-meta":
                raise _error(
                    path,
                    f"expected element type <pgmi-meta> but have <{name}>",
                    line=first_line + parser.CurrentLineNumber - 1,
                    hint=_DECODE_HINT,
                )
            for key, value in attrs.items():
                if local(key) == "id":
                    block.id_text = value
                elif local(key) == "idempotent":
                    block.idempotent_text = value
        elif depth == 3 and name == "description":
            state["collect"] = ("description", 3)
            buffer.clear()
        elif depth == 3 and name == "sortKeys":
            state["collect"] = None
        elif depth == 4 and name == "key" and state["stack"][-1] == "sortKeys":
            state["collect"] = ("key", 4)
            buffer.clear()
        state["stack"].append(name)

    def end(name: str) -> None:
        collect = state["collect"]
        if collect and collect[1] == state["depth"]:
            if collect[0] == "description":
                block.description = "".join(buffer)  # the last <description> wins
            else:
                block.sort_keys.append("".join(buffer))
            state["collect"] = None
        state["stack"].pop()
        state["depth"] -= 1
        if state["depth"] == 1:
            raise _Stop()

    def chars(data: str) -> None:
        collect = state["collect"]
        if collect and collect[1] == state["depth"]:  # direct text only, as Go's decoder
            buffer.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    # Go's decoder accepts a leading `<?xml …?>`; inside the wrapper expat would not, so blank it
    # (same length, newlines kept, so reported lines do not move).
    declaration = _XML_DECL.match(text)
    if declaration:
        text = re.sub(r"[^\n]", " ", declaration.group()) + text[declaration.end():]
    try:
        parser.Parse(f"<{_WRAPPER}>{text}</{_WRAPPER}>", True)
    except _Stop:
        return block
    except xml.parsers.expat.ExpatError as exc:
        message = xml.parsers.expat.ErrorString(exc.code)
        raise _error(
            path, f"XML syntax error: {message}", line=first_line + exc.lineno - 1, hint=_XML_HINT
        ) from None
    raise _error(path, "no XML element found in the metadata comment", line=first_line, hint=_XML_HINT)


def _validate(raw: _RawBlock, path: str, line: int) -> ScriptMeta:
    """Decode the attributes, then collect every rule broken (numbered, all at once)."""
    ident = NIL_UUID
    if raw.id_text is not None:
        try:
            ident = parse_uuid(raw.id_text)
        except ValueError as exc:
            raise _error(path, str(exc), line=line, field="id", hint=_DECODE_HINT) from None
    idempotent = False
    if raw.idempotent_text is not None:
        try:
            idempotent = _parse_bool(raw.idempotent_text)
        except ValueError as exc:
            raise _error(path, str(exc), line=line, field="idempotent", hint=_DECODE_HINT) from None
    problems: list[str] = []
    if ident == NIL_UUID:
        problems.append(
            "id attribute is required and cannot be the nil UUID (00000000-0000-0000-0000-000000000000)."
        )
    if raw.idempotent_text is None:
        problems.append('idempotent attribute is required (idempotent="true" or idempotent="false").')
    for i, key in enumerate(raw.sort_keys):
        if not key.strip():
            problems.append(f"sortKeys[{i}] cannot be empty or whitespace-only.")
    if raw.description and not raw.description.strip():
        problems.append("description element contains only whitespace.")
    if problems:
        listed = " ".join(f"{n}. {p}" for n, p in enumerate(problems, 1))
        err = ConfigError(
            f"invalid PGMI metadata in {dot_path(path)} (line {line}): {listed}",
            details={"file": dot_path(path), "line": line},
        )
        err.trailer = [
            "",
            "  Generate an id with `uuidgen`; idempotent=\"true\" means safe to re-run on every deploy,",
            "  \"false\" means the deploy.sql should run it once; sort keys look like 'phase/sequence'.",
            "",
            *_DOC_POINTER,
            "  Generate template: pgmi metadata scaffold <path>",
        ]
        raise err
    return ScriptMeta(ident, idempotent, raw.description, tuple(raw.sort_keys))


# ---- duplicate ids ----------------------------------------------------------------------


def duplicate_ids(files: Iterable[Any]) -> dict[uuid.UUID, list[str]]:
    """Explicit ids used by more than one file, each with its paths in scan order."""
    seen: dict[uuid.UUID, list[str]] = {}
    for f in files:
        meta = getattr(f, "metadata", None)
        if meta is not None and meta.id != NIL_UUID:
            seen.setdefault(meta.id, []).append(f.path)
    return {ident: paths for ident, paths in seen.items() if len(paths) > 1}


def check_duplicate_ids(files: Iterable[Any]) -> None:
    """Raise the scan-time ConfigError listing every duplicated id (paths and lines sorted).

    Offered to the scanner so the deploy and the offline commands word the failure the same way.
    """
    dupes = duplicate_ids(files)
    if not dupes:
        return
    lines = sorted(f"{ident}: {', '.join(sorted(paths))}" for ident, paths in dupes.items())
    first = min(min(paths) for paths in dupes.values())
    err = ConfigError(
        "duplicate <pgmi-meta id> across files; each script must have a unique id: " + "; ".join(lines),
        details={"file": first},
    )
    raise err


# ---- the execution plan -----------------------------------------------------------------


def _byte_key(text: str) -> bytes:
    """COLLATE "C" on a UTF8 database compares the UTF-8 bytes."""
    return text.encode("utf-8", "surrogatepass")


def plan(files: Iterable[Any]) -> list[PlanEntry]:
    """The rows of `pgmi_plan_view`, computed offline, in `execution_order`.

    `files` are scanned project files (`.path`, `.metadata`, optional `.is_test`). Like the
    view, every non-test file takes part (SQL or not); a file with N sort keys yields N
    rows, a file without metadata or without keys one row keyed by its path. Rows are
    ordered by sort key then path, both bytewise, and numbered from 1.
    """
    rows: list[tuple[bytes, bytes, str, str, ScriptMeta | None]] = []
    for f in files:
        if getattr(f, "is_test", False):
            continue
        meta: ScriptMeta | None = getattr(f, "metadata", None)
        keys = meta.sort_keys if meta is not None and meta.sort_keys else (f.path,)
        for key in keys:
            rows.append((_byte_key(key), _byte_key(f.path), key, f.path, meta))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [
        PlanEntry(
            path=path,
            generic_id=fallback_id(path),
            id=meta.id if meta else None,
            idempotent=meta.idempotent if meta else True,
            description=meta.description if meta else "",
            sort_key=key,
            execution_order=n,
        )
        for n, (_, _, key, path, meta) in enumerate(rows, 1)
    ]


FALLBACK_DESCRIPTION = "No metadata (fallback)"


def file_summary(files: Iterable[Any]) -> list[dict[str, Any]]:
    """One entry per non-test SQL file for `pgmi metadata plan` (not one per key).

    Ordered by the file's smallest sort key (its path when it has none), then path, bytewise.
    A block without keys lists `[]` (the original printed JSON null there).
    """
    entries: list[tuple[bytes, bytes, dict[str, Any]]] = []
    for f in files:
        if getattr(f, "is_test", False) or not getattr(f, "is_sql", False):
            continue
        meta: ScriptMeta | None = f.metadata
        if meta is None:
            entry = {"path": f.path, "id": str(fallback_id(f.path)), "idempotent": True,
                     "sort_keys": [f.path], "description": FALLBACK_DESCRIPTION}
            first = f.path
        else:
            entry = {"path": f.path, "id": str(meta.id), "idempotent": meta.idempotent,
                     "sort_keys": list(meta.sort_keys), "description": meta.description}
            first = min(meta.sort_keys, key=_byte_key) if meta.sort_keys else f.path
        entries.append((_byte_key(first), _byte_key(f.path), entry))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in entries]


# ---- scaffold ------------------------------------------------------------------------------


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def scaffold_block(path: str, idempotent: bool) -> str:
    """The comment prepended by `pgmi metadata scaffold` (its id is the file's generic_id)."""
    from xml.sax.saxutils import escape

    name = escape(_basename(path))
    return (
        "/*\n"
        "<pgmi-meta\n"
        f'    id="{fallback_id(path)}"\n'
        f'    idempotent="{"true" if idempotent else "false"}">\n'
        "  <description>\n"
        f"    Auto-generated metadata for {name}\n"
        "  </description>\n"
        "  <sortKeys>\n"
        f"    <key>generated/{name}</key>\n"
        "  </sortKeys>\n"
        "</pgmi-meta>\n"
        "*/\n"
        "\n"
    )
