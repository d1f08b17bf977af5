"""Tests of §4.1 magnitude pruning (lthbook.pruning)."""

from __future__ import annotations

import numpy as np
import pytest

from lthbook.pruning import contains_teacher, magnitude_mask, train_and_prune
from lthbook.teacher import make_problem


def test_magnitude_mask_removes_exactly_the_smallest():
    W = np.array([[0.5, -0.1], [0.05, -2.0], [0.3, 0.0]])
    mask = magnitude_mask(W, 0.5)  # 3 of 6 removed: 0.0, 0.05, -0.1
    assert mask.sum() == 3
    assert np.array_equal(mask, np.array([[True, False], [False, True], [True, False]]))
    assert magnitude_mask(W, 0.0).all()
    with pytest.raises(ValueError, match="prune_fraction"):
        magnitude_mask(W, 1.0)
    with pytest.raises(ValueError, match="W_tilde"):
        magnitude_mask(np.ones(3), 0.1)


def test_pruning_the_truth_recovers_the_teacher_architecture():
    p = make_problem(K=3, d=20, r_star=4, r=4, N=10, seed=0)
    W_true = p.teacher.dense_weights()
    mask = magnitude_mask(W_true, 1 - 4 / 20)
    assert np.array_equal(mask, p.teacher.mask().astype(bool))
    assert contains_teacher(mask, p.teacher).all()
    # pruning one more weight than the teacher lacks must break containment
    assert not contains_teacher(magnitude_mask(W_true, 1 - 4 / 20 + 1 / 60), p.teacher).all()


def test_train_and_prune_succeeds_with_enough_samples_and_fails_with_too_few():
    exact_good, exact_bad = [], []
    for seed in range(5):
        good = make_problem(K=3, d=20, r_star=4, r=4, N=1500, seed=seed)
        out = train_and_prune(good, prune_fraction=1 - 4 / 20, iterations=400, distance=0.5, seed=seed)
        assert out.dense_rel_error < 1e-3
        exact_good.append(out.exact and out.proper)
        # N far below d*K = 60: the dense fit is underdetermined, the start's error in the
        # null space survives training, and small teacher weights drown in it
        bad = make_problem(K=3, d=20, r_star=4, r=4, N=25, seed=seed)
        out_bad = train_and_prune(bad, prune_fraction=1 - 4 / 20, iterations=400, distance=0.5, seed=seed)
        assert out_bad.dense_rel_error > 1e-2
        exact_bad.append(out_bad.exact)
    assert all(exact_good)
    assert sum(exact_bad) <= 1


def test_magnitude_mask_refuses_nan_weights():
    """A NaN weight was kept or dropped depending on where argsort put it (NaN sorts last)."""
    W = np.array([[0.5, np.nan], [0.05, -2.0], [0.3, 0.0]])
    with pytest.raises(ValueError, match=r"W_tilde must contain only finite weights.*\(0, 1\)"):
        magnitude_mask(W, 0.5)
    with pytest.raises(ValueError, match="W_tilde"):
        magnitude_mask(np.where(np.isnan(W), np.inf, W), 0.5)
