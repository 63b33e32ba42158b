"""Which SHA-256 hashes a project's bytes (pgmilib/project/checksums.py `sha256`): the interpreter's
own for the first BUILTIN_SHA256_BYTES of a run, so that a small deploy never loads OpenSSL's
library through hashlib; hashlib's past that budget, once hashlib is loaded anyway, or where the
interpreter has no SHA-256 of its own. Every branch gives hashlib's digest.

The process-wide branches run in a bare interpreter (`-S`, the checkout on the path): the test
runner itself has hashlib loaded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pgmilib.project import checksums as PC

REPO = Path(__file__).resolve().parent.parent

# Hashes inputs of the given sizes in order and reports, after each, its hex digest and whether
# hashlib (and OpenSSL's _hashlib) is loaded. argv[2]: "no-builtin" hides the interpreter's own.
PROBE = """\
import json, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "no-builtin":
    sys.modules["_sha256"] = sys.modules["_sha2"] = None  # an import of either now fails
from pgmilib.project import checksums
steps = []
for size in json.loads(sys.argv[3]):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    steps.append([checksums.sha256(data).hexdigest(), "hashlib" in sys.modules or "_hashlib" in sys.modules])
print(json.dumps(steps))
"""


def _run(sizes: list[int], mode: str = "") -> list[list]:
    done = subprocess.run([sys.executable, "-S", "-c", PROBE, str(REPO), mode or "-", json.dumps(sizes)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _expected(size: int) -> str:
    return hashlib.sha256(bytes(range(256)) * (size // 256) + bytes(size % 256)).hexdigest()


def test_a_small_project_hashes_without_loading_hashlib_then_switches_past_the_budget():
    budget = PC.BUILTIN_SHA256_BYTES
    sizes = [0, 300, 70_000, budget - 70_300, 1, 5]  # the fourth spends the budget exactly
    steps = _run(sizes)
    assert [digest for digest, _ in steps] == [_expected(size) for size in sizes]
    assert [loaded for _, loaded in steps] == [False, False, False, False, True, True]


def test_an_input_bigger_than_the_budget_goes_to_hashlib_at_once():
    sizes = [PC.BUILTIN_SHA256_BYTES + 1, 10]
    steps = _run(sizes)
    assert steps == [[_expected(size), True] for size in sizes]


def test_an_interpreter_without_its_own_sha256_uses_hashlib():
    sizes = [10, 300]
    steps = _run(sizes, "no-builtin")
    assert steps == [[_expected(size), True] for size in sizes]


def test_once_hashlib_is_loaded_it_hashes_everything():
    assert "hashlib" in sys.modules  # the test runner's
    assert type(PC.sha256(b"x")) is type(hashlib.sha256(b"x"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000))
def test_the_interpreters_own_sha256_is_hashlibs_sha256(data):
    builtin = PC._interpreter_sha256()
    assert builtin is not None  # every interpreter the tests run on has one
    assert builtin(data).hexdigest() == hashlib.sha256(data).hexdigest()
