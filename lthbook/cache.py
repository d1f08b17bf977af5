"""On-disk cache of experiment cells, so that long runs resume where they stopped.

The figures of §5 are split into *cells* (:mod:`lthbook.cells`): one call of
Algorithm 1 on a batch of trials (for example one student width ``r`` and one chunk
of trials in Figure 2), or one level of an IMP run (Figures 6-7). Each finished cell is written to
its own JSON file at once, so an interrupted run loses no finished cell, and a
re-run reads the finished cells back instead of recomputing them.

Key. A cell's file name is the SHA-256 of the canonical JSON (sorted keys, no
spaces) of its full configuration: the figure name, every parameter the cell's
computation reads (``K``, ``r``, ``d``, ``N``, ``eta``, ``beta``, trial counts,
iteration cap, ...), the seed and ``lthbook.__version__``. Change any of them and
the key changes, so a stale result is never served.

File. ``<key>.json`` holds ``{"format", "key", "config", "payload", "checksum"}``,
where ``checksum`` is the SHA-256 of the canonical JSON of ``{"config", "payload"}``.
It is written to a temporary file in the same directory and moved into place with
:func:`os.replace` (atomic on POSIX and Windows), so a reader sees either the old
file, the complete new file, or nothing; a temporary file left by a killed run is
never read (its name does not end in ``<key>.json``). A file that is not valid JSON,
lacks a field, or whose checksum or key does not match is reported with
:func:`warnings.warn` and treated as missing: the cell is recomputed and the file
overwritten.

Location. ``cache_dir`` when given, else ``$LTHBOOK_CACHE_DIR`` when set, else
``~/.cache/lthbook``. Files live in a sub-folder per figure.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

ENV_VAR = "LTHBOOK_CACHE_DIR"
FORMAT = 1
_TMP_PREFIX = ".tmp-"


class CacheCorruptionWarning(UserWarning):
    """A cache file was unreadable or failed its checksum; the cell is recomputed."""


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and paths to plain JSON types.

    Non-finite floats (NaN, +-inf) become ``None`` so the output is strict JSON
    (RFC 8259 has no NaN). Dictionary keys must already be strings.
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"JSON object keys must be strings, got {k!r}")
            out[k] = to_jsonable(v)
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"cannot store a value of type {type(value).__name__} in the cache: {value!r}")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no whitespace, strict (no NaN)."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def cell_key(config: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON of a cell's full configuration."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping, got {type(config).__name__}")
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _checksum(config: Any, payload: Any) -> str:
    return hashlib.sha256(canonical_json({"config": config, "payload": payload}).encode()).hexdigest()


def default_cache_dir() -> Path:
    """``$LTHBOOK_CACHE_DIR`` if set (and non-empty), else ``~/.cache/lthbook``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lthbook"


class ResultCache:
    """A directory of per-cell result files (see the module docstring for the format).

    Parameters
    ----------
    cache_dir:
        Directory to use; ``None`` means :func:`default_cache_dir`. Created on first write.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ValueError(f"cache_dir must be a path or None, got {cache_dir!r}")
        self.directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r})"

    def path_for(self, config: Mapping[str, Any]) -> Path:
        """Where the cell with this configuration is (or would be) stored."""
        sub = str(config.get("figure", "misc")) if isinstance(config, Mapping) else "misc"
        if not sub.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"config['figure'] must be alphanumeric (with - or _), got {sub!r}")
        return self.directory / sub / f"{cell_key(config)}.json"

    def get(self, config: Mapping[str, Any]) -> Any | None:
        """The stored payload of this cell, or ``None`` if absent or corrupted (with a warning)."""
        path = self.path_for(config)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            warnings.warn(f"cache file {path} could not be read ({exc}); recomputing the cell",
                          CacheCorruptionWarning, stacklevel=2)
            return None
        problem = None
        try:
            record = json.loads(text)
            if not isinstance(record, dict):
                problem = "not a JSON object"
            elif not {"format", "key", "config", "payload", "checksum"} <= set(record):
                problem = "missing fields"
            elif record["key"] != path.stem or record["key"] != cell_key(config):
                problem = "key does not match its configuration"
            elif record["checksum"] != _checksum(record["config"], record["payload"]):
                problem = "checksum mismatch"
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            problem = f"invalid JSON ({exc})"
        if problem is not None:
            warnings.warn(f"cache file {path} is corrupted: {problem}; recomputing the cell",
                          CacheCorruptionWarning, stacklevel=2)
            return None
        return record["payload"]

    def put(self, config: Mapping[str, Any], payload: Any) -> Path:
        """Store ``payload`` (JSON-serialisable after :func:`to_jsonable`) for this cell, atomically."""
        path = self.path_for(config)
        config_j = to_jsonable(config)
        payload_j = to_jsonable(payload)
        record = {"format": FORMAT, "key": path.stem, "config": config_j, "payload": payload_j,
                  "checksum": _checksum(config_j, payload_j)}
        text = json.dumps(record, sort_keys=True, indent=1, allow_nan=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path

    def __contains__(self, config: Mapping[str, Any]) -> bool:
        return self.path_for(config).exists()

    def remove_temporary_files(self) -> int:
        """Delete temporary files left by killed writers; returns how many were removed."""
        count = 0
        if self.directory.exists():
            for tmp in self.directory.rglob(f"{_TMP_PREFIX}*.part"):
                try:
                    tmp.unlink()
                    count += 1
                except OSError:
                    pass
        return count


def resolve_cache(cache: bool | None | ResultCache = True, cache_dir: str | os.PathLike | None = None
                  ) -> ResultCache | None:
    """The cache an experiment should use: ``None`` when ``cache`` is ``None``/``False``.

    ``cache=True`` uses ``cache_dir`` (or the default location); a :class:`ResultCache`
    instance is returned as is.
    """
    if isinstance(cache, ResultCache):
        return cache
    if cache is None or cache is False:
        return None
    if cache is True:
        return ResultCache(cache_dir)
    raise ValueError(f"cache must be True, False, None or a ResultCache, got {cache!r}")
