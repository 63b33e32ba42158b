"""Deployments: `deploy(DeployRequest, Output) -> DeployResult` is the one entry point.

The CLI (`pgmi deploy`), the MCP server's `deploy` tool, fleet deploys and the tests all
call it; see docs/ARCHITECTURE.md. Modules: `request` (the typed boundary), `pipeline`
(the steps), `watchdog` (deadline and cancellation), `dbadmin` (create/overwrite), `lock`
(the deploy lock), `session` (the session API and file load), `execute` (running
deploy.sql and reporting failures), `locate`, `textmatch` and `names` (where a failure
happened), `copyin` and `hints`, `testing` and `reports` (CALL pgmi_test and its reports),
`ephemeral` (--ephemeral). Modules of this package import each other by module name, never
through this __init__ (which imports `pipeline`).
"""

from pgmilib.conn.resolve import ConnectionFlags
from pgmilib.deploy.pipeline import deploy
from pgmilib.deploy.request import DeployRequest, DeployResult
from pgmilib.deploy.watchdog import Cancellation

__all__ = ["Cancellation", "ConnectionFlags", "DeployRequest", "DeployResult", "deploy"]
