"""`--ephemeral`: deploy into a throwaway local PostgreSQL that is removed when the run ends."""

from __future__ import annotations

import contextlib
import os

from pgmilib.conn.conninfo import parse_connection_string
from pgmilib.conn.params import ConnParams
from pgmilib.deploy.request import DeployRequest
from pgmilib.errors import ConfigError
from pgmilib.output import Output

EPHEMERAL_DEFAULT_DB = "pgmi_ephemeral"


def start_ephemeral(request: DeployRequest, out: Output, cleanup: contextlib.ExitStack) -> ConnParams:
    """Start the server, register its removal with `cleanup` (unless --keep), return where to connect.

    `ConnParams.source` names the server programs used, for the result and the log.
    """
    from pgmilib.cluster import Cluster

    flags = request.connection
    clashing = [flag for flag, value in (("--connection", flags.connection), ("--host", flags.host),
                                         ("--port", flags.port), ("--username", flags.username),
                                         ("--overwrite", request.overwrite),
                                         ("--azure", flags.azure), ("--aws", flags.aws), ("--google", flags.google))
                if value]
    if clashing:
        raise ConfigError(f"--ephemeral starts its own server; drop {', '.join(clashing)}")
    database = flags.database or EPHEMERAL_DEFAULT_DB
    out.info("Starting an ephemeral PostgreSQL server ...")
    cluster = Cluster().start()
    if request.keep:
        cluster.detach()
    else:
        cleanup.callback(cluster.stop)
    params = parse_connection_string(cluster.dsn(database))
    params.application_name = params.application_name or "pgmi"
    params.maintenance_database = "postgres"
    params.source = f"ephemeral server from {cluster.pg_bin}"
    out.info(f"Ephemeral server running; connect with: psql \"{cluster.dsn(database)}\"")
    if request.keep:
        stop = f"{cluster.pg_bin}/pg_ctl -D {cluster.data_dir} stop"
        if os.geteuid() == 0:
            stop = f"runuser -u postgres -- {stop}"
        out.info(f"--keep: the server stays up after the deploy; stop it with: {stop}")
    return params
