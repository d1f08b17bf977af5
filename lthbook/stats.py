"""Small fitting helpers used by the chapters' claim checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``y = slope * x + intercept`` with its coefficient of determination."""

    slope: float
    intercept: float
    r2: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.slope * np.asarray(x, dtype=float) + self.intercept


def linear_fit(x: np.ndarray, y: np.ndarray) -> LinearFit:
    """Fit ``y ≈ slope * x + intercept`` by least squares and report ``R^2``.

    Needs at least three points with distinct ``x`` so that ``R^2`` means something.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 3 or np.unique(x).size < 2:
        raise ValueError("linear_fit needs at least 3 points and 2 distinct x values")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / total if total > 0 else 1.0
    return LinearFit(float(slope), float(intercept), float(r2))


def loglog_fit(x: np.ndarray, y: np.ndarray) -> LinearFit:
    """Fit ``log y ≈ slope * log x + c``: the exponent of a power law ``y ∝ x^slope``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("loglog_fit needs positive x and y")
    return linear_fit(np.log(x), np.log(y))
