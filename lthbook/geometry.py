"""Numerical probes of Theorem 1 (local convexity of the empirical risk near ``W*``).

Theorem 1 says that, with ``N = Omega(eps1^-2 K^4 r log d)`` samples (Eq. 5), every
``W`` with ``||W - W*||_F = O(eps0 / K^2)`` (Eq. 6) has

    Theta((1 - eps0 - eps1) / K^2) I  ⪯  grad^2 f_D(W)  ⪯  Theta(1 / K) I        (Eq. 7)

and that at fixed ``N`` one may take ``eps1 = Theta(sqrt(r / N))``, so the ball
shrinks as ``r`` grows. For ReLU the risk is piecewise quadratic and its Hessian
(:func:`lthbook.risk.risk_hessian`) is a Gram matrix, positive semi-definite on
every piece; what can fail is its *smallest* eigenvalue (too few samples per
parameter) and, between pieces, the kinks. The probes here measure

* the spectrum of the Hessian at ``W*`` as ``K``, ``r`` and ``N`` change
  (:func:`spectrum_sweep`);
* how fast the Hessian moves away from ``H* = grad^2 f_D(W*)`` as ``W`` leaves
  ``W*`` (:func:`hessian_perturbation`), and the radius it certifies through
  Weyl's inequality, ``lambda_min(H(W)) >= lambda_min(H*) - ||H(W) - H*||_2``
  (:func:`certified_radius`), which is the argument behind Eq. (6)-(7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ._validation import check_int
from .agd import initial_points
from .teacher import Problem, make_problem, make_problem_from_teacher, orthonormal_teacher
from .risk import risk_hessian


def _extreme_eigenvalues(H: np.ndarray) -> tuple[float, float]:
    n = H.shape[0]
    low = scipy.linalg.eigh(H, eigvals_only=True, subset_by_index=[0, 0], driver="evr")[0]
    high = scipy.linalg.eigh(H, eigvals_only=True, subset_by_index=[n - 1, n - 1], driver="evr")[0]
    return float(low), float(high)


def hessian_extremes(problem: Problem, W: np.ndarray | None = None) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of the Hessian of Eq. (2) at ``W`` (default ``W*``): the two sides of Eq. (7)."""
    W = problem.W_star if W is None else W
    return _extreme_eigenvalues(risk_hessian(W, problem.X, problem.y, problem.supports))


def spectral_norm_sym(A: np.ndarray) -> float:
    """Spectral norm of a symmetric matrix: the largest ``|eigenvalue|``."""
    low, high = _extreme_eigenvalues(A)
    return max(abs(low), abs(high))


@dataclass
class SpectrumSweep:
    """Hessian extremes at ``W*`` over a grid; arrays have shape ``(len(values), len(seeds))``."""

    parameter: str
    values: np.ndarray
    lam_min: np.ndarray
    lam_max: np.ndarray
    settings: dict


def spectrum_sweep(
    parameter: str,
    values: Sequence[int],
    *,
    K: int = 5,
    d: int = 100,
    r_star: int = 10,
    r: int | None = None,
    N: int = 2000,
    seeds: Sequence[int] = (0,),
    teacher: str = "random",
) -> SpectrumSweep:
    """Vary one of ``K``, ``r`` or ``N`` and record ``lambda_min``/``lambda_max`` of the Hessian at ``W*``.

    Unset ``r`` means ``r = r*`` (the exactly pruned student). ``teacher="random"``
    draws teachers as in §5; ``teacher="orthonormal"`` uses a dense teacher with
    orthonormal weight vectors (:func:`lthbook.teacher.orthonormal_teacher`,
    ``r* = r = d``), which keeps the conditioning of ``W*`` fixed as ``K`` grows.
    The seed of each draw is the entry of ``seeds``.
    """
    if parameter not in ("K", "r", "N"):
        raise ValueError(f"parameter must be 'K', 'r' or 'N', got {parameter!r}")
    if teacher not in ("random", "orthonormal"):
        raise ValueError(f"teacher must be 'random' or 'orthonormal', got {teacher!r}")
    values = np.asarray([check_int(parameter, v, 1) for v in values])
    lam_min = np.zeros((values.size, len(seeds)))
    lam_max = np.zeros_like(lam_min)
    for i, value in enumerate(values):
        cfg = {"K": K, "r": r_star if r is None else r, "N": N}
        cfg[parameter] = int(value)
        for s, seed in enumerate(seeds):
            if teacher == "orthonormal":
                rng = np.random.default_rng(int(seed))
                problem = make_problem_from_teacher(orthonormal_teacher(cfg["K"], d, rng), d, cfg["N"], seed=rng)
            else:
                problem = make_problem(cfg["K"], d, r_star, cfg["r"], cfg["N"], seed=int(seed))
            lam_min[i, s], lam_max[i, s] = hessian_extremes(problem)
    settings = {"K": K, "d": d, "r_star": r_star, "r": r, "N": N, "seeds": list(seeds), "teacher": teacher}
    return SpectrumSweep(parameter, values, lam_min, lam_max, settings)


