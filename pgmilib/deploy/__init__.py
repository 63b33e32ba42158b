"""Deployments: `deploy(DeployRequest, Output) -> DeployResult` is the one entry point.

The CLI (`pgmi deploy`), the MCP server's `deploy` tool, fleet deploys and the tests all
call it; docs/ARCHITECTURE.md has the map of this package's modules (`--ephemeral` servers
live in pgmilib/server/). Modules of this package import each other by module name, never
through this __init__ (which imports `pipeline`).
"""

from pgmilib.conn.resolve import ConnectionFlags
from pgmilib.deploy.pipeline import deploy
from pgmilib.deploy.request import DeployRequest, DeployResult
from pgmilib.deploy.watchdog import Cancellation

__all__ = ["Cancellation", "ConnectionFlags", "DeployRequest", "DeployResult", "deploy"]
