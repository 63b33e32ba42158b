"""Install the session API in pg_temp and load the project and parameters into it.

Order: the API's scripts in one message (schema, test machinery, contract v1 views, contract v1
test functions: all DDL over empty tables, so none depends on what is loaded), then files (COPY),
`Loaded N files`, parameters, and ANALYZE of the loaded tables. The deploy pipeline sends the
scripts as soon as it can, before the project is scanned: behind the login when the server
logs in without an exchange (`api_at_login`, `adopt_api_ahead`: in a transaction only the
announced backend commits), else as soon as its session is open (`send_api`); it reads their
answer before it takes the advisory lock; `prepare` does the rest (and the scripts as well
when nobody sent them).

Loading uses COPY FROM STDIN with ~1 MB byte chunks: it matches psql's own COPY speed, where
one INSERT per file is 5-10x slower. A deploy of a big project into an existing database streams
the sources (`stream_sources`): each file's row is built from the bytes the scan just read and
validated, so each file is read once and the server fills the table during the scan. Otherwise
(a scanned project) the bytes the scan did not keep are read again from disk inside the COPY
generator.
Either way memory stays flat whatever the project size. Normalized
checksums not in the cache are computed while the rows stream; on a big project (Linux, two or
more CPUs) most of them come from a helper process on another core, started during the scan
(deploy/normalizer.py).

Encoding: rows are sent as the files' UTF-8 bytes while the client encoding equals the server
encoding, so the server stores them verbatim. On a UTF8 database that is ordinary UTF-8; on a
LATIN1 database it is what the original tool does (it never sets client_encoding), and it keeps
`generic_id = md5(path::bytea)` equal to the client-side md5 of the UTF-8 path.
"""

from __future__ import annotations

import collections
import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from pgmilib import SUPPORTED_COMPAT
from pgmilib.config import validate_params
from pgmilib.errors import ConfigError, PgDiagnostics, PgmiError, go_quote
from pgmilib.project.paths import directory_rows_of_tests, is_fixture_name, path_columns
from pgmilib.resources import read_sql, read_sql_section

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:  # pragma: no cover (typing.Self is 3.11+; annotations are never evaluated)
    from pathlib import Path
    from typing import Any, Self

    from pgmilib.conn.wire import Session
    from pgmilib.deploy.normalizer import Normalizer
    from pgmilib.output import Output
    from pgmilib.project.checksums import ChecksumCache
    from pgmilib.project.scan import Project, ProjectFile, Scan

API_SCRIPTS = ("session_schema.sql", "session_tests.sql", "session_contract_v1.sql", "session_contract_v1_tests.sql")
CHUNK_BYTES = 1 << 20
READ_THREADS = 2
READ_BATCH = 32
READ_AHEAD = 4
PREFIX = "session preparation failed"

_COPY_LINE = re.compile(r"\bline (\d+)")



def prepare(conn: Session, project: Project, params: Mapping[str, str], *, compat: str = "1",
            verbose: bool = False, out: Output, cache_dir: Path | None = None, api_sent: bool = False,
            helper: Normalizer | None = None, cache: ChecksumCache | None = None,
            sources_loaded: bool = False) -> None:
    """Create the session API in pg_temp and load `project` and `params` into it.

    `cache_dir` holds the normalized-checksum caches (None: none; see project/checksums.py).
    `helper`: the checksum helper started during the scan (deploy/normalizer.py), if any, and
    `cache` the checksum cache read for it (else read here, from `cache_dir`).
    `sources_loaded`: `stream_sources` loaded the source files while the project was scanned.
    `api_sent`: API_SCRIPTS already ran (`send_api`, and its answer was read).

    Every failure is a PgmiError whose message starts `session preparation failed: `.
    """
    check_compat(compat)
    started = time.monotonic()
    if not api_sent:
        run_scripts(conn, API_SCRIPTS)
    restore = _match_client_encoding(conn)
    try:
        load_files(conn, project, cache_dir, helper, cache=cache, sources_loaded=sources_loaded)
        out.info(f"Loaded {len(project.files)} files")
        count = load_parameters(conn, params)
    finally:
        restore()
    if count:
        out.info(f"Loaded {count} parameters")
    if project.files:
        _call(lambda: conn.run(read_sql_section("session_load.sql", "analyze")), f"{PREFIX}: session_load.sql")
    if verbose:
        out.verbose(f"session prepared in {time.monotonic() - started:.3f}s")


