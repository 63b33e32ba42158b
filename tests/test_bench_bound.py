"""bench/run.py's `fixed_cost_bound`: the ratio a small shape cannot go below while an empty deploy costs
what it does (the note behind "not reachable with this design" in bench/ANALYSIS.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run_for_tests", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:
        spec.loader.exec_module(module)
    finally:  # run.py puts bench/ on sys.path and imports empty, gen and peers by those plain names
        sys.path[:] = saved_path
        for name in {"empty", "gen", "peers"} - saved_modules:
            sys.modules.pop(name, None)
    return module


def _bench(psql1_s, empty_whole):
    samples = {("small", 25, "psql-1"): [{"wall_s": x, "rss_kb": 1} for x in psql1_s]}
    return SimpleNamespace(samples=samples, empty=None if empty_whole is None else {"whole": empty_whole})


def test_the_bound_adds_the_empty_deploys_excess_to_psqls_time(run):
    b = _bench([0.070, 0.064, 0.060], {"pgmi deploy (SELECT 1;), wall": 96.0, "psql -X -c 'SELECT 1', wall": 13.0})
    excess, ratio = run.fixed_cost_bound(b, 25)
    assert excess == pytest.approx(83.0)
    assert ratio == pytest.approx((0.064 + 0.083) / 0.064)  # the median of psql -1's runs


@pytest.mark.parametrize("whole", [None, {}, {"pgmi deploy (SELECT 1;), wall": 96.0},
                                   {"psql -X -c 'SELECT 1', wall": 13.0}])
def test_no_bound_without_both_empty_runs(run, whole):
    assert run.fixed_cost_bound(_bench([0.064], whole), 25) is None


def test_no_bound_without_psqls_run_of_the_shape(run):
    b = _bench([0.064], {"pgmi deploy (SELECT 1;), wall": 96.0, "psql -X -c 'SELECT 1', wall": 13.0})
    assert run.fixed_cost_bound(b, 160) is None
