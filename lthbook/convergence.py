"""Experiments of the §4 chapter: linear convergence of Algorithm 1, the role of the
momentum ``beta``, the quality of the tensor initialization and §4.1's magnitude pruning.

Theorem 2 bounds the error after ``t`` iterations by ``nu(beta)^t`` times the initial
error, plus a noise term (Eq. 9); :func:`fit_convergence_rate` measures ``nu`` from a
recorded error curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ._validation import check_float, check_int
from .agd import AGDResult, initial_points, run_agd
from .stats import fit_rate
from .geometry import hessian_extremes
from .pruning import prune_trained, train_dense
from .teacher import make_problem
from .tensor_init import relative_distance, tensor_initialization


def fit_convergence_rate(
    iterations: np.ndarray, errors: np.ndarray, upper: float = 1e-2, lower: float = 1e-10
) -> float:
    """Contraction factor ``nu`` of Eq. (9): ``exp`` of the slope of ``log(error)`` against ``t``.

    Only points with ``lower <= error <= upper`` are fitted (the linear phase:
    past the start-up transient, above the floor of floating-point round-off); see
    :func:`lthbook.stats.fit_rate`, which this calls. Returns ``nan`` when too few
    points fall in that window.
    """
    iterations = np.asarray(iterations, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if iterations.shape != errors.shape:
        raise ValueError(f"iterations and errors must have the same shape, got {iterations.shape} and {errors.shape}")
    # one implementation for the whole book: the §5.1 runner's fit (which also drops the
    # frozen tail of a stopped run)
    return fit_rate(iterations, errors, (lower, upper))


def rates_from_result(result: AGDResult, **window) -> np.ndarray:
    """``nu`` for every run of an :class:`~lthbook.agd.AGDResult` recorded with ``record_every``; shape ``(P, B)``."""
    if result.history is None:
        raise ValueError("result has no history: run run_agd with record_every set")
    P, B = result.rel_error.shape
    out = np.full((P, B), np.nan)
    for p in range(P):
        for b in range(B):
            # a stopped run's history repeats its final error; the fit drops that tail
            out[p, b] = fit_convergence_rate(result.history_iters, result.history[:, p, b], **window)
    return out


@dataclass
class RateSweep:
    """Convergence rates over a grid of one parameter; ``nu`` has shape ``(len(values), trials)``."""

    parameter: str
    values: np.ndarray
    nu: np.ndarray
    curves: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def rate_vs_r(
    r_values: Sequence[int], *, beta: float, K: int = 5, d: int = 100, N: int = 1000, distance: float = 0.2,
    trials: int = 2, seed: int = 0, max_iter: int = 3000, record_every: int = 5,
) -> RateSweep:
    """``nu`` of AGD (momentum ``beta``, default step size) for students of width ``r = r*``.

    Each trial draws a teacher with ``r* = r`` (the exactly pruned student) and
    starts at relative distance ``distance``. ``curves[r]`` keeps the recorded
    mean error curve ``(iterations, errors)`` of the first trial.
    """
    nu = np.zeros((len(r_values), trials))
    curves = {}
    for i, r in enumerate(r_values):
        problems = [make_problem(K, d, int(r), int(r), N, seed=seed + 1000 * t + i) for t in range(trials)]
        W0 = np.stack([initial_points(p.W_star, distance, seed=seed + t) for t, p in enumerate(problems)])
        res = run_agd(problems, W0, beta=beta, max_iter=max_iter, record_every=record_every)
        nu[i] = rates_from_result(res)[:, 0]
        curves[int(r)] = (res.history_iters, res.history[:, 0, 0])
    settings = {"beta": beta, "K": K, "d": d, "N": N, "distance": distance, "trials": trials, "seed": seed}
    return RateSweep("r", np.asarray(r_values), nu, curves, settings)


def rate_vs_beta(
    betas: Sequence[float], *, r: int = 50, K: int = 5, d: int = 100, N: int = 1000, distance: float = 0.2,
    trials: int = 2, seed: int = 0, max_iter: int = 4000, record_every: int = 5,
) -> RateSweep:
    """``nu`` of Algorithm 1 as the momentum ``beta`` varies, at a fixed step ``eta = 1/lambda_max(W*)``.

    Holding ``eta`` fixed isolates the effect of ``beta``. For a quadratic with
    Hessian eigenvalues in ``[mu, L]`` and ``eta = 1/L``, heavy-ball momentum is
    fastest at ``beta* = (1 - sqrt(mu/L))^2`` with ``nu = sqrt(beta*)``, against
    ``nu = 1 - mu/L`` for GD; ``settings["beta_star_theory"]`` holds that value
    computed from the Hessian at ``W*`` of each trial's data (mean over trials).
    """
    betas = [check_float("beta", b, 0.0, 1.0, high_inclusive=False) for b in betas]
    problems = [make_problem(K, d, r, r, N, seed=seed + 1000 * t) for t in range(trials)]
    extremes = np.array([hessian_extremes(p) for p in problems])  # (trials, 2): mu, L
    eta = 1.0 / extremes[:, 1]
    W0 = np.stack([initial_points(p.W_star, distance, seed=seed + t) for t, p in enumerate(problems)])
    nu = np.zeros((len(betas), trials))
    for i, beta in enumerate(betas):
        res = run_agd(problems, W0, eta=eta[:, None], beta=beta, max_iter=max_iter, record_every=record_every)
        nu[i] = rates_from_result(res)[:, 0]
    q = extremes[:, 0] / extremes[:, 1]
    settings = {
        "r": r, "K": K, "d": d, "N": N, "distance": distance, "trials": trials, "seed": seed,
        "eta": eta.tolist(), "mu_over_L": q.tolist(),
        "beta_star_theory": float(np.mean((1 - np.sqrt(q)) ** 2)),
        "nu_gd_theory": float(np.mean(1 - q)), "nu_star_theory": float(np.mean(1 - np.sqrt(q))),
    }
    return RateSweep("beta", np.asarray(betas), nu, {}, settings)


@dataclass
class InitSweep:
    """Tensor-initialization quality over ``(r, N)``; arrays have shape ``(len(r), len(N), trials)``."""

    r_values: np.ndarray
    N_values: np.ndarray
    distance: dict
    agd_success: np.ndarray
    settings: dict


def init_quality_sweep(
    r_values: Sequence[int], N_values: Sequence[int], *, K: int = 5, d: int = 100, trials: int = 2,
    seed: int = 0, methods: Sequence[str] = ("exact", "paper"),
) -> InitSweep:
    """Relative distance ``||W(0) - W*||_F / ||W*||_F`` of the tensor initialization (both variants),
    and whether Algorithm 1 started there succeeds (``exact`` variant), over a grid of ``r = r*`` and ``N``."""
    shape = (len(r_values), len(N_values), trials)
    distance = {m: np.zeros(shape) for m in methods}
    success = np.zeros(shape, dtype=bool)
    for i, r in enumerate(r_values):
        for j, N in enumerate(N_values):
            problems, starts = [], []
            for t in range(trials):
                p = make_problem(K, d, int(r), int(r), int(N), seed=seed + 1000 * t + 37 * i + j)
                for m in methods:
                    W0 = tensor_initialization(p, method=m, seed=seed + t)
                    distance[m][i, j, t] = relative_distance(W0, p.W_star, match=False)
                    if m == methods[0]:
                        problems.append(p)
                        starts.append(W0[None])
            res = run_agd(problems, np.stack(starts))
            success[i, j] = res.success[:, 0]
    settings = {"K": K, "d": d, "trials": trials, "seed": seed, "methods": list(methods)}
    return InitSweep(np.asarray(r_values), np.asarray(N_values), distance, success, settings)


@dataclass
class PruningSweep:
    """§4.1 over ``(N, prune fraction)``; ``proper`` and ``exact`` have shape ``(len(N), len(fractions), trials)``."""

    N_values: np.ndarray
    fractions: np.ndarray
    proper: np.ndarray
    exact: np.ndarray
    settings: dict


def pruning_sweep(
    N_values: Sequence[int], fractions: Sequence[float], *, K: int = 5, d: int = 100, r_star: int = 10,
    trials: int = 2, iterations: int = 300, distance: float = 0.5, seed: int = 0,
) -> PruningSweep:
    """Train the dense student (``T1 = iterations``), prune each fraction by magnitude, and record
    whether the kept mask contains the teacher's (proper) and equals it (exact)."""
    check_int("r_star", r_star, 1, d)
    shape = (len(N_values), len(fractions), trials)
    proper = np.zeros(shape, dtype=bool)
    exact = np.zeros(shape, dtype=bool)
    for i, N in enumerate(N_values):
        for t in range(trials):
            p = make_problem(K, d, r_star, r_star, int(N), seed=seed + 1000 * t + i)
            W_dense, error = train_dense(p, iterations=iterations, distance=distance, seed=seed + t)
            for k, fraction in enumerate(fractions):
                out = prune_trained(W_dense, p.teacher, fraction, error)
                proper[i, k, t], exact[i, k, t] = out.proper, out.exact
    settings = {"K": K, "d": d, "r_star": r_star, "trials": trials, "iterations": iterations,
                "distance": distance, "seed": seed}
    return PruningSweep(np.asarray(N_values), np.asarray(fractions, dtype=float), proper, exact, settings)