def run_script(conn: Session, name: str) -> None:
    """Send one bundled sql/ script as a single multi-statement simple query."""
    try:
        text = read_sql(name)
    except OSError as error:
        raise PgmiError(f"{PREFIX}: cannot read bundled {name}: {error.strerror or error}") from error
    _call(lambda: conn.run(text), f"{PREFIX}: {name}")


def run_scripts(conn: Session, names: tuple[str, ...]) -> None:
    """Send several bundled scripts as one simple query: one round trip.

    Each script is complete statements ending in `;`, so the concatenation runs them in
    order; a failure names every script of the batch (bundled scripts fail only on a server
    that lacks something pgmi needs).
    """
    text, what = _batch(names)
    _call(lambda: conn.run(text), what)


def send_api(conn: Session) -> Callable[[], None]:
    """Send API_SCRIPTS (the whole session API) and return without waiting.

    The server spends most of a small deploy's set-up building it (~16 ms): sent before
    the scan, that time passes while the client reads the project. Call the result before
    anything else uses `conn`; it reads the answer and raises a failure as `run_scripts`
    would. A connection that cannot send ahead (a plain pg8000 one) runs them here.
    """
    text, what = _batch(API_SCRIPTS)
    send = getattr(conn, "send_simple", None)
    if send is None:
        _call(lambda: conn.run(text), what)
        return lambda: None
    finish = _call(lambda: send(text), what)
    return lambda: _call(finish, what)


def api_at_login() -> str:
    """The session API as it goes out behind the login (conn/early.py `send_at_login`), before
    the client knows which server session runs it: inside a transaction that only the announced
    backend commits (sql/session_ahead.sql, `adopt_api_ahead`)."""
    text, _ = _batch(API_SCRIPTS)
    return read_sql_section("session_ahead.sql", "begin") + "\n" + text


def adopt_api_ahead(conn: Session, pid: int | None) -> Callable[[], bool]:
    """Take over the session API sent behind the login (`api_at_login`; `conn.query_ahead`).

    The commit goes out at once, guarded by `pid`, the backend's pid the login announced
    (None: none was, and nothing is committed); the server runs it right after the API. Call
    the result before anything else uses `conn`: True when the API is built and committed in
    that backend; False when nothing of it is left (another server session ran it, behind a
    proxy or pooler, or it failed), so the caller checks the session and installs it the usual way.
    """
    answer = conn.answer_ahead()
    guard = None
    if pid is not None:
        guard = conn.send_simple(read_sql_section("session_ahead.sql", "commit").replace("{pid}", str(int(pid))))

    def finish() -> bool:
        from pgmilib.conn.wire import roll_back_open

        built = _answered(answer)
        committed = guard is not None and _answered(guard)  # both answers are read, whatever the first
        roll_back_open(conn)  # open (no guard) or aborted: nothing of it stays
        return built and committed

    return finish


def drop_api_ahead(conn: Session) -> None:
    """Read the answer of the session API sent behind the login and roll it back, unused."""
    adopt_api_ahead(conn, None)()  # no pid: nothing is committed


def _answered(finish: Callable[[], Any]) -> bool:
    """Read one answer: True when it succeeded, False when the server refused it. A refusal that
    ended the session (FATAL) is raised: there is nothing left to roll back or retry."""
    from pgmilib.conn.wire import SERVER_ERRORS, session_end

    try:
        finish()
    except SERVER_ERRORS as error:
        if session_end(error) is not None:
            raise
        return False
    return True


def _batch(names: tuple[str, ...]) -> tuple[str, str]:
    """The scripts' text as one query, and the prefix of its failures."""
    texts = []
    for name in names:
        try:
            texts.append(read_sql(name))
        except OSError as error:
            raise PgmiError(f"{PREFIX}: cannot read bundled {name}: {error.strerror or error}") from error
    return "\n".join(texts), f"{PREFIX}: {' + '.join(names)}"


# ---- files ---------------------------------------------------------------------------------

