"""Experiments that look into where the data disagree with the paper.

* :func:`fig5_exponent_against_N` -- Figure 5's exponent of the final error in ``r`` is
  about 0.7, not the 1/2 of Eq. (9). A least-squares analogy predicts it: a model with
  ``p = r K`` active weights fitted to ``N`` noisy samples ends at a relative error
  ``∝ sqrt(p / (N - p))`` (for a Gaussian design, ``E||w_hat - w||^2 = sigma^2 p/(N - p - 1)``),
  whose log-log slope in ``r`` is ``1/2 + (1/2) p/(N - p)``: 1/2 only while ``rK << N``.
  The function reruns Figure 5's protocol at several ``N`` and compares the measured
  exponent with the one that curve predicts on the same ``r`` grid.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._validation import check_int, check_int_list
from .laws import by_id, loglog_slope, measure_fig5
from .runner import run_figure


def least_squares_error_curve(r: Sequence[float], K: int, N: int) -> np.ndarray:
    """``sqrt(p / (N - p))`` with ``p = r K``: the shape in ``r`` of the relative error of a least-squares
    fit with ``p`` weights to ``N`` noisy samples (NaN where ``p >= N``)."""
    p = np.asarray(r, dtype=float) * check_int("K", K, 1)
    N = check_int("N", N, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p < N, np.sqrt(p / (N - p)), np.nan)


def fig5_exponent_against_N(N_values: Sequence[int], scale: str | None = None, seed: int | None = None,
                            progress: bool = False, **run_kwargs: Any) -> list[dict[str, Any]]:
    """Figure 5 at each sample size ``N`` of ``N_values`` (everything else from the preset of
    ``scale``): the measured exponent of the error in ``r`` with its 95 % interval
    (:func:`lthbook.laws.measure_fig5`), the exponent of the least-squares curve
    :func:`least_squares_error_curve` on the same ``r``, and ``N/(r_max K)``. Cells are cached
    like every figure's (``run_kwargs`` go to :func:`lthbook.runner.run_figure`)."""
    rows = []
    for N in check_int_list("N_values", N_values, 1):
        res = run_figure("fig5", scale, seed, progress=progress, overrides={"N": N}, **run_kwargs)
        s = res["settings"]
        if max(s["r_values"]) * s["K"] >= N:
            raise ValueError(f"N_values: N = {N} is not above r K = {max(s['r_values']) * s['K']} for the largest r")
        law = by_id(measure_fig5(res))["fig5-error-exponent-r"]
        rows.append({"N": N, "measured": law["measured"], "ci95": law["ci95"], "verdict": law["verdict"],
                     "least_squares": loglog_slope(s["r_values"],
                                                   least_squares_error_curve(s["r_values"], s["K"], N)),
                     "N_over_rK": N / (max(s["r_values"]) * s["K"])})
    return rows


__all__ = ["least_squares_error_curve", "fig5_exponent_against_N"]
