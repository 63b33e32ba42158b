"""Which targets this run deploys: `--only NAME,...`, then `--shard I/N`, then `--canary` first.

Sharding is deterministic and needs no coordinator: shard I of N takes the targets at
positions I-1, I-1+N, I-1+2N ... of the (filtered) list, so every target is in exactly one
shard, shard sizes differ by at most one, and the same file and N always give the same
split. A CI matrix or a Kubernetes Indexed Job runs one shard per machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pgmilib.errors import UsageError, go_quote
from pgmilib.fleet.targets import Target

_SHARD = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")
_MAX_DIGITS = 9  # a billion shards is beyond any fleet; longer numbers are typos (or 5,000 digits)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (1-based) -> (I, N); UsageError naming --shard when empty, malformed or out of range.

    An empty value is an error, not "no sharding": it is what an unset CI variable gives
    (`--shard "$SHARD"`), and ignoring it would make every job deploy the whole list."""
    if not (text or "").strip():
        raise UsageError("--shard is empty: expected I/N, e.g. 1/4 (shard 1 of 4); is the CI variable that "
                         "should fill it unset?")
    m = _SHARD.fullmatch(text)
    if m is None:
        raise UsageError(f"invalid --shard {go_quote(text[:40])}: expected I/N, e.g. 1/4 (shard 1 of 4)")
    if max(len(m.group(1)), len(m.group(2))) > _MAX_DIGITS:
        raise UsageError(f"invalid --shard {go_quote(text[:40])}{'…' if len(text) > 40 else ''}: "
                         f"I and N have at most {_MAX_DIGITS} digits")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {index}/{count} is out of range: I must be between 1 and N (N >= 1)")
    return index, count


def parse_only(text: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if not names:
        raise UsageError("--only needs at least one target name (NAME,NAME,...)")
    return names


def shard(targets: Sequence[Target], index: int, count: int) -> list[Target]:
    """Round-robin by position: shard `index` (1-based) of `count`."""
    return [t for position, t in enumerate(targets) if position % count == index - 1]


def check_known(targets: Sequence[Target], *, only: Sequence[str] = (), canary: str = "") -> None:
    """UsageError naming every --only/--canary name that is not a target (for `select` and `run_fleet`)."""
    names = [t.name for t in targets]
    unknown = [n for n in [*only, *([canary] if canary else [])] if n not in names]
    if unknown:
        flag = "--canary" if unknown == [canary] and canary not in only else "--only/--canary"
        raise UsageError(f"{flag}: unknown target(s) {', '.join(go_quote(n) for n in unknown)}; "
                         f"the list has {len(names)} target(s)")


def select(targets: Sequence[Target], *, only: Sequence[str] = (), shard_spec: tuple[int, int] | None = None,
           canary: str = "") -> list[Target]:
    """The targets to deploy, in order (the canary first); UsageError for unknown names."""
    check_known(targets, only=only, canary=canary)
    chosen = [t for t in targets if t.name in set(only)] if only else list(targets)
    if only and canary and canary not in only:
        raise UsageError(f"--canary {go_quote(canary)} is not among the --only targets")
    if shard_spec is not None:
        chosen = shard(chosen, *shard_spec)
        if canary and canary not in [t.name for t in chosen]:
            raise UsageError(f"--canary {go_quote(canary)} is not in shard {shard_spec[0]}/{shard_spec[1]}; "
                             "deploy the canary in its own job first (--only NAME), then the shards without --canary")
    if canary:
        chosen.sort(key=lambda t: t.name != canary)  # stable: the rest keep their order
    return chosen