def hessian_difference_norm(problem: Problem, W: np.ndarray, *, tol: float = 1e-6) -> float:
    """``||grad^2 f_D(W) - grad^2 f_D(W*)||_2`` without forming either Hessian.

    By the block formula of :mod:`lthbook.risk` the two Hessians differ only through the samples
    whose activation pattern differs between ``W`` and ``W*``: with
    ``u_n = (a_nj(W) x_{n,Omega_j})_j`` and ``v_n`` the same at ``W*``, the
    difference is ``sum_{n flipped} (u_n u_n^T - v_n v_n^T) / (N K^2)``. Its largest
    ``|eigenvalue|`` is found by Lanczos (``scipy.sparse.linalg.eigsh``) on that
    operator, at a cost proportional to the number of flipped samples.
    """
    W = np.asarray(W, dtype=float)
    Xg = problem.gathered()  # (K, N, r)
    K, N, r = Xg.shape
    a_w = np.einsum("knr,rk->kn", Xg, W) > 0
    a_s = np.einsum("knr,rk->kn", Xg, problem.W_star) > 0
    flipped = np.flatnonzero((a_w != a_s).any(axis=0))
    if flipped.size == 0:
        return 0.0
    Xf = Xg[:, flipped, :]  # (K, m, r)
    U = Xf * a_w[:, flipped, None]
    Vv = Xf * a_s[:, flipped, None]
    scale = 1.0 / (N * K * K)

    def matvec(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=float).reshape(K, r)
        su = np.einsum("kmr,kr->m", U, v)
        sv = np.einsum("kmr,kr->m", Vv, v)
        out = np.einsum("kmr,m->kr", U, su) - np.einsum("kmr,m->kr", Vv, sv)
        return (scale * out).ravel()

    n = K * r
    if n <= 64:  # tiny problems: a dense eigen-solve is simpler and exact
        D = np.column_stack([matvec(e) for e in np.eye(n)])
        return spectral_norm_sym((D + D.T) / 2)
    op = scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, dtype=float)
    v0 = np.ones(n) / np.sqrt(n)
    value = scipy.sparse.linalg.eigsh(op, k=1, which="LM", return_eigenvectors=False, tol=tol, v0=v0)[0]
    return float(abs(value))


def hessian_perturbation(
    problem: Problem, radii: Sequence[float], n_points: int = 3, seed: int = 0
) -> np.ndarray:
    """Largest ``||H(W) - H*||_2`` over ``n_points`` random ``W`` at each relative distance.

    ``W`` is drawn by :func:`lthbook.agd.initial_points`, so
    ``||W - W*||_F / ||W*||_F`` equals the radius exactly; the norm comes from
    :func:`hessian_difference_norm`. Returns shape ``(len(radii),)``.
    """
    n_points = check_int("n_points", n_points, 1)
    rng = np.random.default_rng(seed)
    out = np.zeros(len(radii))
    for i, radius in enumerate(radii):
        for W in initial_points(problem.W_star, float(radius), n=n_points, seed=rng):
            out[i] = max(out[i], hessian_difference_norm(problem, W))
    return out


def certified_radius(radii: Sequence[float], perturbation: Sequence[float], lam_min_star: float) -> float:
    """Largest grid radius up to which ``||H(W) - H*||_2 < lambda_min(H*)`` held at every grid point.

    By Weyl's inequality every probed ``W`` inside it has a positive-definite
    Hessian. Returns 0 when even the smallest radius fails.
    """
    radii = np.asarray(radii, dtype=float)
    perturbation = np.asarray(perturbation, dtype=float)
    if radii.shape != perturbation.shape or np.any(np.diff(radii) <= 0):
        raise ValueError("radii must be increasing and match perturbation in length")
    ok = perturbation < lam_min_star
    if not ok[0]:
        return 0.0
    first_fail = np.argmin(ok) if not ok.all() else radii.size
    return float(radii[first_fail - 1])


