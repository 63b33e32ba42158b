"""Scan a project directory into a `Project`: paths, checksums, tests, metadata (offline).

Every file problem (symlink, size, NUL, bad UTF-8, unknown dunder directory, bad or duplicate
`<pgmi-meta>`) is found here, before pgmi connects anywhere (session-api.md sec. 8).

Memory: a 10k-file project can hold tens of MB of text, so the scan reads, validates and
takes its raw checksum, then lets its bytes go (the first HELD_BYTES in total are kept, which
covers small projects whole). The loader (session.py) reads the other files again while
streaming the COPY and checks the raw checksum, so what is loaded is exactly what was
validated; it also computes the normalized checksum then, overlapping that CPU work with the
server's. `ProjectFile.content` reads the file on demand for the few callers that want text.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pgmilib.errors import ConfigError, DeploySqlMissing, PgmiError

if TYPE_CHECKING:  # pragma: no cover
    from pgmilib.project.metadata import ScriptMeta

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
#: Scanned bytes kept in memory for the loader, in total: small projects skip a second open and
#: read per file; big ones stay within the memory budget by re-reading (and re-verifying) instead.
HELD_BYTES = 1024 * 1024
SQL_EXTENSIONS = frozenset({"sql", "ddl", "dml", "dql", "dcl", "psql", "pgsql", "plpgsql"})
SKIPPED_SEGMENTS = frozenset({"node_modules", "__pycache__"})
BOM = b"\xef\xbb\xbf"

_DUNDER = re.compile(r"/__([^/]+)__/")
_EXTENSION = re.compile(r"\.[a-zA-Z0-9]+$")


# ---- paths ---------------------------------------------------------------------------------

def normalise_path(path: str) -> str:
    """The `./`-rooted POSIX form of a path, exactly as `pgmi_register_file` derives it (sec. 9)."""
    path = path.strip(" ").replace("\\", "/")
    if not path.startswith("./"):
        path = "./" + re.sub(r"^(?:\./|/)+", "", path)
    return re.sub(r"/{2,}", "/", path)


@dataclass(frozen=True)
class PathColumns:
    """The `_pgmi_source` columns derived from a normalised path (same rules as the SQL side)."""

    name: str
    directory: str
    extension: str
    depth: int
    parts: tuple[str, ...]
    parent_folder_name: str | None


def path_columns(path: str) -> PathColumns:
    """Derive name/directory/extension/depth/parts/parent of a normalised path (sec. 9 steps 5-11)."""
    parts = tuple(path.split("/"))
    depth = len(parts) - 2
    name = parts[-1]
    directory = "./" if depth == 0 else "/".join(parts[: depth + 1]) + "/"
    match = _EXTENSION.search(name)
    return PathColumns(
        name=name,
        directory=directory,
        extension=match.group(0) if match else "",
        depth=depth,
        parts=parts,
        parent_folder_name=parts[-2] if depth > 0 else None,
    )


def is_sql_name(name: str) -> bool:
    """SQL file by extension only, case-insensitive (agrees with `pg_temp.pgmi_is_sql_file`)."""
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in SQL_EXTENSIONS


def is_test_path(path: str) -> bool:
    """A test file lives under a `__test__/` or `__tests__/` directory (case-sensitive)."""
    return "/__test__/" in path or "/__tests__/" in path


def is_fixture_name(filename: str) -> bool:
    """Fixtures are `_setup.sql` / `_setup.psql`, any case (testing.md sec. 2)."""
    return filename.lower() in ("_setup.sql", "_setup.psql")


def generic_id(path: str) -> uuid.UUID:
    """The 16 MD5 bytes of the UTF-8 path as a UUID: the server's `md5(path::bytea)::uuid`."""
    return uuid.UUID(bytes=hashlib.md5(path.encode("utf-8")).digest())


# ---- checksums (sec. 10) -----------------------------------------------------------------------

def raw_checksum(data: bytes) -> str:
    """SHA-256 hex of the exact (BOM-stripped) bytes."""
    return hashlib.sha256(data).hexdigest()


