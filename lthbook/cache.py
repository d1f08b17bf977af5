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
never read (its name does not end in ``<key>.json``) and is removed the next time the
cache is opened (its name ``.tmp-<host>-<pid>-<random>.part`` names its writer; see
:meth:`ResultCache.remove_temporary_files`). A file that cannot be read, is not UTF-8
or not valid JSON, lacks a field, or whose checksum or key does not match is reported
with a :class:`CacheCorruptionWarning` naming it and treated as missing: the cell is
recomputed and the file overwritten.

Location. ``cache_dir`` when given, else ``$LTHBOOK_CACHE_DIR`` when set, else
``~/.cache/lthbook``. Files live in a sub-folder per figure.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

ENV_VAR = "LTHBOOK_CACHE_DIR"
FORMAT = 1
_TMP_PREFIX = ".tmp-"
#: A temporary file older than this (seconds) is left over by a dead writer: a live one
#: writes its few kilobytes and renames the file within milliseconds.
STALE_TEMPORARY_AGE_S = 600.0
#: Tag of this machine in temporary file names, so that only a writer on this machine is
#: looked up by its process id (a shared cache folder may be written from several machines).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


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


_FIELDS = frozenset({"format", "key", "config", "payload", "checksum"})


def _parse_record(data: bytes, stem: str, config: Mapping[str, Any]) -> tuple[str | None, Any]:
    """``(problem, record)``: ``problem`` is ``None`` when ``data`` is a valid cache file for
    ``config`` stored under ``<stem>.json``, else says what is wrong (and ``record`` is ``None``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc})", None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return f"invalid JSON ({exc})", None
    if not isinstance(record, dict):
        return "not a JSON object", None
    if not _FIELDS <= set(record):
        return f"missing fields {sorted(_FIELDS - set(record))}", None
    if record["format"] != FORMAT:
        return f"unsupported format {record['format']!r} (expected {FORMAT})", None
    if record["key"] != stem or record["key"] != cell_key(config):
        return "key does not match its configuration", None
    try:
        matches = record["checksum"] == _checksum(record["config"], record["payload"])
    except (ValueError, TypeError, RecursionError) as exc:
        return f"payload cannot be checked ({exc})", None
    if not matches:
        return "checksum mismatch", None
    return None, record


def write_text_atomically(path: Path, text: str, prefix: str | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (``prefix`` names
    it; default ``.<name>.``) that is flushed to disk and renamed over ``path``: a reader sees the
    old file or the new one, never half of one, and a failure leaves ``path`` as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=".part", dir=path.parent)
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
    clean:
        Remove the stale temporary files of writers that died mid-write (see
        :meth:`remove_temporary_files`) when the cache is opened. Never raises.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, clean: bool = True) -> None:
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ValueError(f"cache_dir must be a path or None, got {cache_dir!r}")
        if not isinstance(clean, bool):
            raise ValueError(f"clean must be True or False, got {clean!r}")
        self.directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        if clean:
            try:
                self.remove_temporary_files()
            except OSError:  # an unreadable folder is reported by get/put, not here
                pass

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r})"

    def path_for(self, config: Mapping[str, Any]) -> Path:
        """Where the cell with this configuration is (or would be) stored."""
        sub = str(config.get("figure", "misc")) if isinstance(config, Mapping) else "misc"
        if not sub.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"config['figure'] must be alphanumeric (with - or _), got {sub!r}")
        return self.directory / sub / f"{cell_key(config)}.json"

    def get(self, config: Mapping[str, Any]) -> Any | None:
        """The stored payload of this cell, or ``None`` if absent or unreadable.

        Any entry that cannot be used -- unreadable (permissions, a folder in its place),
        not UTF-8, not JSON, not the expected structure, a key or checksum that does not
        match -- is reported with a :class:`CacheCorruptionWarning` naming its path and
        treated as missing, so the caller recomputes the cell and :meth:`put` replaces it.
        """
        path = self.path_for(config)
        problem = None
        record: Any = None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            problem = f"could not be read ({exc})"
        else:
            problem, record = _parse_record(data, path.stem, config)
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
        write_text_atomically(path, text, prefix=f"{_TMP_PREFIX}{_HOST}-{os.getpid()}-")
        return path

    def __contains__(self, config: Mapping[str, Any]) -> bool:
        return self.path_for(config).exists()

    def temporary_files(self) -> list[Path]:
        """The temporary files (``.tmp-*.part``) in the cache's figure folders, live or stale."""
        if not self.directory.is_dir():
            return []
        found = list(self.directory.glob(f"{_TMP_PREFIX}*.part"))
        found += self.directory.glob(f"*/{_TMP_PREFIX}*.part")
        return sorted(found)

    def remove_temporary_files(self, everything: bool = False,
                               max_age_s: float = STALE_TEMPORARY_AGE_S) -> int:
        """Delete temporary files left by killed writers; returns how many were removed.

        A temporary file is stale when its writer (the process id in its name, on this
        machine) no longer runs, or when it is older than ``max_age_s`` seconds (a live
        writer renames its file within milliseconds). Only stale files are removed, so a
        run writing into the same folder is not disturbed; ``everything=True`` removes
        every temporary file (safe only when no other run uses the folder). Called by
        :class:`ResultCache` itself when the cache is opened.
        """
        if not isinstance(everything, bool):
            raise ValueError(f"everything must be True or False, got {everything!r}")
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, (int, float)) or not max_age_s >= 0:
            raise ValueError(f"max_age_s must be a number >= 0, got {max_age_s!r}")
        count = 0
        now = time.time()
        for tmp in self.temporary_files():
            try:
                stale = everything or _writer_gone(tmp.name) or now - tmp.stat().st_mtime > max_age_s
                if stale:
                    tmp.unlink()
                    count += 1
            except OSError:  # removed meanwhile (by its writer's rename) or not ours to remove
                pass
        return count


def _writer_gone(name: str) -> bool:
    """Whether the temporary file ``name`` (``.tmp-<host>-<pid>-<random>.part``) was written by
    a process of this machine that has ended. ``False`` when unknown (old names, other machines,
    systems without ``os.kill(pid, 0)``)."""
    parts = name[len(_TMP_PREFIX):].split("-")
    if os.name != "posix" or len(parts) < 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


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
