"""`pgmi serve`: pgmi's own commands as Model Context Protocol tools, over stdio.

Modules, one job each: `jsonrpc` (framing and the protocol-level checks of one message),
`tools` (the tool registry, argument checks, result and error shapes), `tools_docs` /
`tools_project` / `tool_deploy` (the tools themselves), `dispatch` (method routing and
version negotiation), `server` (the stdio loop, worker threads, cancellation).
"""