#: Experiment sizes of the §4 chapter per scale. The paper reports no experiment for
#: these panels beyond Fig. 3 (reproduced in §5.1); ``paper`` uses Fig. 3's sizes
#: (N=3000, d=300, K=5) for the rate sweeps.
CHAPTER4_PRESETS: dict[str, dict] = {
    "ci": {
        "rate_r": [10, 20, 40], "rate_d": 60, "rate_N": 600, "rate_trials": 1, "rate_max_iter": 2000,
        "betas": [0.0, 0.3, 0.5, 0.65, 0.8, 0.9], "beta_r": 20, "beta_trials": 1,
        "init_r": [10, 20], "init_N": [2000, 10000], "init_d": 100, "init_trials": 2,
        "prune_N": [200, 600, 2000], "prune_fractions": [0.5, 0.9], "prune_d": 50, "prune_r_star": 5,
        "prune_trials": 2,
    },
    "book": {
        "rate_r": [10, 25, 50, 100], "rate_d": 100, "rate_N": 1000, "rate_trials": 3, "rate_max_iter": 3000,
        "betas": [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "beta_r": 50, "beta_trials": 2,
        "init_r": [10, 20, 50], "init_N": [2000, 5000, 20000], "init_d": 100, "init_trials": 3,
        "prune_N": [200, 500, 1000, 2000, 4000], "prune_fractions": [0.5, 0.8, 0.9], "prune_d": 100,
        "prune_r_star": 10, "prune_trials": 4,
    },
    "paper": {
        "rate_r": [10, 50, 100, 200, 300], "rate_d": 300, "rate_N": 3000, "rate_trials": 5, "rate_max_iter": 10000,
        "betas": [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9], "beta_r": 100, "beta_trials": 5,
        "init_r": [10, 20, 50, 100], "init_N": [2000, 5000, 20000, 50000], "init_d": 100, "init_trials": 10,
        "prune_N": [200, 500, 1000, 2000, 4000, 8000], "prune_fractions": [0.5, 0.7, 0.8, 0.9], "prune_d": 100,
        "prune_r_star": 10, "prune_trials": 20,
    },
}