def load_files(conn: Session, project: Project, cache_dir: Path | None = None,
               helper: Normalizer | None = None, *, cache: ChecksumCache | None = None,
               sources_loaded: bool = False) -> None:
    """COPY sources, test directories, test sources and metadata, then ANALYZE (the planner sees real row counts).

    `helper`: normalized checksums already being computed since the scan; without one (or once
    the cache has every value), a helper for the values the cache lacks may start here.
    `sources_loaded`: the sources are in already (`stream_sources`); the rest is loaded.
    """
    if not project.files:
        if helper is not None:
            helper.close()
        return
    if not sources_loaded:
        _load_sources(conn, project, cache_dir, helper, cache)
    tests = project.test_files()
    directories = directory_rows_of_tests([f.path for f in tests])
    _copy(conn, read_sql_section("session_load.sql", "copy_test_directory"),
          [(row[0], lambda row=row: _row(row[0], row[1], str(row[2]))) for row in directories])
    test_sources = [f for f in tests if f.is_sql]
    _copy(conn, read_sql_section("session_load.sql", "copy_test_source"),
          [(f.path, lambda f=f: _test_row(f)) for f in test_sources])
    described = [f for f in project.files if f.metadata is not None]  # never a test file (scan.py)
    _copy(conn, read_sql_section("session_load.sql", "copy_source_metadata"),
          [(f.path, lambda f=f: _metadata_row(f)) for f in described])
    # ANALYZE (session_load.sql "analyze") follows the parameters, in prepare().


def _load_sources(conn: Session, project: Project, cache_dir: Path | None, helper: Normalizer | None,
                  cache: ChecksumCache | None) -> None:
    """COPY the scanned project's source files, reading again those the scan did not keep."""
    if cache is None:
        from pgmilib.project.checksums import ChecksumCache  # here: the session API is sent before the scan's imports

        cache = ChecksumCache.for_project(project.root, cache_dir)
    sources = project.source_files()
    from pgmilib.deploy.normalizer import Normalizer

    todo = [f for f in sources if f._pgmi_checksum is None and not cache.has(f.checksum)]
    if helper is not None and not (todo and helper.running):
        helper.close()  # nothing left for it to do (a warm cache), or it ended
        helper = None
    # A helper is forked before the reader threads start (a fork copies only the calling thread).
    with helper or Normalizer.for_load(todo) as values, _Reader(sources) as reader:
        _copy(conn, read_sql_section("session_load.sql", "copy_source"),
              [(f.path, lambda f=f: _source_row(f, cache, reader.take(f), values.take(f))) for f in sources])
    cache.save()


def stream_sources(conn: Session, scan: Scan, files: Iterator[tuple[ProjectFile, bytes | None]],
                   cache: ChecksumCache | None, helper: Normalizer | None) -> None:
    """COPY each source file's row as the scan reads and validates it (`files`: `scan.files()`,
    perhaps after some it read ahead): one read per file, and the server fills `_pgmi_source`
    while later files are read.

    At the first problem the rows stop (the COPY ends with those sent) and the scan goes on
    to find every problem; the caller then raises them (`scan.project()`) and abandons the
    session, whose temporary tables go with it. An error the scan raises itself (an unknown
    dunder directory, two files with one path) ends the COPY the same way and is raised here
    as it is, so a streamed scan fails with the same error and exit code as a plain one.
    """
    failure: list[BaseException] = []

    def rows() -> Iterator[tuple[str, Callable[[], bytes]]]:
        try:
            for item, data in files:
                if scan.problems or item.is_test:  # a test's row goes to its own table, later
                    continue
                yield item.path, lambda item=item, data=data: _source_row(item, cache, data,
                                                                          helper.take(item) if helper else None)
        except PgmiError as error:
            failure.append(error)

    assert cache is not None  # read with the helper's start (a project with files)
    restore = _match_client_encoding(conn)
    try:
        _copy(conn, read_sql_section("session_load.sql", "copy_source"), rows())
    finally:
        restore()
        if helper is not None:
            helper.close()
    if failure:
        raise failure[0]
    cache.save()


