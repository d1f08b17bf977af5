"""The paper's claims, checked on the numbers of a figure (Figures 2-7).

Each ``check_figN(results)`` takes the dictionary that :func:`lthbook.runner.run_figure`
returns for that figure, asserts the paper's claim on it and returns the fitted
quantities; a claim the numbers do not show raises :class:`ClaimError` (an
``AssertionError``), a grid that cannot test the claim raises ``ValueError``.
The helpers :func:`success_radius` (Figure 2) and :func:`sample_threshold` (Figure 4)
turn success rates into the radius and the sample size that the claims are about.
Fits come from :mod:`lthbook.stats`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ._validation import check_result
from .agd import SUCCESS_TOL
from .stats import crossing, linear_fit, loglog_fit, spearman

class ClaimError(AssertionError):
    """The numbers of a figure do not show the paper's claim (raised by ``check_figN``)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ClaimError(message)


def fig2_success(results: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Figure 2's success rates on the whole distance axis: ``(distances, rate)``.

    ``distances`` is the grid ``axes["distance"]`` followed by the ``far_distances`` block
    (``raw["far"]``, present when the settings widen the grid for some ``r``); ``rate`` has
    shape ``(len(r), len(distances))`` and is NaN where a distance was not run for that ``r``."""
    check_result(results, "fig2")
    dist = np.asarray(results["axes"]["distance"], dtype=float)
    rate = np.asarray(results["raw"]["success"], dtype=float) / np.asarray(results["raw"]["trials"], dtype=float)
    far = results["raw"].get("far")
    if not far:
        return dist, rate
    far_dist = np.asarray(far["distance"], dtype=float)
    extra = np.full((rate.shape[0], far_dist.size), np.nan)
    rows = {int(r): i for i, r in enumerate(results["axes"]["r"])}
    for r, succ, trials in zip(far["r"], far["success"], far["trials"]):
        extra[rows[int(r)]] = np.asarray(succ, dtype=float) / np.asarray(trials, dtype=float)
    return np.concatenate([dist, far_dist]), np.concatenate([rate, extra], axis=1)


def success_radius(results: Mapping[str, Any], level: float = 0.5) -> dict[str, Any]:
    """Figure 2's radius per ``r``: the relative initial distance at which the success
    rate falls through ``level`` (:func:`lthbook.stats.crossing`, linear interpolation between
    the distances run for that ``r``, the far block included: :func:`fig2_success`).

    ``censored[i]`` is True when the boundary of row ``i`` is not inside the distances run:
    the rate is still at least ``level`` at the largest one (status ``"above"``: the radius
    is only known to exceed it) or already below it at the smallest (``"below"``). Such a
    row bounds the radius but does not measure it."""
    dist, rate = fig2_success(results)
    radius, status = [], []
    for row in rate:
        ran = np.isfinite(row)
        x, st = crossing(dist[ran], row[ran], level)
        radius.append(x)
        status.append(st)
    return {"radius": radius, "status": status, "distance": dist.tolist(),
            "success_rate": [[None if not np.isfinite(v) else float(v) for v in row] for row in rate],
            "censored": [st != "ok" for st in status]}


def check_fig2(results: Mapping[str, Any], max_spearman: float = -0.8) -> dict[str, Any]:
    """Claim of Figure 2 (Theorem 1, Eq. 6): the success radius shrinks as ``r`` grows.

    The radius per ``r`` is the distance where the success rate falls through 50 %
    (:func:`success_radius`). Asserts what every scale must show: no run diverged; the
    success map is not trivial (some cell has success rate >= 0.5 and some < 0.5); the radius
    falls with ``r`` (Spearman correlation with ``sqrt(r)`` at most ``max_spearman``, over every
    ``r``: a censored radius is a bound on the right side); the least-squares line of radius
    against ``sqrt(r)``, fitted on the ``r`` whose boundary lies inside the distances run
    (``fitted``; fewer than 3 raise ``ValueError``: the grid cannot test the claim), has a
    negative slope. Whether the fall is *linear* in ``sqrt(r)``, as the paper says, is a law,
    not asserted here: :func:`lthbook.laws.measure_fig2` fits it with a confidence interval and a
    verdict. Returns the radii, which were fitted, the line (slope, intercept, ``R^2``),
    Spearman, and per ``r`` how many runs of the main grid failed far from ``W*`` (final
    error >= 1e-2: stuck at a spurious point) or near it (still converging at the cap).
    """
    check_result(results, "fig2")
    rad = success_radius(results)
    sqrt_r = np.asarray(results["axes"]["sqrt_r"], dtype=float)
    radius = np.asarray(rad["radius"])
    rate = np.asarray([[np.nan if v is None else v for v in row] for row in rad["success_rate"]], dtype=float)
    diverged = int(np.sum(results["raw"]["diverged"])) + int(np.sum((results["raw"].get("far") or {}).get("diverged", [])))
    _require(diverged == 0, "some runs diverged (step size too large)")
    _require(np.nanmax(rate) >= 0.5 and np.nanmin(rate) < 0.5,
             "the success map is trivial (all cells succeed or all fail): the grid does not show a boundary")
    inside = ~np.asarray(rad["censored"], dtype=bool)
    if int(inside.sum()) < 3:
        raise ValueError(f"only {int(inside.sum())} r values have their success boundary inside the distance grid "
                         f"(3 needed to fit a line); widen the distances (far_distances) or move the r values")
    fit = linear_fit(sqrt_r[inside], radius[inside])
    rho = spearman(sqrt_r, radius)
    out = {"sqrt_r": sqrt_r.tolist(), "radius": radius.tolist(), "radius_status": rad["status"],
           "fitted": inside.tolist(), "slope": fit.slope, "intercept": fit.intercept, "r2": fit.r2, "spearman": rho}
    if "rel_error" in results["raw"]:
        # how the failed runs failed (diagnostic, not asserted): final error >= 1e-2 means stuck
        # far from W* (a spurious stationary region); below that, still converging at the cap
        tol = results["settings"].get("success_tol", SUCCESS_TOL)
        far, near = [], []
        for errs in results["raw"]["rel_error"]:
            e = np.array([[np.inf if v is None else v for v in row] for row in errs], dtype=float)
            far.append(int(np.sum(e >= 1e-2)))
            near.append(int(np.sum((e >= tol) & (e < 1e-2))))
        out["failures_far"] = far
        out["failures_near"] = near
    _require(rho <= max_spearman, f"the radius does not shrink with r: Spearman(sqrt r, radius) = {rho:.2f} > "
                                  f"{max_spearman}; radii {np.round(radius, 3).tolist()}")
    _require(fit.slope < 0, f"the radius does not fall with sqrt(r): slope {fit.slope:.3g} >= 0")
    return out


def check_fig3(results: Mapping[str, Any], min_r2: float = 0.8, min_spearman: float = 0.8) -> dict[str, Any]:
    """Claims of Figure 3 (Theorem 2): ``nu`` grows with ``r`` (≈ linear in ``sqrt(r)``) for AGD
    and GD, and AGD's ``nu`` is below GD's at every ``r``.

    Asserts: no divergence; every trial gave a rate (enough points in ``fit_window``);
    mean ``nu`` of AGD < mean ``nu`` of GD at every ``r`` (and in every run: the AGD and GD
    runs share data and ``W(0)``); for each algorithm the mean ``nu`` rises with ``r`` (Spearman >=
    ``min_spearman``, ``nu(r_max) > nu(r_min)``) and its line against ``sqrt(r)`` has a
    positive slope with ``R^2 >= min_r2``. Returns the means and fits.
    """
    check_result(results, "fig3")
    sqrt_r = np.asarray(results["axes"]["sqrt_r"], dtype=float)
    nu = {alg: np.asarray(results["raw"]["nu"][alg], dtype=float) for alg in ("AGD", "GD")}
    out: dict[str, Any] = {"sqrt_r": sqrt_r.tolist()}
    for alg in ("AGD", "GD"):
        _require(int(np.sum(results["raw"]["diverged"][alg])) == 0, f"{alg} diverged for some r")
        _require(bool(np.all(np.isfinite(nu[alg]))),
                 f"{alg}: some trials did not reach the fit window (raise max_iter or widen fit_window)")
    for alg in ("AGD", "GD"):
        mean = nu[alg].mean(axis=1)
        fit = linear_fit(sqrt_r, mean)
        rho = spearman(sqrt_r, mean)
        out[alg] = {"nu_mean": mean.tolist(), "nu_std": nu[alg].std(axis=1).tolist(), "slope": fit.slope,
                    "intercept": fit.intercept, "r2": fit.r2, "spearman": rho}
        _require(rho >= min_spearman, f"{alg}: nu does not grow with r (Spearman {rho:.2f} < {min_spearman}); "
                                      f"nu = {np.round(mean, 4).tolist()}")
        _require(mean[-1] > mean[0], f"{alg}: nu at the largest r is not above nu at the smallest r")
        _require(fit.slope > 0, f"{alg}: slope of nu against sqrt(r) is {fit.slope:.3g} <= 0")
        _require(fit.r2 >= min_r2, f"{alg}: nu against sqrt(r) has R^2 = {fit.r2:.3f} < {min_r2}")
    gap = nu["GD"].mean(axis=1) - nu["AGD"].mean(axis=1)
    out["gd_minus_agd"] = gap.tolist()
    _require(bool(np.all(gap > 0)), f"AGD is not faster than GD at every r: nu_GD - nu_AGD = {np.round(gap, 4).tolist()}")
    _require(bool(np.all(nu["AGD"] < nu["GD"])), "AGD is not faster than GD in every run")
    return out


def sample_threshold(results: Mapping[str, Any], level: float = 0.5) -> dict[str, Any]:
    """Figure 4's ``N_50(r)``: the sample size at which the success rate first reaches
    ``level``, by linear interpolation along ``N`` (:func:`lthbook.stats.crossing`)."""
    check_result(results, "fig4")
    N = np.asarray(results["axes"]["N"], dtype=float)
    rate = np.asarray(results["raw"]["success"], dtype=float) / np.asarray(results["raw"]["trials"], dtype=float)
    n50, status = [], []
    for row in rate:
        x, st = crossing(N, row, level, decreasing=False)
        n50.append(x)
        status.append(st)
    return {"N50": n50, "status": status, "success_rate": rate.tolist()}


def check_fig4(results: Mapping[str, Any], min_r2: float = 0.9,
               exponent_range: tuple[float, float] = (0.7, 1.3)) -> dict[str, Any]:
    """Claim of Figure 4 (Eq. 8): the sample size needed for success is linear in ``r``.

    Asserts: ``N_50(r)`` (:func:`sample_threshold`) lies strictly inside the ``N`` grid for
    every ``r``; it increases with ``r`` (Spearman >= 0.9); the line ``N_50`` against ``r``
    has a positive slope and ``R^2 >= min_r2``; and the power-law exponent of ``N_50``
    against ``r`` (log-log slope) lies in ``exponent_range`` (a quadratic growth, which a
    straight line can still fit with a high ``R^2`` over a short range, gives about 2; a
    quadratic with a large offset is not rejected by either test).
    Also returns ``N_50 / (r K)``, the samples per unknown weight at the threshold.
    """
    check_result(results, "fig4")
    th = sample_threshold(results)
    r = np.asarray(results["axes"]["r"], dtype=float)
    n50 = np.asarray(th["N50"])
    K = results["settings"]["K"]
    out = {"r": r.tolist(), "N50": n50.tolist(), "status": th["status"], "N50_per_rK": (n50 / (r * K)).tolist()}
    _require(all(st == "ok" for st in th["status"]),
             f"N_50 is outside the N grid for some r (status {th['status']}): extend N_values")
    rho = spearman(r, n50)
    fit = linear_fit(r, n50)
    exponent = loglog_fit(r, n50).slope
    out.update({"slope": fit.slope, "intercept": fit.intercept, "r2": fit.r2, "spearman": rho,
                "exponent": exponent})
    _require(rho >= 0.9, f"N_50 does not increase with r: Spearman {rho:.2f}; N_50 = {np.round(n50, 1).tolist()}")
    _require(fit.slope > 0, f"slope of N_50 against r is {fit.slope:.3g} <= 0")
    _require(fit.r2 >= min_r2, f"N_50 against r is not linear enough: R^2 = {fit.r2:.3f} < {min_r2}")
    _require(exponent_range[0] <= exponent <= exponent_range[1],
             f"N_50 is not linear in r: power-law exponent {exponent:.2f} outside {list(exponent_range)}")
    return out


def check_fig5(results: Mapping[str, Any], min_r2: float = 0.9, proportional_tol: float = 0.15,
               plateau_tol: float = 0.02) -> dict[str, Any]:
    """Claims of Figure 5 (Eq. 9): at each noise level the final relative error is linear in
    ``sqrt(r)``, and it is proportional to the noise level ``sigma/E_y``.

    Asserts: no divergence; every run's error settled (``|plateau - 1| <= plateau_tol``);
    for each level the line of mean error against ``sqrt(r)`` has a positive slope and
    ``R^2 >= min_r2``; for each ``r`` the log-log slope of mean error against noise level
    is within ``proportional_tol`` of 1. Returns the fits and the errors divided by the level.
    """
    check_result(results, "fig5")
    sqrt_r = np.asarray(results["axes"]["sqrt_r"], dtype=float)
    levels = np.asarray(results["axes"]["noise_levels"], dtype=float)
    mean = np.asarray(results["raw"]["mean_rel_error"], dtype=float)  # (L, R)
    plateau = np.asarray(results["raw"]["plateau"], dtype=float)
    _require(int(np.sum(results["raw"]["diverged"])) == 0, "some runs diverged")
    worst = float(np.max(np.abs(plateau - 1)))
    _require(worst <= plateau_tol, f"final errors have not settled: max |err(T)/err(0.9T) - 1| = {worst:.3g} > "
                                   f"{plateau_tol} (raise max_iter)")
    out: dict[str, Any] = {"sqrt_r": sqrt_r.tolist(), "noise_levels": levels.tolist(),
                           "error_over_level": (mean / levels[:, None]).tolist(), "max_plateau_deviation": worst}
    fits = []
    for l, level in enumerate(levels):
        fit = linear_fit(sqrt_r, mean[l])
        # for comparison only (not asserted): R^2 of the same errors against r itself
        fits.append({"noise_level": float(level), "slope": fit.slope, "intercept": fit.intercept, "r2": fit.r2,
                     "r2_against_r": linear_fit(sqrt_r**2, mean[l]).r2})
        _require(fit.slope > 0, f"noise level {level}: error does not grow with sqrt(r) (slope {fit.slope:.3g})")
        _require(fit.r2 >= min_r2, f"noise level {level}: error against sqrt(r) has R^2 = {fit.r2:.3f} < {min_r2}")
    out["fits"] = fits
    exps = []
    for i in range(len(sqrt_r)):
        slope = float(np.polyfit(np.log(levels), np.log(mean[:, i]), 1)[0])
        exps.append(slope)
    out["level_exponent"] = exps
    bad = [e for e in exps if abs(e - 1) > proportional_tol]
    _require(not bad, f"error is not proportional to the noise level: log-log slopes {np.round(exps, 3).tolist()} "
                      f"(allowed 1 +- {proportional_tol})")
    return out


def check_invariants(results: Mapping[str, Any]) -> dict[str, Any]:
    """Assert the IMP invariants recorded at every level: pruned weights exactly zero, no
    unpruned weight frozen, rewind bitwise exact."""
    inv = results["raw"]["invariants"]
    _require(inv["pruned_nonzero"] == 0, f"{inv['pruned_nonzero']} pruned weights became non-zero in training")
    _require(inv["frozen"] == 0, f"{inv['frozen']} unpruned weights did not train ({inv['frozen_negative']} of "
                                 f"them negative)")
    _require(not inv["rewind_mismatch"], f"rewind did not restore the initialization of {inv['rewind_mismatch']}")
    return inv


def check_fig6(results: Mapping[str, Any], window: tuple[float, float] = (0.6, 1.7), rise: float = 10.0,
               bad_error: float = 0.1, tolerance: float = 0.1) -> dict[str, Any]:
    """Claims of Figure 6 (§5.2, Theorem 2).

    With ``e(N, level)`` the mean test error over trials, ``q = r*/d`` and ``N_max`` the
    largest ``N``, asserts: the invariants (:func:`check_invariants`); for ``N_max`` the
    error is smallest at a level whose remaining fraction lies in ``[window[0] q,
    window[1] q]``, is below the dense error there, and the error at the last level is at
    least ``rise`` times that minimum (the sharp rise when over-pruned, which needs the
    grid to go below ``q``); for the smallest ``N`` the error is at least ``bad_error``
    at every level; at every level ``e`` does not increase with ``N`` beyond a relative
    ``tolerance`` and ``e(N_max) < e(N_min)``. Returns the minima and where they occur.
    """
    check_result(results, "fig6")
    check_invariants(results)
    s = results["settings"]
    e = np.asarray(results["raw"]["mean_test_error"], dtype=float)  # (N, level)
    rem = np.asarray(results["axes"]["remaining"], dtype=float)
    q = s["r_star"] / s["d"]
    best = e.argmin(axis=1)
    out = {"q": q, "best_remaining": rem[best].tolist(), "min_error": e.min(axis=1).tolist(),
           "dense_error": e[:, 0].tolist(), "last_error": e[:, -1].tolist()}
    _require(rem[-1] < window[0] * q, f"the level grid stops at {rem[-1]:.3f} remaining, not below r*/d = {q}: "
                                      "raise levels")
    k = best[-1]
    _require(window[0] * q <= rem[k] <= window[1] * q,
             f"N = {s['N_values'][-1]}: the error is smallest at {rem[k]:.3f} remaining, not near r*/d = {q}")
    _require(e[-1, k] < e[-1, 0], f"N = {s['N_values'][-1]}: pruning did not lower the error below the dense one")
    _require(e[-1, -1] >= rise * e[-1, k],
             f"N = {s['N_values'][-1]}: error at {rem[-1]:.3f} remaining ({e[-1, -1]:.3g}) is not {rise}x the "
             f"minimum ({e[-1, k]:.3g}): no sharp rise when over-pruned")
    _require(bool(np.all(e[0] >= bad_error)),
             f"N = {s['N_values'][0]}: error below {bad_error} at some level ({np.round(e[0], 3).tolist()}); "
             "the smallest N should fail throughout")
    worse = [(int(s["N_values"][i + 1]), int(lv)) for i in range(len(e) - 1) for lv in range(e.shape[1])
             if e[i + 1, lv] > (1 + tolerance) * e[i, lv]]
    out["larger_N_worse"] = worse
    _require(not worse, f"a larger N is worse at (N, level) {worse}")
    _require(bool(np.all(e[-1] < e[0])), "the largest N is not better than the smallest at every level")
    return out


def check_fig7(results: Mapping[str, Any], min_accuracy: float = 0.5, hold_tol: float = 0.005,
               drop: float = 0.01, overpruned: float = 0.1) -> dict[str, Any]:
    """Claims of Figure 7 on the best test accuracy ``a(N, level)``.

    Always asserted: the invariants (:func:`check_invariants`); every accuracy is at least
    ``min_accuracy`` (chance is 0.1); the mean accuracy over levels increases with ``N`` and
    ``a(N_max) > a(N_min)`` at every level (more data is better).
    Asserted when the level grid reaches ``overpruned`` or fewer remaining weights
    (``shape_checked`` in the returned dict): for every ``N``, the best accuracy over the
    levels with more than ``overpruned`` remaining and at least one pruning step is at
    least the dense accuracy minus ``hold_tol`` (holds or rises under moderate pruning), and
    the accuracy at the last level is at least ``drop`` below the best one (drops when
    over-pruned).
    """
    check_result(results, "fig7")
    check_invariants(results)
    a = np.asarray(results["raw"]["best_test_accuracy"], dtype=float)  # (N, level)
    rem = np.asarray(results["axes"]["remaining"], dtype=float)
    N = results["settings"]["N_values"]
    mean = a.mean(axis=1)
    out: dict[str, Any] = {"mean_accuracy": mean.tolist(), "dense_accuracy": a[:, 0].tolist(),
                           "best_accuracy": a.max(axis=1).tolist(), "best_remaining": rem[a.argmax(axis=1)].tolist(),
                           "last_accuracy": a[:, -1].tolist(), "last_remaining": float(rem[-1])}
    _require(float(a.min()) >= min_accuracy, f"some accuracy is below {min_accuracy}: {np.round(a.min(), 3)}")
    if len(N) > 1:
        out["spearman_N_mean"] = spearman(N, mean)
        _require(bool(np.all(np.diff(mean) > 0)), f"mean accuracy does not grow with N: {np.round(mean, 4).tolist()}")
        _require(bool(np.all(a[-1] > a[0])), "the largest N is not better than the smallest at every level")
    moderate = (rem > overpruned) & (np.arange(len(rem)) > 0)
    out["shape_checked"] = bool(rem[-1] <= overpruned and moderate.any())
    if out["shape_checked"]:
        held = a[:, moderate].max(axis=1)
        out["moderate_best"] = held.tolist()
        for i, n in enumerate(N):
            _require(held[i] >= a[i, 0] - hold_tol,
                     f"N = {n}: accuracy falls under moderate pruning ({held[i]:.4f} < dense {a[i, 0]:.4f} - {hold_tol})")
            _require(a[i, -1] <= a[i].max() - drop,
                     f"N = {n}: no drop when over-pruned (last {a[i, -1]:.4f} vs best {a[i].max():.4f})")
    return out


__all__ = ["ClaimError", "fig2_success", "success_radius", "sample_threshold", "check_fig2", "check_fig3", "check_fig4",
           "check_fig5", "check_invariants", "check_fig6", "check_fig7"]
