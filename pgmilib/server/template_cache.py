"""The cache of initdb results: a cluster starts as a copy of an already initialised data directory.

`initdb` is the slow part (0.6 s on tmpfs, 1-2 s on a disk); copying an already
initialised data directory is ~10x faster. So the first start initialises a *template*
once per server version (keyed by `initdb --version` and the initdb options) and every
cluster after that is a `cp -a` of it. Templates live in the user cache directory
(`template_cache_dir()`; ~40 MB each, at most `$PGMI_CLUSTER_CACHE_MB`, default 256 MB,
least recently used evicted first; `make clean` or `clear_templates()` empties it).

Several runs share the cache at once (the suite on two interpreters, a demo beside a test run), so:
- a template is published with an atomic rename: no run sees a half-written one;
- a copy holds a shared lock on the template (`copy_template`); removal takes an exclusive one
  without waiting and skips a template being copied (`discard`), then renames it out of its name
  before deleting it, so no run finds a half-deleted tree under a template's name;
- a run that finds its template removed after looking it up runs initdb: slower, always correct;
- eviction leaves templates used in the last `RECENT_USE_S` seconds: the run that just used one
  is likely to start another cluster from it soon, and two runs must not evict each other's.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time

TEMPLATE_PREFIX = "pgmi-template-"
STAGING_MARK = ".tmp-"  # in the names of trees being published or removed: never a template
_CACHE_CAP_MB = 256
RECENT_USE_S = 600  # a template used this recently is likely used again soon: eviction leaves it
_ABANDONED_S = 3600  # a staging or removal tree this old was left by a run that died


def template_cache_dir() -> str:
    """Where initdb templates are cached: $PGMI_CLUSTER_CACHE, else $XDG_CACHE_HOME/pgmi/clusters,
    else ~/.cache/pgmi/clusters."""
    explicit = os.environ.get("PGMI_CLUSTER_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pgmi", "clusters")


def copy_tree(source: str, target: str, account: tuple[int, int] | None) -> None:
    """`cp -a` (fast, keeps owners); where there is none, copy in Python and fix the owners."""
    try:
        subprocess.run(["cp", "-a", source, target], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)
        if account:
            for root, dirs, files in os.walk(target):
                for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                    os.lchown(name, *account)


def _flock(fd: int, *, exclusive: bool) -> bool:
    """Lock a template's open directory: shared (a copy) waits; exclusive (a removal) does not.

    False only when another process holds a conflicting lock. Where the filesystem has no flock
    (some network mounts), True: the recency rule and `copy_template`'s identity check still hold.
    fcntl is imported here, not at the top: it is POSIX only, and pgmilib.server is imported on every
    platform by `deploy --ephemeral`, whose docker fallback needs no lock.
    """
    import errno
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
    except OSError as error:
        return error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)
    return True


def copy_template(template: str, target: str, account: tuple[int, int] | None) -> bool:
    """Copy a cached template into `target`; False (and no `target`) when it was removed meanwhile.

    The copy holds a shared lock on the template's directory, and removal (`discard`) needs an
    exclusive one, so no template is deleted while a run copies it. Holding the directory open
    also means its inode cannot be reused: if the name still leads to it under the lock, the copy
    reads the template we locked and not a half-deleted tree.
    """
    try:
        fd = os.open(template, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False  # gone since it was looked up
    try:
        _flock(fd, exclusive=False)
        held, named = os.fstat(fd), os.stat(template)
        if (held.st_ino, held.st_dev) != (named.st_ino, named.st_dev):
            return False  # renamed away (removed) before we had the lock
        copy_tree(template, target, account)
        return True
    except OSError:  # copy_tree's own fallback failed too: a full disk, or the template gone
        shutil.rmtree(target, ignore_errors=True)
        return False
    finally:
        os.close(fd)


def discard(path: str) -> bool:
    """Remove a template unless a run is copying it: lock, rename it out of its name, then delete."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False  # gone already
    doomed = f"{path}{STAGING_MARK}gone-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        if not _flock(fd, exclusive=True):
            return False  # being copied right now
        os.rename(path, doomed)
    except OSError:
        return False  # not ours to remove
    finally:
        os.close(fd)
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def touch(path: str) -> None:
    """Mark a template as recently used (eviction removes the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _tree_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _recently_used(path: str, seconds: float) -> bool:
    try:
        return os.stat(path).st_mtime > time.time() - seconds
    except OSError:
        return True  # gone or unreadable: not ours to remove


def evict(cache: str, keep: str) -> None:
    """Keep the template cache under $PGMI_CLUSTER_CACHE_MB (default 256): least recently used go first.

    A soft cap: templates used in the last RECENT_USE_S seconds stay even above it, so that two
    runs with different servers do not evict each other's template at every start; one being
    copied stays too (`discard`). Staging and removal trees abandoned by a run that died are swept.
    """
    try:
        cap = int(os.environ.get("PGMI_CLUSTER_CACHE_MB", _CACHE_CAP_MB)) * 1024 * 1024
    except ValueError:
        cap = _CACHE_CAP_MB * 1024 * 1024
    entries = []
    for path in glob.glob(os.path.join(cache, TEMPLATE_PREFIX + "*")):
        if STAGING_MARK in path:
            if not _recently_used(path, _ABANDONED_S):
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            entries.append((os.stat(path).st_mtime, path, _tree_size(path)))
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    for _, path, size in sorted(entries):
        if total <= cap:
            break
        # Checked again here: sizing the entries took a while, and another run may have used it since.
        if os.path.realpath(path) == os.path.realpath(keep) or _recently_used(path, RECENT_USE_S):
            continue
        if discard(path):
            total -= size


def trustworthy(path: str, owner: int) -> bool:
    """A cached template is used only if it is a real directory owned by `owner` and not writable by others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == owner and not st.st_mode & 0o022