class _Reader:
    """Read (and re-verify) the files the scan did not keep, ahead of the row builder, in threads.

    Opening and reading a file is mostly system calls, which release the GIL, so a few threads
    hide that latency behind the main thread's escaping and the server's COPY work. Files are
    read in batches (one task per READ_BATCH files, so the pool's per-task cost stays small)
    at most READ_AHEAD batches ahead, which bounds the bytes in flight. `take` returns the
    bytes of the next file in order; a read error is raised there, in order, like a direct read.
    """

    def __init__(self, files: list[ProjectFile]) -> None:
        self._batches = [files[i:i + READ_BATCH] for i in range(0, len(files), READ_BATCH)]
        self._pending: collections.deque = collections.deque()
        self._current: Iterator[bytes | BaseException] = iter(())
        self._next = 0
        self._pool = None
        if any(f.held is None and f.text is None for f in files):
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="pgmi-read")
            for _ in range(READ_AHEAD):
                self._submit()

    def _submit(self) -> None:
        if self._pool is not None and self._next < len(self._batches):
            self._pending.append(self._pool.submit(_read_batch, self._batches[self._next]))
            self._next += 1

    def take(self, item: ProjectFile) -> bytes | None:
        if self._pool is None:
            return None
        data = next(self._current, None)
        if data is None:
            self._current = iter(self._pending.popleft().result())
            self._submit()
            data = next(self._current)
        if isinstance(data, BaseException):
            raise data
        return data

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)


def _read_batch(files: list[ProjectFile]) -> list[bytes | BaseException]:
    out: list[bytes | BaseException] = []
    for item in files:
        try:
            out.append(item.read_bytes())
        except PgmiError as error:
            out.append(error)
    return out


def _source_row(item: ProjectFile, cache: ChecksumCache | None = None, data: bytes | None = None,
                normalized: str | None = None) -> bytes:
    """One `_pgmi_source` row; `data` is the file's verified bytes when a reader thread has them,
    `normalized` the normalized checksum of those bytes when the helper process computed it."""
    if data is None:
        data = item.read_bytes()
    path = item.path
    if _PLAIN_PATH.search(path) is None:
        # The common case in one pass: no character of the path needs COPY or array-literal
        # escaping, so every text column is a slice of it (same rules as path_columns).
        slash = path.rfind("/")
        name = path[slash + 1:]
        depth = path.count("/") - 1
        _, dot, ext = name.rpartition(".")
        extension = "." + ext if dot and ext.isascii() and ext.isalnum() else ""
        parent = path[path.rfind("/", 0, slash) + 1:slash] if depth else "\\N"
        head = "\t".join((path, name, path[:slash + 1], extension, str(depth))).encode("utf-8")
        tail = "\t".join((str(len(data)), item.checksum, item.normalized_from(data, cache, normalized),
                           '{"' + path.replace("/", '","') + '"}', "t" if item.is_sql else "f", "f", parent))
        return b"".join((head, b"\t", escape(data), b"\t", tail.encode("utf-8"), b"\n"))
    cols = path_columns(path)
    parts = "{" + ",".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in cols.parts) + "}"
    head = _row(item.path, cols.name, cols.directory, cols.extension, str(cols.depth))[:-1]
    tail = _row(str(len(data)), item.checksum, item.normalized_from(data, cache, normalized), parts,
                "t" if item.is_sql else "f", "f", cols.parent_folder_name)
    return head + b"\t" + escape(data) + b"\t" + tail


def _test_row(item: ProjectFile) -> bytes:
    slash = item.path.rfind("/") + 1
    directory, filename = item.path[:slash], item.path[slash:]
    head = _row(item.path, directory, filename)[:-1]
    return head + b"\t" + escape(item.read_bytes()) + b"\t" + (b"t\n" if is_fixture_name(filename) else b"f\n")


def _metadata_row(item: ProjectFile) -> bytes:
    meta = item.metadata
    assert meta is not None
    keys = "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in meta.sort_keys) + "}"
    return _row(item.path, str(meta.id), "t" if meta.idempotent else "f", keys, meta.description)


def escape(data: bytes) -> bytes:
    """COPY text-format escaping. Byte-level is safe: UTF-8 continuation bytes are >= 0x80."""
    return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_PLAIN_PATH = re.compile(r'[\\\t\n\r"]')


