"""pgmi, the PostgreSQL-native deployment driver (Python implementation).

Public entry points: `pgmilib.cli.main(argv)` for the command line, and
`pgmilib.deploy.deploy(DeployRequest, Output) -> DeployResult` for Python callers (the MCP
server, fleet deploys and the tests use it too; see docs/ARCHITECTURE.md).
"""

__version__ = "0.1.0"
#: Session API versions this build can install (`--compat`); the first is the latest.
SUPPORTED_COMPAT = ("1",)
#: Filled in by build.py inside the zipapp; "unknown" when running from a checkout.
BUILD_COMMIT = "unknown"
BUILD_DATE = "unknown"