@dataclass
class ConvexRegionSweep:
    """Certified convex radius against ``r``; arrays have shape ``(len(r_values), len(seeds))``
    except ``perturbation`` with shape ``(len(r_values), len(seeds), len(radii))``."""

    r_values: np.ndarray
    radii: np.ndarray
    lam_min: np.ndarray
    perturbation: np.ndarray
    radius: np.ndarray
    settings: dict


def convex_region_sweep(
    r_values: Sequence[int],
    radii: Sequence[float],
    *,
    K: int = 5,
    d: int = 200,
    r_star: int = 10,
    N: int = 2000,
    n_points: int = 3,
    seeds: Sequence[int] = (0,),
) -> ConvexRegionSweep:
    """For each student width ``r``, measure ``lambda_min(H*)``, the Hessian perturbation
    on spheres around ``W*`` and the Weyl-certified radius (:func:`certified_radius`)."""
    r_values = np.asarray([check_int("r", r, r_star, d) for r in r_values])
    radii = np.asarray(radii, dtype=float)
    shape = (r_values.size, len(seeds))
    lam_min = np.zeros(shape)
    radius = np.zeros(shape)
    perturbation = np.zeros(shape + (radii.size,))
    for i, r in enumerate(r_values):
        for s, seed in enumerate(seeds):
            problem = make_problem(K, d, r_star, int(r), N, seed=int(seed))
            lam_min[i, s] = hessian_extremes(problem)[0]
            perturbation[i, s] = hessian_perturbation(problem, radii, n_points=n_points, seed=int(seed))
            radius[i, s] = certified_radius(radii, perturbation[i, s], lam_min[i, s])
    settings = {"K": K, "d": d, "r_star": r_star, "N": N, "n_points": n_points, "seeds": list(seeds)}
    return ConvexRegionSweep(r_values, radii, lam_min, perturbation, radius, settings)


def _radii(low: float, high: float, n: int) -> list[float]:
    return [float(x) for x in np.geomspace(low, high, n)]


#: Experiment sizes of the §3 chapter at each scale (see :mod:`lthbook.scales`).
#: ``paper`` uses the dimensions of the paper's Fig. 2 (K=5, d=500, N=3000) for the
#: r-dependence; the paper reports no Hessian experiment, so its trial counts are ours.
CHAPTER3_PRESETS: dict[str, dict] = {
    "ci": {
        "K_values": [2, 4, 8], "K_d": 24, "K_N": 3000, "K_seeds": [0],
        "r_values": [10, 20, 40, 60], "r_d": 60, "r_N": 1000,
        "N_values": [300, 600, 1200, 2400], "N_r": 30, "seeds": [0],
        "region_r": [10, 20, 40, 60], "radii": _radii(1e-4, 0.3, 10), "n_points": 2, "region_seeds": [0, 1],
    },
    "book": {
        "K_values": [2, 4, 8, 16], "K_d": 64, "K_N": 12000, "K_seeds": [0, 1],
        "r_values": [10, 25, 50, 100, 150, 200], "r_d": 200, "r_N": 2000,
        "N_values": [500, 1000, 2000, 4000, 8000], "N_r": 50, "seeds": [0, 1, 2],
        "region_r": [10, 25, 50, 75, 100, 150, 200], "radii": _radii(1e-4, 0.5, 16), "n_points": 4,
        "region_seeds": [0, 1, 2],
    },
    "paper": {
        "K_values": [2, 4, 8, 16], "K_d": 64, "K_N": 12000, "K_seeds": [0, 1, 2, 3, 4],
        "r_values": [10, 50, 100, 200, 300, 400, 500], "r_d": 500, "r_N": 3000,
        "N_values": [1000, 2000, 3000, 6000, 12000], "N_r": 100, "seeds": list(range(10)),
        "region_r": [10, 50, 100, 200, 300, 400, 500], "radii": _radii(1e-4, 0.5, 20), "n_points": 5,
        "region_seeds": list(range(10)),
    },
}
