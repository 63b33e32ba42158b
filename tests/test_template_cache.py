"""The initdb template cache shared by concurrent runs (pgmilib/server/template_cache.py).

Each rule that keeps a concurrent run from failing has its own test: eviction leaves recently
used templates, removal renames a template away before deleting it, and a copy counts only if
the template kept its name and inode through it. The fallback to initdb on a real server is in
tests/test_cluster.py.
"""

from __future__ import annotations

import os
import shutil
import time

from pgmilib.server import cluster as cluster_mod
from pgmilib.server import template_cache


def _template(cache, name: str, age: float, size: int = 600_000):
    path = cache / f"pgmi-template-{name}"
    path.mkdir(parents=True)
    (path / "blob").write_bytes(b"x" * size)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_eviction_goes_least_recently_used_first_and_keeps_the_callers(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    old = template_cache.RECENT_USE_S
    for name, age in (("a", old + 300), ("b", old + 200), ("c", old + 100), ("d", old + 50)):
        _template(cache, name, age, size=400_000)
    monkeypatch.setenv("PGMI_CLUSTER_CACHE_MB", "1")
    template_cache.evict(str(cache), keep=str(cache / "pgmi-template-a"))
    # 1.6 MB over a 1 MB cap: the oldest after the kept one go until it fits; d, the newest, stays.
    assert sorted(os.listdir(cache)) == ["pgmi-template-a", "pgmi-template-d"]


def test_eviction_leaves_a_recently_used_template_even_above_the_cap(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _template(cache, "old", template_cache.RECENT_USE_S + 100)
    _template(cache, "in-use", template_cache.RECENT_USE_S - 100)  # another run may be copying it
    _template(cache, "mine", 0)
    monkeypatch.setenv("PGMI_CLUSTER_CACHE_MB", "1")
    template_cache.evict(str(cache), keep=str(cache / "pgmi-template-mine"))
    assert sorted(os.listdir(cache)) == ["pgmi-template-in-use", "pgmi-template-mine"]


def test_eviction_checks_the_use_again_just_before_removing(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _template(cache, "first", template_cache.RECENT_USE_S + 100)
    _template(cache, "mine", 0)
    monkeypatch.setenv("PGMI_CLUSTER_CACHE_MB", "1")
    real_size = template_cache._tree_size

    def size_then_used(path):  # another run uses `first` while eviction is still sizing entries
        template_cache.touch(str(first))
        return real_size(path)

    monkeypatch.setattr(template_cache, "_tree_size", size_then_used)
    template_cache.evict(str(cache), keep=str(cache / "pgmi-template-mine"))
    assert first.is_dir()


def test_eviction_sweeps_abandoned_staging_trees_only(tmp_path):
    cache = tmp_path / "cache"
    abandoned = _template(cache, "k.tmp-dead", template_cache._ABANDONED_S + 10, size=10)
    busy = _template(cache, "k.tmp-busy", 5, size=10)  # being published right now
    template_cache.evict(str(cache), keep=str(cache / "pgmi-template-k"))
    assert not abandoned.exists() and busy.is_dir()


def test_discard_renames_the_template_away_before_deleting_anything(tmp_path, monkeypatch):
    template = _template(tmp_path, "k", 0)
    seen = []
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        seen.append((str(path), template.exists()))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(template_cache.shutil, "rmtree", rmtree)
    assert template_cache.discard(str(template))
    assert len(seen) == 1
    doomed, name_still_there = seen[0]
    assert not name_still_there and doomed != str(template) and template_cache.STAGING_MARK in doomed
    assert os.listdir(tmp_path) == []
    assert not template_cache.discard(str(template))  # gone already: nothing to do, no error


def test_copy_template_copies_a_template_that_stayed(tmp_path):
    template = _template(tmp_path, "k", 0, size=10)
    target = tmp_path / "data"
    assert template_cache.copy_template(str(template), str(target), None)
    assert (target / "blob").read_bytes() == b"x" * 10


def test_copy_template_refuses_a_template_gone_before_the_copy(tmp_path):
    target = tmp_path / "data"
    assert not template_cache.copy_template(str(tmp_path / "pgmi-template-gone"), str(target), None)
    assert not target.exists()


def test_copy_template_refuses_a_template_removed_before_it_holds_the_lock(tmp_path, monkeypatch):
    template = _template(tmp_path, "k", 0, size=10)
    target = tmp_path / "data"
    real_flock = template_cache._flock

    def removed_and_republished_first(fd, *, exclusive):
        if not exclusive:  # the copy's lock; discard's own goes through as it is
            template_cache.discard(str(template))  # evicted by another run after the lookup ...
            _template(tmp_path, "k", 0, size=10)  # ... and published again by a third
        return real_flock(fd, exclusive=exclusive)

    monkeypatch.setattr(template_cache, "_flock", removed_and_republished_first)
    assert not template_cache.copy_template(str(template), str(target), None)
    assert not target.exists()


def test_discard_leaves_a_template_while_a_run_copies_it(tmp_path, monkeypatch):
    template = _template(tmp_path, "k", 0, size=10)
    target = tmp_path / "data"
    real_copy = template_cache.copy_tree
    tried = []

    def copy_while_another_run_evicts(source, dest, account):
        tried.append(template_cache.discard(source))  # another run's eviction, mid-copy
        real_copy(source, dest, account)

    monkeypatch.setattr(template_cache, "copy_tree", copy_while_another_run_evicts)
    assert template_cache.copy_template(str(template), str(target), None)
    assert tried == [False] and template.is_dir() and (target / "blob").read_bytes() == b"x" * 10
    assert template_cache.discard(str(template))  # once the copy is done, it can go


def test_copy_template_leaves_no_partial_copy_when_the_copy_fails(tmp_path, monkeypatch):
    template = _template(tmp_path, "k", 0, size=10)
    target = tmp_path / "data"

    def fails_halfway(source, dest, account):
        os.mkdir(dest)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(template_cache, "copy_tree", fails_halfway)
    assert not template_cache.copy_template(str(template), str(target), None)
    assert not target.exists() and template.is_dir()


def test_clear_templates_empties_the_cache_and_counts_templates_only(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _template(cache, "a", 0, size=10)
    _template(cache, "b", 0, size=10)
    _template(cache, "b.tmp-x", 0, size=10)
    monkeypatch.setenv("PGMI_CLUSTER_CACHE", str(cache))
    monkeypatch.setenv("PGMI_CLUSTER_TMP", str(tmp_path / "clusters"))
    assert cluster_mod.clear_templates() == 2
    assert os.listdir(cache) == []


def test_cache_place_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PGMI_CLUSTER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert template_cache.template_cache_dir() == str(tmp_path / "xdg/pgmi/clusters")
    monkeypatch.setenv("PGMI_CLUSTER_CACHE", str(tmp_path / "c"))
    assert template_cache.template_cache_dir() == str(tmp_path / "c")
