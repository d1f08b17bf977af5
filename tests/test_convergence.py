"""Tests of the §4 chapter's experiment helpers (lthbook.convergence, lthbook.convergence_plots)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from lthbook.agd import initial_points, run_agd
from lthbook.convergence import (
    CHAPTER4_PRESETS,
    fit_convergence_rate,
    pruning_sweep,
    rate_vs_beta,
    rates_from_result,
)
from lthbook.convergence_plots import heavy_ball_rate, plot_pruning, plot_rate_vs_beta
from lthbook.scales import SCALES
from lthbook.teacher import make_problem


def test_fit_convergence_rate_recovers_a_geometric_sequence():
    t = np.arange(0, 400, 5)
    errors = 0.3 * 0.93**t
    assert fit_convergence_rate(t, errors) == pytest.approx(0.93, rel=1e-10)
    # points outside the window (start-up, round-off floor) are ignored
    noisy = errors.copy()
    noisy[:2] = 5.0
    noisy[errors < 1e-10] = 1e-16
    assert fit_convergence_rate(t, noisy) == pytest.approx(0.93, rel=1e-10)
    assert np.isnan(fit_convergence_rate(t[:2], errors[:2]))
    with pytest.raises(ValueError, match="same shape"):
        fit_convergence_rate(t, errors[:-1])


def test_heavy_ball_rate_matches_simulation_on_a_quadratic():
    # independent check: iterate heavy ball on f(x) = 0.5 * sum(lam_i x_i^2) with eta = 1/L
    mu, L = 0.02, 1.0
    lams = np.array([mu, L])
    for beta in (0.0, 0.3, 0.6, (1 - np.sqrt(mu)) ** 2, 0.9):
        x_prev = x = np.ones(2)
        norms = []
        for _ in range(600):
            x, x_prev = x - (1 / L) * lams * x + beta * (x - x_prev), x
            norms.append(np.linalg.norm(x))
        measured = (norms[-1] / norms[-301]) ** (1 / 300)
        # at beta* the double root adds a factor t, worth (600/300)^(1/300) - 1 = 0.0023 here
        assert measured == pytest.approx(heavy_ball_rate(np.array([beta]), mu / L)[0], abs=4e-3)


def test_rates_from_result_uses_the_linear_phase():
    p = make_problem(K=3, d=30, r_star=6, r=6, N=400, seed=0)
    res = run_agd(p, initial_points(p.W_star, [0.1, 0.2], seed=1), beta=0.2, record_every=2)
    nu = rates_from_result(res)
    assert nu.shape == (1, 2) and np.all((0 < nu) & (nu < 1))
    # re-fit by hand from the recorded curve of run 0
    curve, iters = res.history[:, 0, 0], res.history_iters
    last = int(np.argmax(curve == curve[-1]))
    keep = (curve[: last + 1] <= 1e-2) & (curve[: last + 1] >= 1e-10)
    slope = np.polyfit(iters[: last + 1][keep], np.log(curve[: last + 1][keep]), 1)[0]
    assert nu[0, 0] == pytest.approx(np.exp(slope))
    with pytest.raises(ValueError, match="history"):
        rates_from_result(run_agd(p, initial_points(p.W_star, 0.1, seed=1), max_iter=5))


def test_beta_sweep_prefers_momentum():
    sweep = rate_vs_beta([0.0, 0.5], r=10, d=40, N=400, trials=1, seed=0)
    assert sweep.nu[1, 0] < sweep.nu[0, 0]
    assert 0 < sweep.settings["beta_star_theory"] < 1
    plot_rate_vs_beta(sweep)


def test_pruning_sweep_shapes_and_plot():
    sweep = pruning_sweep([300], [0.5, 0.9], K=2, d=20, r_star=2, trials=1, iterations=100)
    assert sweep.proper.shape == (1, 2, 1) and sweep.exact.dtype == bool
    fig = plot_pruning(sweep)
    assert len(fig.axes) == 1


def test_chapter4_presets_cover_every_scale():
    assert set(CHAPTER4_PRESETS) == set(SCALES)
    keys = set(CHAPTER4_PRESETS["ci"])
    assert all(set(p) == keys for p in CHAPTER4_PRESETS.values())
