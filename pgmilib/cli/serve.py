"""`pgmi serve`: the MCP server over stdio (see pgmilib/mcp/).

stdout belongs to the protocol from the first byte: the command writes nothing else
there, and `Output` is only used for diagnostics on stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys

from pgmilib.output import Output


def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    import gc

    from pgmilib.mcp.server import Server, install_signal_handlers

    gc.enable()  # the CLI's entry point turns the collector off for one command; a server runs for hours

    server = Server(sys.stdin.buffer, sys.stdout.buffer)
    if sys.stdin.isatty():  # a person ran it by hand; an MCP client gives it a pipe and hears nothing here
        out.info("pgmi serve speaks MCP (JSON-RPC) on stdin/stdout for an AI assistant, e.g. "
                 "`claude mcp add pgmi -- pgmi serve`; Ctrl-D or Ctrl-C ends it")
    previous = install_signal_handlers()
    try:
        out.verbose("pgmi MCP server on stdio (register: claude mcp add pgmi -- pgmi serve)")
        return server.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