# A plain '...' literal or "..." identifier is matched whole (the common case, one search);
# an E'...' string is re-scanned with its own rule.
_SPECIAL = re.compile(rb"""--|/\*|'[^']*(?:''[^']*)*'?|"[^"]*(?:""[^"]*)*"?|\$""")
_BLOCK_TOKEN = re.compile(rb"/\*|\*/")
_ESCAPE_QUOTE_END = re.compile(rb"\\[\s\S]|''|'")
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_IDENT_BYTE = re.compile(rb"[A-Za-z0-9_$\x80-\xff]")


def remove_comments(data: bytes, *, fold_case: bool = True) -> bytes:
    """Step A of the normalised checksum: comments -> one space, ASCII case folded outside quotes.

    `fold_case=False` gives the comment removal alone (the spec's intermediate vectors).
    Tokens are found with regular expressions so the bulk of a file is copied in C; the state
    machine of sec. 10.2 only runs at quote/comment/dollar boundaries. `bytes.lower()` folds
    exactly ASCII A-Z and keeps the length, so normal text is sliced from a lowered copy.
    """
    low = data.lower() if fold_case else data
    out: list[bytes] = []
    append = out.append
    search = _SPECIAL.search
    pos = 0
    size = len(data)
    while pos < size:
        match = search(data, pos)
        if match is None:
            append(low[pos:])
            break
        start = match.start()
        append(low[pos:start])
        end = match.end()
        first = data[start]
        if first == 0x27:  # '
            if (start >= 1 and data[start - 1] in b"Ee"
                    and (start == 1 or not _IDENT_BYTE.match(data, start - 2))):
                end = _quoted_end(_ESCAPE_QUOTE_END, data, start + 1, b"'")
            append(data[start:end])
        elif first == 0x22:  # "
            append(data[start:end])
        elif first == 0x2D:  # --
            append(b" ")
            newline = data.find(b"\n", start + 2)
            if newline < 0:
                break
            append(b"\r\n" if newline - 1 >= start + 2 and data[newline - 1] == 0x0D else b"\n")
            end = newline + 1
        elif first == 0x24:  # $
            tag = _DOLLAR_TAG.match(data, start)
            if tag is None:
                append(b"$")
                end = start + 1
            else:
                close = data.find(tag.group(0), tag.end())
                end = size if close < 0 else close + len(tag.group(0))
                append(data[start:end])
        else:  # /*
            append(b" ")
            depth, end = 1, start + 2
            while depth:
                inner = _BLOCK_TOKEN.search(data, end)
                if inner is None:
                    end = size
                    break
                depth += 1 if inner.group(0) == b"/*" else -1
                end = inner.end()
        pos = end
    return b"".join(out)


def _quoted_end(pattern: re.Pattern[bytes], data: bytes, pos: int, stop: bytes) -> int:
    """Index just past the closing `stop` of a quoted run whose body starts at `pos` (or len)."""
    while True:
        match = pattern.search(data, pos)
        if match is None:
            return len(data)
        if match.group(0) == stop:
            return match.end()
        pos = match.end()


# Go's unicode.IsSpace, as UTF-8 byte sequences (valid UTF-8 is self-synchronising, so these
# match exactly those code points). Python's str.isspace() would also take U+001C..U+001F.
_WS_RUN = re.compile(
    rb"(?:[\t\n\v\f\r ]|\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80)+")


def collapse_whitespace(text: bytes) -> bytes:
    """Steps B and C: every whitespace run -> one space, then trim.

    Fast path: `bytes.split()` splits on exactly the six ASCII whitespace bytes, in C; the
    regex runs only when a non-ASCII space could be present.
    """
    if (b"\xc2" in text or b"\xe1\x9a" in text or b"\xe2\x80" in text or b"\xe2\x81" in text
            or b"\xe3\x80\x80" in text):
        return _WS_RUN.sub(b" ", text).strip(b" ")
    return b" ".join(text.split())


