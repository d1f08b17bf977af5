"""Fits and statistics used by the experiments and the claim checks: least-squares lines
(:func:`linear_fit`, :func:`loglog_fit`), the convergence rate ``nu`` of Theorem 2
(:func:`fit_rate`), Spearman's rank correlation and where a success-rate curve crosses a level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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


def fit_rate(iterations: np.ndarray, errors: np.ndarray, window: Sequence[float]) -> float:
    """Convergence rate ``nu`` of Theorem 2 (Eq. 9): ``exp`` of the least-squares slope of
    ``log(error)`` against the iteration, over the errors inside ``window = [low, high]``.

    Returns NaN when fewer than 5 points fall inside the window.
    """
    it = np.asarray(iterations, dtype=float)
    err = np.asarray(errors, dtype=float)
    low, high = window
    keep = (err > low) & (err < high) & np.isfinite(err)
    # keep only the first pass into the window: once a run has stopped its history repeats
    if keep.sum() < 5:
        return float("nan")
    idx = np.flatnonzero(keep)
    # drop the frozen tail of a stopped run: the trailing run of repeated values
    # (its first entry is the final error, which is kept); an early plateau is not a tail
    end = err.size
    while end > 1 and err[end - 1] == err[end - 2]:
        end -= 1
    idx = idx[idx < end]
    if idx.size < 5:
        return float("nan")
    slope = np.polyfit(it[idx], np.log(err[idx]), 1)[0]
    return float(np.exp(slope))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either side is constant."""
    from scipy.stats import spearmanr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def crossing(x: Sequence[float], rate: Sequence[float], level: float = 0.5, decreasing: bool = True
             ) -> tuple[float, str]:
    """Where a success-rate curve crosses ``level``, by linear interpolation.

    ``decreasing=True`` (Figure 2: success falls as the initial distance grows) scans
    upward from the smallest ``x`` for the first point below ``level`` and returns
    ``(x*, "ok")``; if even the first point is below, ``(x[0], "below")``; if no point
    is, ``(x[-1], "above")``. ``decreasing=False`` (Figure 4: success rises with ``N``)
    finds the first point at or above ``level`` the same way (``"below"``: never reached).
    """
    x = np.asarray(x, dtype=float)
    s = np.asarray(rate, dtype=float)
    if x.shape != s.shape or x.size < 2:
        raise ValueError("crossing needs x and rate of equal length >= 2")
    crossed = np.flatnonzero(s < level if decreasing else s >= level)
    never, at_start = ("above", "below") if decreasing else ("below", "above")
    if crossed.size == 0:
        return float(x[-1]), never
    k = int(crossed[0])
    if k == 0:
        return float(x[0]), at_start
    x0, x1, s0, s1 = x[k - 1], x[k], s[k - 1], s[k]
    return float(x0 + (level - s0) * (x1 - x0) / (s1 - s0)), "ok"