def _row(*values: str | None) -> bytes:
    """One COPY text row; None is NULL (`\\N`).

    Paths, names and checksums rarely need escaping, so one search over the joined values
    decides; escaping each value separately cost more than the rest of the row building.
    """
    if _COPY_SPECIAL.search("\x00".join(v for v in values if v is not None)) is None:
        return ("\t".join("\\N" if v is None else v for v in values) + "\n").encode("utf-8")
    return b"\t".join(b"\\N" if v is None else escape(v.encode("utf-8")) for v in values) + b"\n"


def _copy(conn: Session, sql: str, rows: Iterable[tuple[str, Callable[[], bytes]]]) -> None:
    """COPY `rows` (label, row builder) in ~1 MB chunks; errors name the row's path.

    A row builder that fails (a file changed or vanished since the scan) ends the stream
    early instead of raising inside pg8000's COPY loop, which would leave the protocol
    mid-COPY; the error is raised once the server has closed the COPY cleanly.
    """
    if isinstance(rows, list) and not rows:
        return
    failure: list[BaseException] = []
    labels: list[str] = []  # the paths of the rows sent, for the server's "line N"

    def chunks() -> Iterator[bytes]:
        buffer: list[bytes] = []
        size = 0
        for label, build in rows:
            try:
                row = build()
            except PgmiError as error:
                failure.append(error)
                break
            labels.append(label)
            buffer.append(row)
            size += len(row)
            if size >= CHUNK_BYTES:
                yield b"".join(buffer)
                buffer, size = [], 0
        if buffer:
            yield b"".join(buffer)

    def locate(diag: PgDiagnostics | None) -> str:
        match = _COPY_LINE.search(diag.where if diag else "")
        if match and 0 < int(match.group(1)) <= len(labels):
            return labels[int(match.group(1)) - 1] + ": "
        return ""

    _call(lambda: conn.run(sql, stream=chunks()), f"{PREFIX}: failed to load files", locate=locate)
    if failure:
        raise PgmiError(f"{PREFIX}: failed to load files: {failure[0]}") from failure[0]


# ---- parameters ----------------------------------------------------------------------------

def load_parameters(conn: Session, params: Mapping[str, str]) -> int:
    """Store parameters as rows (lower-cased keys) and as session GUCs `pgmi.<key>`.

    Values travel only as COPY data and are copied into the GUCs by a query over the table,
    so no value is ever part of SQL text, and error messages never show a value.
    """
    if not params:
        return 0
    validate_params(params)  # the one rule (keys, NUL, UTF-8, case clashes); callers validated already
    lines = [escape(key.lower().encode("ascii")) + b"\t" + escape(value.encode("utf-8")) + b"\n"
             for key, value in params.items()]
    _call(lambda: conn.run(read_sql_section("session_load.sql", "copy_parameters"), stream=[b"".join(lines)]),
          f"{PREFIX}: failed to load parameters", hide_values=True)
    _call(lambda: conn.run(read_sql_section("session_load.sql", "parameter_settings")),
          f"{PREFIX}: failed to load parameters", hide_values=True)
    return len(lines)


def check_compat(compat: str) -> str:
    """The session API version to install ('' = latest); ConfigError (10) for one this build lacks."""
    if compat not in ("", *SUPPORTED_COMPAT):
        raise ConfigError(f"unsupported API version {go_quote(compat)}; supported: [{' '.join(SUPPORTED_COMPAT)}]")
    return compat or SUPPORTED_COMPAT[0]


MIN_SERVER_VERSION = 110000  # hashtextextended (the deploy lock), procedures (pgmi_test)


def check_server_version(conn: Session) -> None:
    """pgmi needs PostgreSQL 11+ (hashtextextended, procedures); ConfigError (10) otherwise.

    The server reports its version at start-up (ParameterStatus `server_version`): when that
    reads as 11 or newer, no round trip. Otherwise (an older server, a text this cannot read, a
    connection without the reports) the server is asked, and its answer decides and words the error.
    """
    if server_version_reported(conn):
        return
    number, text = _call(lambda: conn.run(read_sql_section("session_load.sql", "server_version")), PREFIX)[0]
    if number < MIN_SERVER_VERSION:
        raise ConfigError(f"this server reports PostgreSQL {text}, and pgmi requires 11 or newer")


