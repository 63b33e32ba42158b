"""Scan a project directory into a `Project`: paths, checksums, tests, metadata (offline).

Every file problem (symlink, size, NUL, bad UTF-8, unknown dunder directory, bad or duplicate
`<pgmi-meta>`) is found here, before anything is loaded or created on a server (a deploy into
an existing database may have connected already, to have the server build the session API
meanwhile).

Memory: a 10k-file project can hold tens of MB of text, so the scan reads, validates and
takes its raw checksum, then lets its bytes go (the first HELD_BYTES in total are kept, which
covers small projects whole). A deploy of a bigger project into an existing database uses
the bytes as they are read (`Scan.files`: its COPY row is sent then). Otherwise the loader (session.py) reads the
other files again while streaming the COPY and checks the raw checksum, so what is loaded is
exactly what was validated; it also computes the normalized checksum then, overlapping that CPU work with the
server's (and, for big projects, with a helper process's, which a deploy starts once the walk
has listed the files: `scan(on_listed=...)`, deploy/normalizer.py). `ProjectFile.content`
reads the file on demand for the few callers that want text.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from pgmilib.errors import ConfigError, PgmiError
from pgmilib.project.checksums import BOM, ChecksumCache, normalized_checksum, raw_checksum
from pgmilib.project.paths import (
    is_sql_name,
    is_test_path,
    normalise_path,
)
from pgmilib.project.root import DEFAULT_MAX_FILE_SIZE, symlink_refusal, validate_root
from pgmilib.records import field, record

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # pragma: no cover
    from pgmilib.project.metadata import ScriptMeta

#: Scanned bytes kept in memory for the loader, in total (8 MB: a 2k-file project of typical
#: migrations, peak RSS still under 40 MB): small projects skip a second open and
#: read per file; big ones stay within the memory budget by re-reading (and re-verifying) instead.
HELD_BYTES = 8 * 1024 * 1024
SKIPPED_SEGMENTS = frozenset({"node_modules", "__pycache__"})


_DUNDER = re.compile(r"/__([^/]+)__/")

# ---- the scan ------------------------------------------------------------------------------

@record(eq=False)
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

    def __init__(self, path: str, checksum: str, is_sql: bool, is_test: bool, metadata: ScriptMeta | None = None,
                 source: str | Path | None = None, size: int = 0, text: str | None = None, held: bytes | None = None,
                 _pgmi_checksum: str | None = None) -> None:
        # Written out (records keeps it), the fields above in their order: one instance per file.
        self.path = path
        self.checksum = checksum
        self.is_sql = is_sql
        self.is_test = is_test
        self.metadata = metadata
        self.source = source
        self.size = size
        self.text = text
        self.held = held
        self._pgmi_checksum = _pgmi_checksum

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
        """The normalized checksum (project/checksums.py), computed on first use.

        It is the one CPU-heavy step per file, and nothing before the session needs it, so the
        loader computes it from the bytes it streams (`normalized_from`) while the server is
        busy with the previous COPY chunk, instead of the scan doing it before connecting.
        """
        if self._pgmi_checksum is None:
            self._pgmi_checksum = normalized_checksum(self.read_bytes())
        return self._pgmi_checksum

    def normalized_from(self, data: bytes, cache: ChecksumCache | None = None, computed: str | None = None) -> str:
        """`pgmi_checksum`, given this file's (already verified) bytes and an optional cache.

        `computed`: the value already computed elsewhere from these same bytes (the loader's
        helper process, deploy/normalizer.py), remembered like one computed here."""
        if self._pgmi_checksum is None:
            known = cache.get(self.checksum) if cache is not None else None
            self._pgmi_checksum = known or computed or normalized_checksum(data)
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


@record
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


def scan(root: str | Path, *, max_file_size: int | None = None, require_deploy_sql: bool = True,
         check_duplicates: bool = True,
         on_listed: Callable[[Scan], object] | None = None) -> Project:
    """Walk the project, read and validate every file, check metadata ids.

    The offline `pgmi metadata` commands scan without requiring deploy.sql, and `validate`
    reports duplicate ids itself, hence the two switches. `on_listed(steps)` is called once
    the walk has listed the files (`steps.entries`: (relative path, full path) each, in path
    order) and before the first is read: a deploy starts its checksum helper there.
    """
    steps = Scan(root, max_file_size=max_file_size, require_deploy_sql=require_deploy_sql,
                 check_duplicates=check_duplicates)
    if on_listed is not None:
        on_listed(steps)
    return steps.finish()


class Scan:
    """`scan()` in steps, for a caller that uses each file as it is read (a deploy's streaming
    load, deploy/session.py `stream_sources`): the walk on construction, then `files()`, then
    `project()`, which raises the problems found, like `scan()`.

    `files()` yields (file, its validated bytes) in path order, every file's whole bytes
    included (`keep`), so the caller reads nothing again; what the file itself holds
    afterwards (`held`) is trimmed to the HELD_BYTES budget as in `scan()`. A problem in a
    file is collected (`problems`) and the walk goes on, so that every unloadable file is
    reported at once; a caller streaming the files stops using them at the first problem.
    """

    def __init__(self, root: str | Path, *, max_file_size: int | None = None, require_deploy_sql: bool = True,
                 check_duplicates: bool = True) -> None:
        self.base, self.deploy = validate_root(root, require_deploy_sql=require_deploy_sql)
        self.cap = max_file_size if max_file_size is not None else DEFAULT_MAX_FILE_SIZE
        self.check_duplicates = check_duplicates
        self.problems: list[PgmiError] = []  # every unloadable file in one run, not one per run
        self.entries = [(rel, full) for rel, full in _walk(str(self.base), "", self.problems)
                        if rel.lower() != "deploy.sql"]
        self._files: list[ProjectFile] = []

    def files(self, *, keep: int = 0) -> Iterator[tuple[ProjectFile, bytes | None]]:
        """Each loadable file as it is read, with its bytes when it is held or `keep` allows."""
        seen: dict[str, str] = {}
        budget = HELD_BYTES
        for rel, item in read_files(self.entries, self.cap, keep=max(keep, SCAN_KEEP)):
            if isinstance(item, PgmiError) and not isinstance(item, ConfigError):
                self.problems.append(item)
                continue
            if isinstance(item, BaseException):
                raise item
            data = item.held
            if data is not None:
                if len(data) > budget or len(data) > SCAN_KEEP:
                    item.held = None
                else:
                    budget -= len(data)
            if item.path in seen:
                raise PgmiError(f"files ./{seen[item.path]} and ./{rel} both load as {item.path}; rename one")
            seen[item.path] = rel
            self._files.append(item)
            yield item, data

    def finish(self, files: Iterator[tuple[ProjectFile, bytes | None]] | None = None) -> Project:
        """Read what `files` (a `files()` already begun; else all) has not read yet, then `project()`."""
        for _ in files if files is not None else self.files():
            pass
        return self.project()

    def project(self) -> Project:
        """The scanned project, once `files()` has run to its end; raises the problems found."""
        if self.problems:
            raise _all_problems(self.problems)
        files = self._files
        files.sort(key=lambda f: f.path)  # the walk's order already, but where a path was normalised
        if self.check_duplicates and any(f.metadata is not None for f in files):  # ids come only from metadata
            from pgmilib.project.metadata import check_duplicate_ids  # one wording for deploy and `metadata` commands

            check_duplicate_ids(files)
        return Project(root=self.base, deploy_sql=self.deploy, files=files)


#: A file up to SCAN_KEEP bytes keeps its scanned bytes (then trimmed to the HELD_BYTES budget
#: in path order), so the loader need not read it again.
SCAN_KEEP = 64 * 1024


def read_files(entries: list[tuple[str, str]], cap: int,
               keep: int = SCAN_KEEP) -> Iterator[tuple[str, ProjectFile | BaseException]]:
    """(relative path, ProjectFile or the error reading it) for every entry, in entry order.

    One thread on purpose. A file costs ~10 us of system calls (lstat, open, one read, close)
    and a few us of checks with the page cache warm, the usual case for a checkout; reader
    threads made the scan ~1.5x slower on 1k and 10k files (each system call hands the GIL
    over and waits to get it back), measured in docs/PERFORMANCE.md.
    """
    for rel, full in entries:
        try:
            item: ProjectFile | BaseException = _read_file(full, rel, cap, keep=keep)
        except Exception as error:  # noqa: BLE001 - handed to the caller, raised there in path order
            item = error
        yield rel, item


def _all_problems(problems: list[PgmiError]) -> PgmiError:
    """One error for every file that cannot be loaded: the first as the message, the rest listed."""
    if len(problems) == 1:
        return problems[0]
    error = PgmiError(f"{problems[0].message} (and {len(problems) - 1} more file problem(s), listed below)")
    error.trailer.extend(f"  also: {p.message}" for p in problems[1:])
    error.details["fileProblems"] = [p.message for p in problems]
    return error


def _walk(directory: str, prefix: str, problems: list[PgmiError]) -> Iterator[tuple[str, str]]:
    """Yield (relative path, full path) of files in path order, skipping hidden/vendored dirs.

    Path order: a directory is listed where its name and a "/" sort (`a-b.sql` and `a.sql`
    come before the files of `a/`), so the walk needs no sort afterwards and a streaming load
    sends its rows in the order of the paths.

    Symlinks are yielded too (never followed), so _read_file can refuse them by name. Iterative
    (a stack of directory listings), so a 2,000-level tree cannot exhaust the recursion limit.
    Names that are not UTF-8 cannot become project paths: each is added to `problems`.
    """
    stack = [iter(_listing(directory, prefix))]
    prefixes = [prefix]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            prefixes.pop()
            continue
        name = entry.name
        if name.startswith(".") or name in SKIPPED_SEGMENTS:
            continue
        rel = prefixes[-1] + name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            problems.append(PgmiError(f"name ./{shown} is not valid UTF-8; project paths must be UTF-8 text"))
            continue
        if entry.is_dir(follow_symlinks=False):
            stack.append(iter(_listing(entry.path, rel + "/")))
            prefixes.append(rel + "/")
        else:
            yield rel, entry.path


def _listing(directory: str, prefix: str) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name)
    except OSError as error:
        shown = os.fsencode(prefix).decode("utf-8", "backslashreplace")
        raise PgmiError(f"cannot read directory ./{shown}: {error.strerror or error}") from error


def _read_file(full: str, rel: str, cap: int, keep: int = 0) -> ProjectFile:
    """Read and validate one file (the first problem found wins); keep only what the loader needs."""
    shown = "./" + rel
    # A walked path is already rooted and has no empty segment; only a backslash or a
    # trailing space needs the general rule.
    path = shown if "\\" not in rel and not rel.endswith(" ") else normalise_path(shown)
    info = os.lstat(full)
    if stat.S_ISLNK(info.st_mode):
        raise PgmiError(symlink_refusal(shown))
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
    """deploy.sql as text: BOM stripped, UTF-8 or a clear error (no size cap)."""
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


def scan_project(root: str, *, check_duplicates: bool = True, max_file_size: int | None = None) -> Project:
    """The deploy's project scan, without requiring deploy.sql (offline commands never do).

    A missing or non-directory path is invalid configuration (exit 10), as in the scanner.
    `validate` reports duplicate ids itself (exit 1), so it asks for the scan without that check.
    """
    return scan(root, require_deploy_sql=False, check_duplicates=check_duplicates, max_file_size=max_file_size)
