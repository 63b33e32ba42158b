"""bench/run.py's `fixed_cost_bound`: the ratio a small shape cannot go below, up to the run's noise, while
an empty deploy costs what it does (the shape's COPY+loop floor plus the empty deploy's excess over psql,
against psql -1)."""

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


EMPTY = {"excess_ms": 83.0}


def _bench(empty, psql1_s=(0.070, 0.068, 0.060), floor_s=(0.064, 0.050, 0.077)):
    samples = {("small", 25, method): [{"wall_s": x, "rss_kb": 1} for x in runs]
               for method, runs in (("psql-1", psql1_s), ("copyloop", floor_s)) if runs}
    return SimpleNamespace(samples=samples, empty=empty)


def test_the_bound_adds_the_empty_deploys_excess_to_the_floor(run):
    excess, ratio = run.fixed_cost_bound(_bench(EMPTY), 25)
    assert excess == pytest.approx(83.0)
    assert ratio == pytest.approx((0.064 + 0.083) / 0.068)  # medians: the floor's runs, then psql -1's


def test_the_excess_is_pgmis_empty_deploy_over_psqls(run):
    whole = {run.empty.PGMI + ", wall": 96.0, run.empty.PSQL + ", wall": 12.0, run.empty.PGMI + ", CPU": 50.0}
    ratio, excess = run.empty.versus_psql(whole)
    assert (ratio, excess) == (pytest.approx(8.0), pytest.approx(84.0))


@pytest.mark.parametrize("measured", [(), ("PGMI",), ("PSQL",)])
def test_no_excess_without_both_empty_runs(run, measured):
    whole = {getattr(run.empty, name) + ", wall": 50.0 for name in measured}
    assert run.empty.versus_psql(whole) == (None, None)


@pytest.mark.parametrize("empty", [None, {}, {"excess_ms": None}])
def test_no_bound_without_the_empty_deploys_excess(run, empty):
    assert run.fixed_cost_bound(_bench(empty), 25) is None


@pytest.mark.parametrize("missing", ["psql1_s", "floor_s"])
def test_no_bound_without_both_runs_of_the_shape(run, missing):
    assert run.fixed_cost_bound(_bench(EMPTY, **{missing: ()}), 25) is None


def test_no_bound_for_a_shape_not_measured(run):
    assert run.fixed_cost_bound(_bench(EMPTY), 160) is None
