"""The errors of the throwaway-server package."""

from __future__ import annotations

from pgmilib.errors import PgmiError


class ClusterError(PgmiError):
    """No throwaway server could be set up (no server programs, initdb/pg_ctl failure, no docker daemon)."""


class DockerError(ClusterError):
    """The container could not be started or did not become ready."""
