"""Argument checks shared by the whole package.

Every public function validates its inputs with these helpers so that a bad
value fails early with a message naming the parameter and the allowed range.
One policy everywhere: a value of the wrong *type* raises ``TypeError``, a value of
the right type outside the allowed range raises ``ValueError``; both name the
parameter.
"""

from __future__ import annotations

import math
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


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``None`` (= cpu) into a device.

    Asking for CUDA on a machine without it is an error, never a silent fallback.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here; use device='cpu'")
    return dev


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
