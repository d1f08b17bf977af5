"""Argument checks shared by the whole package.

Every public function validates its inputs with these helpers so that a bad
value fails early with a message naming the parameter and the allowed range.
One policy everywhere: a value of the wrong *type* raises ``TypeError``, a value of
the right type outside the allowed range raises ``ValueError``; both name the
parameter.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any, Mapping

import numpy as np
import torch


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f"{low} <= {name}" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{name} must satisfy {allowed}, got {name}={value}")
    return value


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite ``float`` inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "" if low is None else f"{low} {'<=' if low_inclusive else '<'} "
        right = "" if high is None else f" {'<=' if high_inclusive else '<'} {high}"
        raise ValueError(f"{name} must satisfy {left}{name}{right}, got {name}={value}")
    return value


def _as_list(name: str, values: Any, what: str) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of {what}, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must be a non-empty list of {what}, got {list(values)!r}")
    return list(values)


def check_int_list(name: str, values: Any, low: int, high: int | None = None) -> list[int]:
    """A non-empty, strictly increasing list of integers in ``[low, high]``."""
    out = [check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(_as_list(name, values, "integers"))]
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {out}")
    return out


def check_float_list(name: str, values: Any, low: float | None = None, high: float | None = None, *,
                     low_inclusive: bool = False) -> list[float]:
    """A non-empty, strictly increasing list of finite numbers above ``low`` (and at most ``high``)."""
    out = [check_float(f"{name}[{i}]", v, low, high, low_inclusive=low_inclusive)
           for i, v in enumerate(_as_list(name, values, "numbers"))]
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {out}")
    return out


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple | list) -> Any:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_finite(name: str, array: np.ndarray | torch.Tensor) -> None:
    """Raise if ``array`` holds a NaN or an infinity."""
    finite = torch.isfinite(array).all() if isinstance(array, torch.Tensor) else np.isfinite(array).all()
    if not bool(finite):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")


def check_shape(name: str, array: np.ndarray | torch.Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise unless ``array.shape`` matches ``shape`` (``None`` = any size)."""
    actual = tuple(array.shape)
    ok = len(actual) == len(shape) and all(s is None or s == a for s, a in zip(shape, actual))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {actual}")


def check_result(results: Any, name: str) -> Mapping[str, Any]:
    """``results`` if it is the dictionary :func:`lthbook.runner.run_figure` returned for figure ``name``."""
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be the dictionary returned by run_figure('{name}'), "
                        f"got {type(results).__name__}")
    if results.get("figure") != name:
        raise ValueError(f"results must be the dictionary returned by run_figure('{name}'), "
                         f"got figure={results.get('figure')!r}")
    return results


def resolve_device(device: str | torch.device | None, name: str = "device") -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``None`` (= cpu) into a device.

    Asking for CUDA on a machine without it is an error, never a silent fallback. The
    message quotes the request as the caller wrote it, under ``name``: the parameter
    (``device 'cuda' was requested ...``) or, for a command line, the flag
    (``name="--device"``: ``--device cuda was requested ...; use --device cpu``).
    """
    def spelled(value: object) -> str:  # "--device cuda" for a flag, "device 'cuda'" for a parameter
        text = value if isinstance(value, str) else str(value)
        return f"{name} {text}" if name.startswith("-") else f"{name} {text!r}"

    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be 'cpu' or 'cuda[:index]', got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be 'cpu' or 'cuda[:index]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        use = spelled("cpu") if name.startswith("-") else "'cpu'"
        raise ValueError(f"{spelled(device)} was requested but CUDA is not available on this machine "
                         f"(no GPU, or a torch build without CUDA); use {use}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{spelled(device)} was requested but this machine has {torch.cuda.device_count()} "
                         f"CUDA device(s) (indices 0..{torch.cuda.device_count() - 1})")
    return dev


def available_memory() -> tuple[int, str] | None:
    """``(bytes, where)``: the memory this process can still allocate, and where that number
    comes from -- the smallest of ``MemAvailable`` in ``/proc/meminfo`` (or the free pages of
    :func:`os.sysconf` elsewhere) and the room left under a cgroup memory limit (containers).
    ``None`` when the system says nothing."""
    found: list[tuple[int, str]] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            if pages > 0 and size > 0:
                found.append((pages * size, "free physical pages (os.sysconf)"))
        except (AttributeError, OSError, ValueError):
            pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file, encoding="ascii") as handle:
                limit = handle.read().strip()
            with open(usage_file, encoding="ascii") as handle:
                usage = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge number: no limit
            found.append((max(int(limit) - usage, 0), f"the container's memory limit ({limit_file})"))
        break
    return min(found) if found else None


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


#: Below this size (bytes) :func:`check_memory` does not look up the free memory at all.
MEMORY_CHECK_FLOOR = 256 * 2**20


def check_memory(what: str, nbytes: int, hint: str = "") -> None:
    """Raise a ``ValueError`` before allocating when ``what`` needs ``nbytes`` bytes (a Python
    int, computed without overflow) and more than the :func:`available_memory` is free,
    instead of being killed by the operating system's out-of-memory killer."""
    if nbytes < MEMORY_CHECK_FLOOR:
        return
    free = available_memory()
    if free is not None and nbytes > free[0]:
        raise ValueError(f"{what} would need about {_gib(nbytes)} of memory, but only {_gib(free[0])} is available "
                         f"({free[1]}){'; ' + hint if hint else ''}")


_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Accept ``"float64"``/``"float32"`` or the torch dtype itself."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy ``Generator`` from a seed, an existing generator, or ``None`` (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None:
        check_int("seed", seed, 0)
    return np.random.default_rng(seed)
