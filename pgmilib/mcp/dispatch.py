"""Method routing: initialize (version negotiation), ping, tools/list, tools/call.

Stateless apart from the tool table: the server needs no `initialize` before `tools/call`
(clients that skip it still work), and no call can see another call's data.
"""

from __future__ import annotations

from typing import Any

from pgmilib import __version__
from pgmilib.mcp import tool_deploy, tools_docs, tools_project
from pgmilib.mcp.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, ProtocolError, Request, shown
from pgmilib.mcp.tools import CallContext, Tool, call

SUPPORTED_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")  # newest first: the fallback answer
SERVER_NAME = "pgmi"


def all_tools() -> dict[str, Tool]:
    tools = [*tools_docs.TOOLS, *tools_project.TOOLS, *tool_deploy.TOOLS]
    return {tool.name: tool for tool in sorted(tools, key=lambda t: t.name)}


class Dispatcher:
    def __init__(self, tools: dict[str, Tool] | None = None) -> None:
        self.tools = tools if tools is not None else all_tools()

    def handle(self, request: Request, context: CallContext | None = None) -> Any:
        """The `result` of a request; raises ProtocolError for a JSON-RPC error answer."""
        params = request.params if request.params is not None else {}
        if request.method == "initialize":
            return self.initialize(params)
        if request.method == "ping":
            return {}
        if request.method == "tools/list":
            return {"tools": [tool.listing() for tool in self.tools.values()]}
        if request.method == "tools/call":
            return self.call_tool(params, context or CallContext())
        raise ProtocolError(METHOD_NOT_FOUND, f"method not found: {shown(request.method)}")

    @staticmethod
    def initialize(params: Any) -> dict[str, Any]:
        if not isinstance(params, dict):
            raise ProtocolError(INVALID_PARAMS, "invalid params: expected an object")
        if "protocolVersion" not in params:
            raise ProtocolError(INVALID_PARAMS, "missing required parameter: protocolVersion")
        requested = params["protocolVersion"]
        version = requested if requested in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[0]
        return {"protocolVersion": version, "capabilities": {"tools": {}},
                "serverInfo": {"name": SERVER_NAME, "version": __version__}}

    def call_tool(self, params: Any, context: CallContext) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            raise ProtocolError(INVALID_PARAMS, "invalid params: tools/call needs a string 'name'")
        tool = self.tools.get(params["name"])
        if tool is None:
            raise ProtocolError(INVALID_PARAMS, f"unknown tool: {shown(params['name'])}")
        context.meta = params["_meta"] if isinstance(params.get("_meta"), dict) else {}
        return call(tool, params.get("arguments"), context)