def server_version_reported(conn: Session) -> bool:
    """Did the server's start-up report (ParameterStatus `server_version`) say 11 or newer?"""
    reported = server_version_number(_reported(conn, "server_version"))
    return reported is not None and reported >= MIN_SERVER_VERSION


_VERSION = re.compile(r"\s*(\d+)(?:\.(\d+)(?:\.(\d+))?)?")


def server_version_number(text: str | None) -> int | None:
    """`server_version` as `server_version_num` would say it, read as libpq reads it
    ('15.8 (Debian 15.8-1)' -> 150008, '9.6.24' -> 90624, '16beta1' -> 160000); None when unreadable."""
    match = _VERSION.match(text or "")
    if match is None:
        return None
    major, minor, patch = (int(part) if part is not None else None for part in match.groups())
    if patch is not None:  # before 10: major.minor.patch
        return (major * 100 + minor) * 100 + patch
    if minor is not None:
        return major * 10000 + minor if major >= 10 else (major * 100 + minor) * 100
    return major * 10000


# ---- plumbing ------------------------------------------------------------------------------

def _match_client_encoding(conn: Session) -> Callable[[], None]:
    """Make client_encoding equal the server encoding for the COPYs; return the undo.

    With equal encodings the server stores the UTF-8 bytes verbatim (see module docstring);
    a connection that asked for UTF8 on a LATIN1 database would otherwise convert them. Both
    encodings come from the server's own reports (ParameterStatus, sent at start-up and again
    whenever client_encoding changes), so this costs a round trip only when it changes something.
    """
    server, client = _reported(conn, "server_encoding"), _reported(conn, "client_encoding")
    if server is None or client is None:  # a connection without the server's reports: ask
        server, client = _call(lambda: conn.run(read_sql_section("session_load.sql", "encodings")), PREFIX)[0]
    if server == client or server == "SQL_ASCII":
        return lambda: None
    _call(lambda: conn.run(read_sql_section("session_load.sql", "set_client_encoding"), e=server), PREFIX)

    def restore() -> None:
        from pgmilib.conn.wire import DRIVER_ERRORS

        # If the load already failed or the connection is gone, that error is the one to report.
        with contextlib.suppress(*DRIVER_ERRORS):
            conn.run(read_sql_section("session_load.sql", "set_client_encoding"), e=client)

    return restore


def _reported(conn: Session, name: str) -> str | None:
    """A setting the server reports by itself (ParameterStatus: server_version, server_encoding,
    client_encoding...), as pg8000 keeps it in `parameter_statuses`; None when not reported."""
    statuses = getattr(conn, "parameter_statuses", None)
    value = statuses.get(name) if isinstance(statuses, dict) else None
    return value if isinstance(value, str) else None


def _call(action: Callable[[], Any], context: str, *,
          locate: Callable[[PgDiagnostics | None], str] | None = None, hide_values: bool = False) -> Any:
    """Run one round trip; turn driver/server failures into `context: [path: ]message`."""
    from pgmilib.conn.wire import LOST_ERRORS, SERVER_ERRORS, session_end

    try:
        return action()
    except SERVER_ERRORS as error:
        ended = session_end(error)
        if ended is not None:  # pg_terminate_backend, a shutdown: the connection is gone (exit 11)
            from pgmilib.errors import ConnectionFailed

            raise ConnectionFailed(f"{context}: connection to the server lost: {ended}") from error
        diag = PgDiagnostics.from_exception(error)
        where = locate(diag) if locate else ""
        message = diag.message if diag else str(error)
        if diag is not None:
            diag.where = ""  # COPY context lines quote row data; the path is named instead
            if hide_values:
                diag.detail = ""
                diag.internal_query = ""
        raise PgmiError(f"{context}: {where}{message}", pg=diag) from error
    except LOST_ERRORS as error:
        from pgmilib.errors import ConnectionFailed

        raise ConnectionFailed(f"{context}: connection to the server lost: {error}") from error
    except OSError as error:  # e.g. a project file that became unreadable while streaming
        raise PgmiError(f"{context}: {error}") from error

