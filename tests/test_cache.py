"""Tests of lthbook.cache: round trip, keys, corruption detection, atomic writes."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from lthbook import __version__
from lthbook.cache import (
    CacheCorruptionWarning,
    ResultCache,
    canonical_json,
    cell_key,
    default_cache_dir,
    resolve_cache,
    to_jsonable,
)

CONFIG = {"figure": "fig2", "K": 5, "d": 50, "N": 300, "r": 20, "distances": [0.5, 1.0], "seed": 0,
          "lthbook_version": __version__, "seed_key": {"r": 20, "chunk": 0}}
PAYLOAD = {"success": [3, 1], "trials": 4, "rel_error": [[1e-7, 0.3], [2e-7, float("nan")]], "eta": np.float64(9.5)}


def test_round_trip(tmp_path):
    cache = ResultCache(tmp_path)
    assert cache.get(CONFIG) is None
    path = cache.put(CONFIG, PAYLOAD)
    assert path.parent == tmp_path / "fig2" and path.name == cell_key(CONFIG) + ".json"
    assert CONFIG in cache
    got = cache.get(CONFIG)
    assert got == {"success": [3, 1], "trials": 4, "rel_error": [[1e-7, 0.3], [2e-7, None]], "eta": 9.5}
    # the stored file is strict JSON (no NaN) and floats round-trip exactly
    record = json.loads(path.read_text())
    assert record["payload"]["rel_error"][0][0] == 1e-7
    assert record["config"]["r"] == 20


def test_key_changes_with_any_part_of_the_configuration():
    base = cell_key(CONFIG)
    variants = [
        {**CONFIG, "r": 21}, {**CONFIG, "seed": 1}, {**CONFIG, "lthbook_version": "9.9.9"},
        {**CONFIG, "figure": "fig4"}, {**CONFIG, "distances": [0.5, 1.5]}, {**CONFIG, "N": 301},
        {**CONFIG, "seed_key": {"r": 20, "chunk": 1}}, {**CONFIG, "extra": None},
    ]
    keys = {cell_key(v) for v in variants}
    assert base not in keys and len(keys) == len(variants)
    # ... but not with the order of the keys or integer-valued numpy types
    shuffled = dict(reversed(list(CONFIG.items())))
    assert cell_key(shuffled) == base
    assert cell_key({**CONFIG, "N": np.int64(300)}) == base


def _corrupt_variants(text: str) -> list[str]:
    record = json.loads(text)
    tampered = dict(record, payload={**record["payload"], "trials": 5})
    wrong_key = dict(record, key="0" * 64)
    missing = {k: v for k, v in record.items() if k != "checksum"}
    return [text[: len(text) // 2], "", "not json", json.dumps(tampered), json.dumps(wrong_key),
            json.dumps(missing), "[1, 2]"]


def test_corrupted_entries_are_detected_and_recomputed(tmp_path):
    cache = ResultCache(tmp_path)
    path = cache.put(CONFIG, PAYLOAD)
    good = path.read_text()
    for bad in _corrupt_variants(good):
        path.write_text(bad)
        with pytest.warns(CacheCorruptionWarning, match="corrupted"):
            assert cache.get(CONFIG) is None
        cache.put(CONFIG, PAYLOAD)  # recompute and overwrite
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cache.get(CONFIG)["trials"] == 4


def test_partially_written_temporary_file_is_ignored(tmp_path):
    cache = ResultCache(tmp_path)
    target = cache.path_for(CONFIG)
    target.parent.mkdir(parents=True)
    # a writer killed mid-write leaves only its temporary file behind
    (target.parent / ".tmp-abc123.part").write_text(canonical_json({"format": 1, "key": target.stem})[:20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(CONFIG) is None
    cache.put(CONFIG, PAYLOAD)
    assert cache.get(CONFIG)["trials"] == 4
    assert cache.remove_temporary_files() == 1
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    cache = ResultCache(tmp_path)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.put(CONFIG, PAYLOAD)
    monkeypatch.undo()
    assert list((tmp_path / "fig2").iterdir()) == []
    assert cache.get(CONFIG) is None


def test_default_directory_and_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("LTHBOOK_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert ResultCache().directory == tmp_path / "env"
    assert ResultCache(tmp_path / "arg").directory == tmp_path / "arg"
    monkeypatch.delenv("LTHBOOK_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "lthbook"
    assert resolve_cache(None) is None and resolve_cache(False) is None
    assert resolve_cache(True, tmp_path).directory == tmp_path
    with pytest.raises(ValueError, match="cache"):
        resolve_cache("yes")
    with pytest.raises(ValueError, match="cache_dir"):
        ResultCache(42)


def test_to_jsonable_rejects_unknown_types():
    assert to_jsonable({"a": (1, np.array([1.5, np.inf]))}) == {"a": [1, [1.5, None]]}
    with pytest.raises(ValueError, match="type"):
        to_jsonable({"a": object()})
    with pytest.raises(ValueError, match="keys"):
        to_jsonable({1: 2})
    with pytest.raises(ValueError, match="config"):
        cell_key([1, 2])
