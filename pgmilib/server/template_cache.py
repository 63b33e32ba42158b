"""The cache of initdb results: a cluster starts as a copy of an already initialised data directory.

`initdb` is the slow part (0.6 s on tmpfs, 1-2 s on a disk); copying an already
initialised data directory is ~10x faster. So the first start initialises a *template*
once per server version (keyed by `initdb --version` and the initdb options) and every
cluster after that is a `cp -a` of it. Templates live in the user cache directory
(`template_cache_dir()`; ~40 MB each, at most `$PGMI_CLUSTER_CACHE_MB`, default 256 MB,
least recently used evicted first; `make clean` or `clear_templates()` empties it). A
template is published with an atomic rename, so concurrent runs never see a half-written one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

TEMPLATE_PREFIX = "pgmi-template-"
_CACHE_CAP_MB = 256


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


def evict(cache: str, keep: str) -> None:
    """Keep the template cache under $PGMI_CLUSTER_CACHE_MB (default 256): least recently used go first."""
    try:
        cap = int(os.environ.get("PGMI_CLUSTER_CACHE_MB", _CACHE_CAP_MB)) * 1024 * 1024
    except ValueError:
        cap = _CACHE_CAP_MB * 1024 * 1024
    entries = []
    for path in glob.glob(os.path.join(cache, TEMPLATE_PREFIX + "*")):
        if ".tmp-" in path:
            continue
        try:
            entries.append((os.stat(path).st_mtime, path, _tree_size(path)))
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    for _, path, size in sorted(entries):
        if total <= cap:
            break
        if os.path.realpath(path) == os.path.realpath(keep):
            continue
        shutil.rmtree(path, ignore_errors=True)
        total -= size


def trustworthy(path: str, owner: int) -> bool:
    """A cached template is used only if it is a real directory owned by `owner` and not writable by others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == owner and not st.st_mode & 0o022
