"""Documentation pgmi carries for AI coding assistants (`pgmi ai ...`, the MCP `ai_*` tools).

The text lives in `pgmilib/ai/docs/` (markdown, loaded with importlib.resources so the
checkout, `pip install .` and the zipapp read the same files); the session-API contract
is not text at all but generated from `sql/` and `pgmilib.errors.Exit` (contract.py).
"""
