"""The rules of `pgmi init`, shared by the command and the init wizard.

Order matters for the "refused means untouched" guarantee: every check (template exists,
names are UTF-8 and short enough for the file system, target is a directory or absent,
nothing but managed files in it) runs before the first mkdir, so a refused scaffold has
written nothing; and a scaffold that fails half-way (disk full, Ctrl-C) removes what it
made, so nothing half-made is left behind either.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pgmilib.errors import PgmiError, UsageError, go_quote
from pgmilib.scaffold.catalogue import template_dir, template_names

if TYPE_CHECKING:  # importlib.abc's name warns since 3.12 and is gone in 3.14; annotations are never evaluated
    from importlib.abc import Traversable

# Files a user may prepare before `pgmi init` (connection, secrets); they never block and are
# never overwritten.
MANAGED_FILES = ("pgmi.yaml", ".env")
PLACEHOLDER = "{{PROJECT_NAME}}"


def project_name(target: str | Path) -> str:
    """Base name of the target; for `.`/`..` (or a trailing slash) the current directory's name."""
    name = Path(os.path.normpath(str(target))).name
    if name in ("", ".", ".."):
        try:
            name = Path(os.path.abspath(str(target))).name or "project"
        except OSError:
            name = "project"
    return name


def quoted(text: str) -> str:
    """`go_quote` for a path that may not be UTF-8: an undecodable byte (Python's surrogate
    escape) shows as `\\xff`, like the shell's $'...', a lone surrogate as `\\ud800`."""
    pieces = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            pieces.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code < 0xE000:
            pieces.append(f"\\u{code:04x}")
        else:
            pieces.append(go_quote(char)[1:-1])
    return '"' + "".join(pieces) + '"'


def check_names(target: Path, name: str) -> None:
    """The project name is written into UTF-8 files and every new path component must fit the
    file system's name limit: refuse both before anything is made (UsageError, exit 2)."""
    for what, text in (("project name", name), ("target", str(target))):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"usage error: {what} {quoted(text)} is not valid UTF-8 (the project "
                             "name is written into the template's files); choose a UTF-8 name") from None
    limit = _name_max(target)
    for part in target.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UsageError(f"usage error: name {quoted(part[:40])}… is {size} bytes long; the file "
                             f"system allows at most {limit}")


def _name_max(target: Path) -> int:
    """NAME_MAX of the file system the target would be made on (255 where it cannot be asked)."""
    probe = target.absolute()
    while not os.path.exists(probe) and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def unknown_template(name: str) -> UsageError:
    error = UsageError(f"usage error: unknown template {go_quote(name)} (available: [{' '.join(template_names())}])")
    error.trailer.append("Run 'pgmi templates list' to see the templates.")
    return error


def blocking_entries(target: Path) -> list[str]:
    """Entries of an existing directory that forbid scaffolding into it (sorted)."""
    return sorted(e for e in os.listdir(target) if e not in MANAGED_FILES)


def check_target(target: Path) -> None:
    """Raise unless the target is absent, an empty directory, or holds only managed files."""
    shown = go_quote(str(target.absolute()))
    if not os.path.exists(target):  # os.path: False (not an exception) for a path too long to stat
        if os.path.islink(target):
            raise UsageError(f"usage error: target {shown} is a dangling symbolic link")
        return
    if not os.path.isdir(target):
        raise UsageError(f"usage error: target {shown} exists but is not a directory")
    try:
        blocking = blocking_entries(target)
    except OSError as error:
        raise PgmiError(f"cannot read directory {shown}: {error.strerror}") from error
    if blocking:
        error = UsageError(f"usage error: directory {shown} is not empty (blocking: [{' '.join(blocking)}])")
        error.trailer.append("Choose another location, remove those files, or scaffold into a new directory "
                             "(pgmi init <new-dir-name>).")
        raise error


def substitute(text: str, name: str, *, json_file: bool) -> str:
    """Replace the placeholder; inside .json files insert the name JSON-string-escaped."""
    value = json.dumps(name, ensure_ascii=False)[1:-1] if json_file else name
    return text.replace(PLACEHOLDER, value)


def _walk(node: Traversable, rel: str = "") -> list[tuple[str, Traversable]]:
    """(relative path, entry) pairs in a stable order, directories before their contents."""
    entries: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        path = f"{rel}{child.name}"
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            if child.name.startswith("."):  # dot-directories are never part of a template
                continue
            entries.append((path + "/", child))
            entries.extend(_walk(child, path + "/"))
        else:
            entries.append((path, child))
    return entries


def create_project(template: str, target: str | Path, name: str | None = None,
                   log: Callable[[str], None] | None = None) -> Path:
    """Scaffold `template` into `target`; returns the absolute target path.

    `log` receives one line per directory/file created and per managed file kept (verbose).
    """
    source = template_dir(template)
    if source is None:
        raise unknown_template(template)
    target = Path(target)
    name = name or project_name(target)
    check_names(target, name)
    check_target(target)
    say = log or (lambda _line: None)
    made: list[Path] = []  # what this call created, to remove again if it fails half-way
    top = target.absolute()
    while not os.path.exists(top.parent) and top.parent != top:
        top = top.parent  # the outermost directory `mkdir(parents=True)` is about to make
    try:
        if not target.exists():
            target.mkdir(mode=0o755, parents=True)
            made.append(top)
        for rel, entry in _walk(source):
            dest = target / rel
            if rel.endswith("/"):
                if not dest.exists():
                    dest.mkdir(mode=0o755)
                    made.append(dest)
                say(f"Created directory: {rel}")
                continue
            if rel in MANAGED_FILES and dest.exists():
                say(f"Skipping existing: {rel}")
                continue
            data = entry.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                body = data  # binary files are copied as they are
            else:
                body = substitute(text, name, json_file=rel.endswith(".json")).encode("utf-8")
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            made.append(dest)
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            say(f"Created file: {rel}")
    except BaseException as failure:
        _remove(made)
        if not isinstance(failure, OSError):
            raise
        where = failure.filename or str(target)
        raise PgmiError(f"cannot write {quoted(str(where))}: {failure.strerror}") from failure
    return target.absolute()


def _remove(made: list[Path]) -> None:
    """Undo a failed scaffold: newest first, so files go before their directories."""
    for path in reversed(made):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def tree_lines(root: Path) -> list[str]:
    """`<abs>/` then one `├── `/`└── ` line per entry, directories suffixed `/`, name-sorted."""
    lines = [f"{root.absolute()}/"]

    def walk(directory: Path, prefix: str) -> None:
        children = sorted(directory.iterdir(), key=lambda p: p.name)
        for i, child in enumerate(children):
            last = i == len(children) - 1
            suffix = "/" if child.is_dir() else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child.name}{suffix}")
            if child.is_dir():
                walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")
    return lines