def normalized_checksum(data: bytes | str) -> str:
    """SHA-256 hex of the normalised text (sec. 10.2): comments out, case folded, whitespace collapsed."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(collapse_whitespace(remove_comments(data))).hexdigest()


class ChecksumCache:
    """Normalized checksums remembered by raw checksum, per project, across runs.

    A re-deploy's main saving: normalizing is the one CPU-heavy step per file. The key is the
    SHA-256 of the exact bytes, so an entry can never be stale. One file per project root (so
    memory follows the project's size, not the history of every project deployed), holding
    64-byte records (raw digest, normalized digest), rewritten with exactly this run's files.
    Directory: `$PGMI_CACHE_DIR`, else `$XDG_CACHE_HOME/pgmi`, else `~/.cache/pgmi`;
    `PGMI_CACHE_DIR=off` disables it. A missing, unreadable, unwritable or damaged cache only
    costs time.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: dict[bytes, bytes] = {}
        self._used: dict[bytes, bytes] = {}
        self._changed = False
        if path is not None:
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            usable = len(data) - len(data) % 64  # a torn last record is ignored
            self._known = {data[i:i + 32]: data[i + 32:i + 64] for i in range(0, usable, 64)}

    @classmethod
    def for_project(cls, root: Path) -> ChecksumCache:
        setting = os.environ.get("PGMI_CACHE_DIR", "")
        if setting.lower() == "off":
            return cls(None)
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = Path(setting) if setting else Path(base) / "pgmi"
        if not directory.is_absolute() and not setting:
            return cls(None)  # no usable home directory
        key = hashlib.sha256(os.fsencode(os.path.abspath(root))).hexdigest()[:24]
        return cls(directory / f"checksums-{key}.bin")

    def get(self, raw_hex: str) -> str | None:
        key = bytes.fromhex(raw_hex)
        value = self._known.get(key)
        if value is None:
            return None
        self._used[key] = value
        return value.hex()

    def put(self, raw_hex: str, normalized_hex: str) -> None:
        self._used[bytes.fromhex(raw_hex)] = bytes.fromhex(normalized_hex)
        self._changed = True

    def save(self) -> None:
        """Rewrite the file with this run's entries when anything was new; never raises."""
        if self.path is None or not self._changed:
            return
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(b"".join(key + value for key, value in self._used.items()))
            os.replace(temporary, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()


# ---- the scan ------------------------------------------------------------------------------

@dataclass(eq=False)
class ProjectFile:
    """One loaded file. Contents are not held (see module docstring) unless given as `text`."""

    path: str
    checksum: str
    is_sql: bool
    is_test: bool
    metadata: ScriptMeta | None = None
    source: str | Path | None = None  # where the bytes are read from; None when `text` is held
    size: int = 0  # bytes after BOM removal
    text: str | None = field(default=None, repr=False)
    held: bytes | None = field(default=None, repr=False)  # the scanned bytes, kept while they fit HELD_BYTES
    _pgmi_checksum: str | None = field(default=None, repr=False)

    @classmethod
    def from_text(cls, path: str, text: str, metadata: ScriptMeta | None = None) -> ProjectFile:
        """A file held in memory (tests, generated files): same derived fields as a scanned one."""
        path = normalise_path(path)
        data = text.encode("utf-8")
        return cls(path=path, checksum=raw_checksum(data), _pgmi_checksum=normalized_checksum(data),
                   is_sql=is_sql_name(path.rsplit("/", 1)[-1]), is_test=is_test_path(path), metadata=metadata,
                   size=len(data), text=text)

    @property
    def pgmi_checksum(self) -> str:
        """The normalized checksum (sec. 10.2), computed on first use.

        It is the one CPU-heavy step per file, and nothing before the session needs it, so the
        loader computes it from the bytes it streams (`normalized_from`) while the server is
        busy with the previous COPY chunk, instead of the scan doing it before connecting.
        """
        if self._pgmi_checksum is None:
            self._pgmi_checksum = normalized_checksum(self.read_bytes())
        return self._pgmi_checksum

    def normalized_from(self, data: bytes, cache: ChecksumCache | None = None) -> str:
        """`pgmi_checksum`, given this file's (already verified) bytes and an optional cache."""
        if self._pgmi_checksum is None:
            known = cache.get(self.checksum) if cache is not None else None
            self._pgmi_checksum = known or normalized_checksum(data)
            if cache is not None and known is None:
                cache.put(self.checksum, self._pgmi_checksum)
        return self._pgmi_checksum

    @property
    def content(self) -> str:
        """The file text (BOM stripped), read again from disk and checked against the scan."""
        if self.text is not None:
            return self.text
        return self.read_bytes().decode("utf-8")

    def read_bytes(self) -> bytes:
        """The BOM-stripped bytes; PgmiError if the file changed since the scan."""
        if self.held is not None:
            return self.held
        if self.text is not None:
            return self.text.encode("utf-8")
        assert self.source is not None
        try:
            data = read_path(self.source, self.size + 3)
        except OSError as error:
            raise PgmiError(f"cannot read {self.path}: {error.strerror or error}") from error
        if data.startswith(BOM):
            data = data[3:]
        if raw_checksum(data) != self.checksum:
            raise PgmiError(f"file {self.path} changed while pgmi was deploying it; run the deploy again")
        return data


@dataclass
class Project:
    """A scanned project: the root, its deploy.sql and every other file, sorted by path."""

    root: Path
    deploy_sql: Path
    files: list[ProjectFile]

    def source_files(self) -> list[ProjectFile]:
        return [f for f in self.files if not f.is_test]

    def test_files(self) -> list[ProjectFile]:
        return [f for f in self.files if f.is_test]

    def contents(self) -> Mapping[str, str]:
        """path -> text, read from disk only when looked up (error location needs a few files,
        and holding every file's text would undo the flat memory of the scan and the load)."""
        return LazyContents(self.files)


class LazyContents(Mapping[str, str]):
    """A read-on-access view of the project's texts. Best effort: a file that vanished or
    changed since the scan reads as '' (it is only consulted to locate an error)."""

    def __init__(self, files: list[ProjectFile]) -> None:
        self._files = {f.path: f for f in files}

    def __getitem__(self, path: str) -> str:
        try:
            return self._files[path].content
        except PgmiError:
            return ""

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def max_file_size_from_env() -> int:
    """PGMI_MAX_FILE_SIZE when it is a positive integer, else the 10 MiB default."""
    raw = os.environ.get("PGMI_MAX_FILE_SIZE", "").strip()
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_FILE_SIZE
    return value if value > 0 else DEFAULT_MAX_FILE_SIZE


def validate_root(root: str | Path, *, require_deploy_sql: bool = True) -> tuple[Path, Path]:
    """sec. 8.1: the project directory and its deploy.sql, or the documented error."""
    text = str(root)
    base = Path(root)
    if not base.exists():
        raise ConfigError(f'project path "{text}" does not exist')
    if not base.is_dir():
        raise ConfigError(f'"{text}" is a file; pass the project directory')
    deploy = base / "deploy.sql"
    if not require_deploy_sql:
        return base, deploy
    try:
        mode = os.stat(deploy).st_mode
    except FileNotFoundError:
        expected = f"{text.rstrip('/')}/deploy.sql" if text.rstrip("/") else "/deploy.sql"
        error = DeploySqlMissing(f"deploy.sql not found in {text}")
        error.trailer.append(f"expected: {expected} — run `pgmi init` to scaffold one")
        raise error from None
    except OSError as error:
        raise PgmiError(f"cannot read {deploy}: {error.strerror or error}") from error
    if stat.S_ISDIR(mode):
        raise PgmiError(f"{deploy} is a directory, expected a regular file")
    return base, deploy


def scan(root: str | Path, *, max_file_size: int | None = None, require_deploy_sql: bool = True,
         check_duplicates: bool = True) -> Project:
    """Walk the project (sec. 8.2), read and validate every file (sec. 8.3), check metadata ids.

    The offline `pgmi metadata` commands scan without requiring deploy.sql, and `validate`
    reports duplicate ids itself, hence the two switches.
    """
    base, deploy = validate_root(root, require_deploy_sql=require_deploy_sql)
    cap = max_file_size if max_file_size is not None else max_file_size_from_env()
    files: list[ProjectFile] = []
    seen: dict[str, str] = {}
    budget = HELD_BYTES
    entries: list[tuple[str, str]] = []
    walk_error: PgmiError | None = None
    try:
        entries.extend((rel, full) for rel, full in _walk(str(base), "") if rel.lower() != "deploy.sql")
    except PgmiError as error:
        walk_error = error  # raised after the files listed before it, as a walk-then-read scan would
    for rel, item in read_files(entries, cap):
        if isinstance(item, BaseException):
            raise item
        if item.held is not None:
            if len(item.held) > budget:
                item.held = None
            else:
                budget -= len(item.held)
        if item.path in seen:
            raise PgmiError(f"files ./{seen[item.path]} and ./{rel} both load as {item.path}; rename one")
        seen[item.path] = rel
        files.append(item)
    if walk_error is not None:
        raise walk_error
    files.sort(key=lambda f: f.path)
    if check_duplicates:
        from pgmilib.project.metadata import check_duplicate_ids  # one wording for deploy and `metadata` commands

        check_duplicate_ids(files)
    return Project(root=base, deploy_sql=deploy, files=files)


#: Reader threads of the scan: files are read in batches of SCAN_BATCH, at most SCAN_AHEAD
#: batches ahead of the one being consumed; a file up to SCAN_KEEP bytes keeps its bytes
#: (then trimmed to the HELD_BYTES budget in path order), which bounds the bytes in flight.
SCAN_THREADS = 2
SCAN_BATCH = 64
SCAN_AHEAD = 4
SCAN_KEEP = 64 * 1024


def read_files(entries: list[tuple[str, str]], cap: int) -> Iterator[tuple[str, ProjectFile | BaseException]]:
    """(relative path, ProjectFile or the error reading it) for every entry, in entry order.

    Per file the scan is mostly system calls (lstat, open, read, close), which release the
    GIL: threads overlap them with each other and with the hashing and checks of the files
    already read. Small projects are read inline (a thread pool costs more than it saves).
    """
    if len(entries) <= SCAN_BATCH:
        yield from _read_batch(entries, cap)
        return
    from concurrent.futures import ThreadPoolExecutor

    batches = [entries[i:i + SCAN_BATCH] for i in range(0, len(entries), SCAN_BATCH)]
    with ThreadPoolExecutor(max_workers=SCAN_THREADS, thread_name_prefix="pgmi-scan") as pool:
        pending = [pool.submit(_read_batch, batch, cap) for batch in batches[:SCAN_AHEAD]]
        try:
            for index in range(len(batches)):
                if index + SCAN_AHEAD < len(batches):
                    pending.append(pool.submit(_read_batch, batches[index + SCAN_AHEAD], cap))
                yield from pending[index].result()
                pending[index] = None  # type: ignore[call-overload]  # let the batch's bytes go
        finally:
            for future in pending:
                if future is not None:
                    future.cancel()


def _read_batch(entries: list[tuple[str, str]], cap: int) -> list[tuple[str, ProjectFile | BaseException]]:
    out: list[tuple[str, ProjectFile | BaseException]] = []
    for rel, full in entries:
        try:
            out.append((rel, _read_file(full, rel, cap, keep=SCAN_KEEP)))
        except Exception as error:  # noqa: BLE001 - handed to the caller, raised there in path order
            out.append((rel, error))
    return out


def _walk(directory: str, prefix: str):
    """Yield (relative path, full path) of files in byte order, skipping hidden/vendored dirs.

    Symlinks are yielded too (never followed), so _read_file can refuse them by name.
    """
    try:
        with os.scandir(directory) as entries:
            listing = sorted(entries, key=lambda e: e.name)
    except OSError as error:
        raise PgmiError(f"cannot read directory ./{prefix}: {error.strerror or error}") from error
    for entry in listing:
        name = entry.name
        if name.startswith(".") or name in SKIPPED_SEGMENTS:
            continue
        rel = prefix + name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, rel + "/")
        else:
            yield rel, entry.path


def _read_file(full: str, rel: str, cap: int, keep: int = 0) -> ProjectFile:
    """Read and validate one file in the sec. 8.3 order; keep only what the loader needs."""
    shown = "./" + rel
    # A walked path is already rooted and has no empty segment; only a backslash or a
    # trailing space needs the general rule.
    path = shown if "\\" not in rel and not rel.endswith(" ") else normalise_path(shown)
    info = os.lstat(full)
    if stat.S_ISLNK(info.st_mode):
        raise PgmiError(f"refusing to read symlink {shown} (symlinks are rejected by the scanner to avoid path-escape)")
    if not stat.S_ISREG(info.st_mode):
        raise PgmiError(f"refusing to read {shown}: not a regular file")
    if info.st_size > cap:
        raise PgmiError(_too_big(shown, info.st_size, cap))
    try:
        data = read_path(full, info.st_size)
    except OSError as error:
        raise PgmiError(f"cannot read {shown}: {error.strerror or error}") from error
    if len(data) > cap:
        raise PgmiError(_too_big(shown, len(data), cap))
    if data.startswith(BOM):
        data = data[3:]
    for match in _DUNDER.finditer(path) if "/__" in path else ():
        if match.group(1) not in ("test", "tests"):
            raise ConfigError(
                f'unsupported directory "__{match.group(1)}__" in path "{path}"; '
                "only __test__ and __tests__ are allowed"
            )
    if b"\x00" in data:
        raise PgmiError(
            f"file {path} contains a NUL byte; pgmi loads project files as text, so move this file "
            "outside the project path or into a hidden directory"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PgmiError(f"file {path} is not valid UTF-8; pgmi loads project files as text") from None
    name = path.rsplit("/", 1)[-1]
    is_sql = is_sql_name(name)
    is_test = is_test_path(path)
    meta = None
    if is_sql and not is_test and "pgmi" in text:  # every block detector needs the word
        from pgmilib.project.metadata import parse_block

        meta = parse_block(text, path)
    return ProjectFile(
        path=path,
        checksum=raw_checksum(data),
        is_sql=is_sql,
        is_test=is_test,
        metadata=meta,
        source=full,
        size=len(data),
        held=data if len(data) <= keep else None,
    )


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def read_path(path: str | Path, expected: int) -> bytes:
    """All bytes of a regular file whose size was `expected`, in one `read` system call.

    `open()` costs a FileIO and a BufferedReader plus fstat and isatty calls per file; at 10k
    files that is most of the scan. Asking for one byte more than expected reads the whole
    file and sees its end at once (a regular file never returns a short read before its end);
    a file that grew meanwhile is read on to its end.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        data = os.read(fd, expected + 1)
        if len(data) > expected:
            rest = [data]
            while chunk := os.read(fd, 1 << 20):
                rest.append(chunk)
            data = b"".join(rest)
        return data
    finally:
        os.close(fd)


def _too_big(shown: str, size: int, cap: int) -> str:
    return f"file {shown} is {size} bytes, exceeds {cap}-byte cap (override via PGMI_MAX_FILE_SIZE)"


def read_deploy_sql(project: Project) -> str:
    """deploy.sql as text: BOM stripped, UTF-8 or a clear error (no size cap, sec. 8.3)."""
    try:
        data = project.deploy_sql.read_bytes()
    except OSError as error:
        raise PgmiError(f"cannot read {project.deploy_sql}: {error.strerror or error}") from error
    if data.startswith(BOM):
        data = data[3:]
    if b"\x00" in data:
        raise PgmiError(f"{project.deploy_sql} contains a NUL byte; deploy.sql must be text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PgmiError(f"{project.deploy_sql} is not valid UTF-8") from None


# ---- test directories (testing.md sec. 2) ------------------------------------------------------

def directory_rows_of_tests(test_paths: list[str]) -> list[tuple[str, str | None, int]]:
    """(path, parent_path, depth) for every directory holding a test-path file.

    parent_path is the nearest ancestor that is itself a row (gaps skipped); depth counts the
    segments after the first `/__test__/` or `/__tests__/`.
    """
    directories = sorted({p[: p.rfind("/") + 1] for p in test_paths})
    recorded = set(directories)
    rows = []
    for directory in directories:
        parent = None
        probe = directory[:-1]
        while "/" in probe:
            probe = probe[: probe.rfind("/")]
            if probe + "/" in recorded:
                parent = probe + "/"
                break
        rows.append((directory, parent, _test_depth(directory)))
    rows.sort(key=lambda row: row[0])
    return rows


def _test_depth(directory: str) -> int:
    found = [i for i in (directory.find("/__test__/"), directory.find("/__tests__/")) if i >= 0]
    first = min(found)
    marker = "/__test__/" if directory.startswith("/__test__/", first) else "/__tests__/"
    rest = directory[first + len(marker):]
    return len([segment for segment in rest.split("/") if segment])
