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
    assert cache.remove_temporary_files() == 0  # fresh, writer unknown: maybe still being written
    assert cache.remove_temporary_files(everything=True) == 1
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


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x80 not utf-8 \xc3\x28",  # non-UTF-8 bytes: was a UnicodeDecodeError that stopped the run
    bytes(range(256)) * 4,  # binary garbage
    b'{"format": 1}',  # missing fields
    b"[" * 100000,  # nesting deep enough for a RecursionError in the JSON parser
    b"NaN",
])
def test_any_unreadable_entry_warns_with_its_path_and_is_replaced(tmp_path, content):
    cache = ResultCache(tmp_path)
    path = cache.put(CONFIG, PAYLOAD)
    path.write_bytes(content)
    with pytest.warns(CacheCorruptionWarning) as record:
        assert cache.get(CONFIG) is None
    assert str(path) in str(record[0].message)
    cache.put(CONFIG, PAYLOAD)  # the caller recomputes; the new entry replaces the bad one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(CONFIG)["trials"] == 4


def test_wrong_format_and_unreadable_file_are_treated_as_missing(tmp_path):
    cache = ResultCache(tmp_path)
    path = cache.put(CONFIG, PAYLOAD)
    record = json.loads(path.read_text())
    path.write_text(json.dumps(dict(record, format=99)))
    with pytest.warns(CacheCorruptionWarning, match="format"):
        assert cache.get(CONFIG) is None
    # a folder in the file's place cannot be read: a warning naming it, not an exception
    path.unlink()
    path.mkdir()
    with pytest.warns(CacheCorruptionWarning, match="could not be read"):
        assert cache.get(CONFIG) is None
    path.rmdir()
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root reads any file
        cache.put(CONFIG, PAYLOAD)
        path.chmod(0)
        try:
            with pytest.warns(CacheCorruptionWarning, match="could not be read"):
                assert cache.get(CONFIG) is None
            cache.put(CONFIG, PAYLOAD)  # os.replace needs no permission on the old file
        finally:
            path.chmod(0o644)
        assert cache.get(CONFIG)["trials"] == 4


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_are_removed_when_the_cache_is_opened(tmp_path):
    from lthbook import cache as cache_module

    folder = tmp_path / "fig2"
    folder.mkdir()
    host = cache_module._HOST
    dead = folder / f".tmp-{host}-{_dead_pid()}-abc.part"  # its writer was killed
    live = folder / f".tmp-{host}-{os.getpid()}-def.part"  # a writer still running (this process)
    other_host = folder / f".tmp-00000000-{_dead_pid()}-ghi.part"  # pid of another machine: age only
    legacy_fresh = folder / ".tmp-xyz.part"  # name without a pid: age only
    legacy_old = folder / ".tmp-old.part"
    for f in (dead, live, other_host, legacy_fresh, legacy_old):
        f.write_text("{")
    old = os.stat(legacy_old).st_mtime - 2 * cache_module.STALE_TEMPORARY_AGE_S
    os.utime(legacy_old, (old, old))
    assert len(ResultCache(tmp_path, clean=False).temporary_files()) == 5
    ResultCache(tmp_path)  # opening cleans what is stale
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, other_host.name, legacy_fresh.name])
    assert ResultCache(tmp_path).remove_temporary_files(everything=True) == 3
    assert list(folder.iterdir()) == []
    with pytest.raises(ValueError, match="max_age_s"):
        ResultCache(tmp_path).remove_temporary_files(max_age_s=-1)


def test_put_names_its_temporary_file_after_the_writer(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ResultCache(tmp_path).put(CONFIG, PAYLOAD)
    from lthbook import cache as cache_module

    assert seen[0].startswith(f".tmp-{cache_module._HOST}-{os.getpid()}-") and seen[0].endswith(".part")
