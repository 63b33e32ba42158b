"""What every reliability test shares: the scale, the seed, the canaries, the figures.

Scale: the suite runs a small, fast slice by default (part of `make test`, so CI runs it)
and the full counts with `PGMI_RELIABILITY=full` (`make reliability`). Counts are chosen
with `scale(fast, full)`, so one test body serves both.

Seed: one seed per pytest process, `PGMI_RELIABILITY_SEED` or a fresh random one; it
drives the fault schedule (random.Random) and Hypothesis (`@seed`), and is printed in the
summary and in every trial's failure message, so a failing run can be replayed.

Canaries: every pgmi run here carries a canary password (a password role on the
reliability cluster) and a canary `--param api_token=...`. Every byte pgmi prints and
every report it writes is recorded with `capture()`; the session end scans all of it
(conftest.py) and counts hits: the documented figure must be zero.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("PGMI_RELIABILITY", "").lower() == "full"
SEED = int(os.environ.get("PGMI_RELIABILITY_SEED") or random.SystemRandom().randrange(1, 2**31))

# Distinctive, never produced by anything else; long enough that redaction must register them.
CANARY_PASSWORD = "CnryPw-4f9Qx7Lz"
CANARY_TOKEN = "CnryTok-8Rm2Vw5K"
CANARIES = (CANARY_PASSWORD, CANARY_TOKEN)
DEPLOY_ROLE = "rel_deployer"  # the password role of the reliability cluster (conftest.py)

# pgmi's own crash markers: a Python traceback, the panic line of exit 3.
_CRASH = re.compile(r"Traceback \(most recent call last\)|^panic:|pgmi: this is a bug", re.MULTILINE)

FIGURES: Counter[str] = Counter()
CAPTURED: list[tuple[str, str]] = []  # (label, text) of every output and report, scanned at the end
FINDINGS: list[str] = []  # trial failures, printed in the summary as well as asserted


def scale(fast: int, full: int) -> int:
    """The count for this run: `fast` in `make test`, `full` in `make reliability`."""
    return full if FULL else fast


def capture(label: str, text: str) -> int:
    """Record output for the final secret scan; returns the canary hits in it (also counted)."""
    CAPTURED.append((label, text))
    return secret_hits(text)


def secret_hits(text: str) -> int:
    return sum(text.count(c) for c in CANARIES)


def crash_marks(text: str) -> list[str]:
    """Lines showing a crash instead of a classified error (empty when clean)."""
    return [m.group(0) for m in _CRASH.finditer(text)]


def pgmi_cmd(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "pgmi.py"), *args]


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment without libpq variables (a run must name its server itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGMI_CACHE")}
    env["PGMI_NON_INTERACTIVE"] = "1"
    env.pop("PGMI_CONNECTION_STRING", None)
    env.pop("DATABASE_URL", None)
    env.update(extra or {})
    return env


def run_pgmi(args: list[str], env: dict[str, str], *, label: str, timeout: float = 120,
             cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run pgmi, record its output for the secret scan, and fail on a crash or a leaked canary."""
    started = time.monotonic()
    proc = subprocess.run(pgmi_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          check=False)
    proc.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    assert_clean(label, proc.stdout, proc.stderr)
    return proc


def assert_clean(label: str, stdout: str, stderr: str) -> None:
    hits = capture(label + " stdout", stdout) + capture(label + " stderr", stderr)
    crashes = crash_marks(stdout + stderr)
    FIGURES["tracebacks"] += len(crashes)
    assert not crashes, f"{label}: pgmi crashed instead of reporting an error:\n{stderr[-3000:]}"
    assert hits == 0, f"{label}: a canary secret reached pgmi's output"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("pgmi: error:")]


def hypothesis_settings(cases: int):
    """Hypothesis settings for `cases` examples: seeded by SEED (see `@seed`), no example database
    on disk, no per-example deadline (a loaded 2-core CI machine), no slow 'explain' phase."""
    from hypothesis import HealthCheck, Phase, settings

    return settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink))


PER_EXAMPLE = 10  # generated cases per Hypothesis example: its own overhead is ~10x a case's


def batched(test):
    """Run a `case_seed` test PER_EXAMPLE times per Hypothesis example, on derived seeds.

    Hypothesis' bookkeeping costs several ms per example on a loaded machine, the cases
    themselves well under one; batching is what makes 100k cases affordable. A failure
    names the derived seed, so `random.Random(seed)` rebuilds the exact case.
    """
    import functools

    @functools.wraps(test)
    def run(*args, case_seed: int, **kwargs):
        for sub in range(PER_EXAMPLE):
            derived = case_seed * PER_EXAMPLE + sub
            try:
                test(*args, case_seed=derived, **kwargs)
            except AssertionError as failure:
                note = f"failing case: case_seed={derived}"
                if hasattr(failure, "add_note"):  # Python 3.11+
                    failure.add_note(note)
                else:
                    failure.args = (*failure.args, note)
                raise

    return run
