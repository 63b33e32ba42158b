"""`pgmi templates list` and `pgmi templates describe NAME` (human text or --json)."""

from __future__ import annotations

import argparse
import json

from pgmilib.errors import Exit, UsageError
from pgmilib.output import Output
from pgmilib.scaffold.catalogue import describe, template_names
from pgmilib.scaffold.create import unknown_template


def _as_json(name: str) -> dict:
    d = describe(name)
    return {"name": name, "short": d.short, "description": d.long, "structure": list(d.structure),
            "features": list(d.features), "bestFor": d.best_for}


def _unknown(name: str) -> UsageError:
    """The unknown-template error, with `; did you mean advanced?` when a name is close (difflib)."""
    import difflib

    error = unknown_template(name)
    close = difflib.get_close_matches(name, template_names(), n=1, cutoff=0.6)
    if close:
        error.message += f"; did you mean {close[0]}?"
        error.args = (error.message,)
    return error


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    names = template_names()
    if getattr(args, "json", False):
        out.data(json.dumps([_as_json(n) for n in names], indent=2, ensure_ascii=False))
        return Exit.SUCCESS
    lines = []
    for name in names:
        d = describe(name)
        lines.append(f"{name:<12} {d.short}")
        if d.best_for:
            lines.append(f"{'':<12}   for: {d.best_for}")
    out.data("\n".join(lines))
    out.info("\nScaffold one with: pgmi init <path> -t <template>")
    return Exit.SUCCESS


def cmd_describe(args: argparse.Namespace, out: Output) -> int:
    name = args.template_name
    if not name:
        error = UsageError("usage error: missing required argument: <template_name>")
        error.trailer += ["", "Usage: pgmi templates describe <template_name>", "", "Example:",
                          "  pgmi templates describe basic", "", "Run 'pgmi templates list' to see the templates."]
        raise error
    if name not in template_names():
        raise _unknown(name)
    if getattr(args, "json", False):
        out.data(json.dumps(_as_json(name), indent=2, ensure_ascii=False))
        return Exit.SUCCESS
    d = describe(name)
    lines = [f"{name} — {d.short}", "", d.long, "", "Structure:"]
    lines += [f"  {item}" for item in d.structure]
    lines += ["", "Features:"] + [f"  - {item}" for item in d.features]
    if d.best_for:
        lines += ["", f"For: {d.best_for}"]
    out.data("\n".join(lines))
    out.info(f"\nScaffold with: pgmi init <path> -t {name}")
    return Exit.SUCCESS
