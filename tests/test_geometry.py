"""Tests of the §3 probes (lthbook.geometry), the fit helpers and the seed switch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from lthbook.geometry import (
    CHAPTER3_PRESETS,
    certified_radius,
    convex_region_sweep,
    hessian_extremes,
    hessian_perturbation,
    spectral_norm_sym,
    spectrum_sweep,
)
from lthbook.risk import risk_hessian
from lthbook.scales import SCALES, get_seed
from lthbook.stats import linear_fit, loglog_fit
from lthbook.teacher import make_problem, make_problem_from_teacher, orthonormal_teacher


@pytest.fixture(scope="module")
def problem():
    return make_problem(K=3, d=20, r_star=4, r=8, N=400, seed=3)


def test_hessian_extremes_match_full_eigendecomposition(problem):
    eig = np.linalg.eigvalsh(risk_hessian(problem.W_star, problem.X, problem.y, problem.supports))
    low, high = hessian_extremes(problem)
    assert low == pytest.approx(eig[0], rel=1e-8)
    assert high == pytest.approx(eig[-1], rel=1e-8)


def test_spectral_norm_of_symmetric_matrix_matches_numpy():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 30))
    A = A + A.T
    assert spectral_norm_sym(A) == pytest.approx(np.linalg.norm(A, 2), rel=1e-10)


def test_hessian_perturbation_is_zero_at_wstar_scale_and_grows(problem):
    pert = hessian_perturbation(problem, [1e-9, 0.3, 1.0], n_points=2, seed=0)
    assert pert[0] == pytest.approx(0.0, abs=1e-12)  # no activation flips that close to W*
    assert pert[1] > 0 and pert[2] >= pert[1] * 0.5


def test_certified_radius_logic():
    radii = [0.1, 0.2, 0.3, 0.4]
    assert certified_radius(radii, [0.1, 0.2, 0.6, 0.3], 0.5) == 0.2  # first failure decides
    assert certified_radius(radii, [0.1, 0.2, 0.3, 0.4], 0.5) == 0.4
    assert certified_radius(radii, [0.9, 0.2, 0.3, 0.4], 0.5) == 0.0
    with pytest.raises(ValueError, match="radii"):
        certified_radius([0.2, 0.1], [0.0, 0.0], 1.0)


def test_orthonormal_teacher_has_orthonormal_columns():
    teacher = orthonormal_teacher(4, 10, seed=1)
    assert np.allclose(teacher.weights.T @ teacher.weights, np.eye(4))
    assert teacher.r_star == 10
    p = make_problem_from_teacher(teacher, 10, 50, seed=2)
    assert np.allclose(p.W_star, teacher.weights)
    with pytest.raises(ValueError, match="d"):
        orthonormal_teacher(5, 3)


def test_spectrum_sweep_shapes_and_validation():
    sweep = spectrum_sweep("N", [100, 400], K=2, d=10, r_star=3, r=5, seeds=[0, 1])
    assert sweep.lam_min.shape == (2, 2) and np.all(sweep.lam_max >= sweep.lam_min)
    with pytest.raises(ValueError, match="parameter"):
        spectrum_sweep("d", [1, 2])
    with pytest.raises(ValueError, match="teacher"):
        spectrum_sweep("K", [1, 2], teacher="weird")


def test_more_samples_give_more_curvature():
    # eps1 = Theta(sqrt(r/N)): at fixed r, lambda_min at W* rises with N (same teacher per seed).
    sweep = spectrum_sweep("N", [60, 2000], K=3, d=30, r_star=5, r=15, seeds=[0, 1, 2])
    assert np.all(sweep.lam_min[1] > sweep.lam_min[0])


def test_convex_region_sweep_runs_and_is_consistent():
    region = convex_region_sweep([5, 20], [0.01, 0.1], K=3, d=20, r_star=5, N=300, n_points=1, seeds=[0])
    assert region.perturbation.shape == (2, 1, 2)
    for i in range(2):
        assert region.radius[i, 0] == certified_radius(region.radii, region.perturbation[i, 0], region.lam_min[i, 0])


def test_presets_cover_every_scale():
    assert set(CHAPTER3_PRESETS) == set(SCALES)
    keys = set(CHAPTER3_PRESETS["ci"])
    assert all(set(p) == keys for p in CHAPTER3_PRESETS.values())


def test_linear_fit_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 20)
    y = 3 * x - 1 + 0.1 * rng.standard_normal(20)
    fit = linear_fit(x, y)
    ref = scipy.stats.linregress(x, y)
    assert fit.slope == pytest.approx(ref.slope)
    assert fit.intercept == pytest.approx(ref.intercept)
    assert fit.r2 == pytest.approx(ref.rvalue**2)
    assert loglog_fit([1, 2, 4], [1, 0.25, 0.0625]).slope == pytest.approx(-2)
    with pytest.raises(ValueError):
        linear_fit([1, 2], [1, 2])
    with pytest.raises(ValueError):
        loglog_fit([1, 2, 3], [1, -1, 2])


def test_get_seed(monkeypatch):
    monkeypatch.delenv("LTHBOOK_SEED", raising=False)
    assert get_seed() == 0
    monkeypatch.setenv("LTHBOOK_SEED", "7")
    assert get_seed() == 7
    assert get_seed(3) == 3
    monkeypatch.setenv("LTHBOOK_SEED", "x")
    with pytest.raises(ValueError, match="LTHBOOK_SEED"):
        get_seed()
    with pytest.raises(ValueError, match="seed"):
        get_seed(-1)


@pytest.mark.parametrize("shape", [(3, 20, 4, 8, 400), (5, 60, 10, 40, 600)])
def test_hessian_difference_norm_matches_dense_computation(shape):
    from lthbook.agd import initial_points
    from lthbook.geometry import hessian_difference_norm

    K, d, r_star, r, N = shape
    p = make_problem(K=K, d=d, r_star=r_star, r=r, N=N, seed=5)
    H_star = risk_hessian(p.W_star, p.X, p.y, p.supports)
    for W in initial_points(p.W_star, [0.05, 0.4], seed=2):
        dense = np.linalg.norm(risk_hessian(W, p.X, p.y, p.supports) - H_star, 2)
        assert hessian_difference_norm(p, W) == pytest.approx(dense, rel=1e-5)
