"""Tests for lthbook.teacher: the sparse teacher of Eq. (1), student masks, W*, M and tilde W (Eq. 4)."""

from __future__ import annotations

import numpy as np
import pytest

from lthbook.risk import empirical_risk, risk_gradient
from lthbook.teacher import (
    Problem,
    SparseTeacher,
    augmented_weights,
    check_supports,
    embed,
    make_problem,
    mask_matrix,
    noise_std,
    relu,
    sample_student_supports,
    sample_teacher,
)


def loop_teacher_output(teacher, X):
    """Eq. (1) without noise, by explicit loops: (1/K) sum_j phi(hat w*_j^T x_{Omega*_j})."""
    out = np.zeros(X.shape[0])
    for n in range(X.shape[0]):
        for j in range(teacher.K):
            z = sum(teacher.weights[i, j] * X[n, teacher.supports[j, i]] for i in range(teacher.r_star))
            out[n] += max(z, 0.0)
    return out / teacher.K


def loop_student_output(W, supports, X):
    K, r = supports.shape
    return np.array(
        [sum(max(sum(W[i, j] * x[supports[j, i]] for i in range(r)), 0.0) for j in range(K)) / K for x in X]
    )


def assert_rows_sorted_distinct(S, d):
    assert np.issubdtype(S.dtype, np.integer)
    assert S.min() >= 0 and S.max() < d
    assert np.all(np.diff(S, axis=1) > 0)  # strictly increasing rows: sorted and distinct


# --------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------


def test_relu():
    z = np.array([-2.0, -0.0, 0.0, 1e-300, 3.5])
    np.testing.assert_array_equal(relu(z), [0.0, 0.0, 0.0, 1e-300, 3.5])


@pytest.mark.parametrize("seed", range(4))
def test_sample_teacher_supports_and_weights(seed):
    K, d, r_star = 6, 15, 4
    t = sample_teacher(K, d, r_star, seed)
    assert t.supports.shape == (K, r_star)
    assert t.weights.shape == (r_star, K)
    assert (t.K, t.r_star, t.d) == (K, r_star, d)
    assert_rows_sorted_distinct(t.supports, d)
    assert np.all(t.weights >= -0.5) and np.all(t.weights <= 0.5)


def test_teacher_weights_look_uniform_on_half_interval():
    t = sample_teacher(K=100, d=60, r_star=50, seed=0)  # 5000 weights
    w = t.weights.ravel()
    assert abs(w.mean()) < 0.02
    assert w.std() == pytest.approx(1 / np.sqrt(12), rel=0.03)
    assert w.min() < -0.49 and w.max() > 0.49
    # every input is about equally likely to be in a teacher support
    counts = np.bincount(t.supports.ravel(), minlength=60)
    assert counts.sum() == 100 * 50 and counts.min() > 50  # expected 83 each


def test_sample_teacher_full_support_when_r_star_equals_d():
    t = sample_teacher(K=3, d=5, r_star=5, seed=1)
    np.testing.assert_array_equal(t.supports, np.tile(np.arange(5), (3, 1)))


def test_teacher_call_matches_loop():
    t = sample_teacher(K=4, d=12, r_star=3, seed=2)
    X = np.random.default_rng(0).standard_normal((25, 12))
    np.testing.assert_allclose(t(X), loop_teacher_output(t, X), rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="X"):
        t(X[:, :-1])


@pytest.mark.parametrize("seed", range(3))
def test_student_supports_contain_teacher(seed):
    t = sample_teacher(K=5, d=20, r_star=3, seed=seed)
    S = sample_student_supports(t, r=8, seed=seed + 100)
    assert S.shape == (5, 8)
    assert_rows_sorted_distinct(S, 20)
    for j in range(5):
        assert set(t.supports[j]) <= set(S[j])


def test_student_supports_edge_cases():
    t = sample_teacher(K=3, d=7, r_star=2, seed=0)
    np.testing.assert_array_equal(sample_student_supports(t, r=2, seed=0), t.supports)  # r = r*: the winning ticket
    np.testing.assert_array_equal(sample_student_supports(t, r=7, seed=0), np.tile(np.arange(7), (3, 1)))  # dense
    with pytest.raises(ValueError, match="r"):
        sample_student_supports(t, r=1)
    with pytest.raises(ValueError, match="r"):
        sample_student_supports(t, r=8)


def test_augmented_weights_by_hand():
    teacher = SparseTeacher(weights=np.array([[0.1, -0.2], [0.3, 0.4]]), supports=np.array([[1, 4], [0, 2]]), d=5)
    supports = np.array([[0, 1, 4], [0, 2, 3]])
    expected = np.array([[0.0, -0.2], [0.1, 0.4], [0.3, 0.0]])
    np.testing.assert_array_equal(augmented_weights(teacher, supports), expected)


@pytest.mark.parametrize("seed", range(3))
def test_augmented_weights_against_dictionary(seed):
    p = make_problem(K=4, d=25, r_star=3, r=7, N=5, seed=seed)
    t = p.teacher
    for j in range(p.K):
        lookup = dict(zip(t.supports[j].tolist(), t.weights[:, j].tolist()))
        for i, idx in enumerate(p.supports[j]):
            assert p.W_star[i, j] == lookup.get(int(idx), 0.0)
        assert np.count_nonzero(p.W_star[:, j]) == t.r_star


def test_augmented_weights_names_the_neuron_missing_an_input():
    t = sample_teacher(K=3, d=10, r_star=2, seed=4)
    S = sample_student_supports(t, r=4, seed=4)
    for j in (0, 2):
        bad = S.copy()
        missing = int(t.supports[j, 1])
        replacement = next(i for i in range(10) if i not in S[j])
        bad[j] = np.sort(np.where(bad[j] == missing, replacement, bad[j]))
        with pytest.raises(ValueError, match=rf"Omega_{j}\b.*Omega\*_{j}") as info:
            augmented_weights(t, bad)
        assert str(missing) in str(info.value)
        other = 2 - j
        assert f"Omega_{other}" not in str(info.value)
    with pytest.raises(ValueError, match="rows"):
        augmented_weights(t, S[:2])


def test_check_supports_rejects_bad_index_sets():
    with pytest.raises(ValueError, match="repeated"):
        check_supports("supports", np.array([[0, 1], [2, 2]]), 5)
    with pytest.raises(ValueError, match=r"\[0, d\)"):
        check_supports("supports", np.array([[0, 5]]), 5)
    with pytest.raises(ValueError, match=r"\[0, d\)"):
        check_supports("supports", np.array([[-1, 2]]), 5)
    with pytest.raises(ValueError, match="integer"):
        check_supports("supports", np.array([[0.0, 1.0]]), 5)
    with pytest.raises(ValueError, match="2-D"):
        check_supports("supports", np.array([0, 1]), 5)


def test_sparse_teacher_validates_fields():
    with pytest.raises(ValueError, match="weights"):
        SparseTeacher(weights=np.zeros((3, 2)), supports=np.array([[0, 1], [1, 2]]), d=4)
    with pytest.raises(ValueError, match="weights"):
        SparseTeacher(weights=np.array([[np.nan, 0.0], [0.0, 0.0]]), supports=np.array([[0, 1], [1, 2]]), d=4)


# --------------------------------------------------------------------------
# mask M and tilde W (Eq. 4)
# --------------------------------------------------------------------------


def test_mask_and_embed_by_hand():
    S = np.array([[0, 2], [1, 3], [0, 3]])
    M = mask_matrix(S, 4)
    np.testing.assert_array_equal(M, [[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1]])
    W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(embed(W, S, 4), [[1, 0, 3], [0, 2, 0], [4, 0, 0], [0, 5, 6]])


@pytest.mark.parametrize("seed", range(3))
def test_mask_embed_consistency(seed):
    p = make_problem(K=5, d=18, r_star=2, r=6, N=10, seed=seed)
    W = np.random.default_rng(seed).standard_normal((p.r, p.K))
    M = p.mask()
    Wt = embed(W, p.supports, p.d)
    assert M.shape == Wt.shape == (p.d, p.K)
    np.testing.assert_array_equal(M.sum(axis=0), np.full(p.K, p.r))
    np.testing.assert_array_equal(M * Wt, Wt)  # M ⊙ tilde W = tilde W
    np.testing.assert_array_equal((Wt != 0), M.astype(bool))  # Gaussian W has no zeros
    for j in range(p.K):
        np.testing.assert_array_equal(Wt[p.supports[j], j], W[:, j])  # inverse of embed
    np.testing.assert_allclose(np.maximum(p.X @ Wt, 0).mean(axis=1), loop_student_output(W, p.supports, p.X), rtol=1e-13)
    # teacher: M* ⊆ M, and W* embeds to the teacher's own tilde W*
    M_star = p.teacher.mask()
    assert np.all(M_star <= M)
    assert M_star.sum() == p.K * p.teacher.r_star
    np.testing.assert_array_equal(embed(p.W_star, p.supports, p.d), p.teacher.dense_weights())
    np.testing.assert_array_equal(p.teacher.dense_weights() * M_star, p.teacher.dense_weights())


def test_embed_rejects_wrong_shape():
    S = np.array([[0, 2], [1, 3]])
    with pytest.raises(ValueError, match="W"):
        embed(np.zeros((3, 2)), S, 4)


# --------------------------------------------------------------------------
# make_problem
# --------------------------------------------------------------------------


@pytest.mark.parametrize("K,d,r_star,r,N", [(1, 1, 1, 1, 1), (3, 20, 2, 5, 40), (4, 10, 10, 10, 7), (2, 30, 1, 30, 3)])
def test_make_problem_shapes(K, d, r_star, r, N):
    p = make_problem(K=K, d=d, r_star=r_star, r=r, N=N, seed=0)
    assert isinstance(p, Problem)
    assert p.X.shape == (N, d) and p.y.shape == (N,) and p.y_clean.shape == (N,)
    assert p.supports.shape == (K, r) and p.W_star.shape == (r, K)
    assert p.teacher.supports.shape == (K, r_star) and p.teacher.weights.shape == (r_star, K)
    assert (p.N, p.d, p.K, p.r) == (N, d, K, r)
    G = p.gathered()
    assert G.shape == (K, N, r) and G.flags["C_CONTIGUOUS"]
    for j in range(K):
        np.testing.assert_array_equal(G[j], p.X[:, p.supports[j]])
    assert p.sigma == 0.0
    np.testing.assert_array_equal(p.y, p.y_clean)


@pytest.mark.parametrize("seed", range(3))
def test_truth_has_zero_noiseless_risk_and_gradient(seed):
    p = make_problem(K=4, d=30, r_star=3, r=8, N=200, seed=seed)
    np.testing.assert_allclose(p.y_clean, loop_teacher_output(p.teacher, p.X), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(loop_student_output(p.W_star, p.supports, p.X), p.y, rtol=1e-13, atol=1e-15)
    assert empirical_risk(p.W_star, p.X, p.y, p.supports) < 1e-30
    assert np.abs(risk_gradient(p.W_star, p.X, p.y, p.supports)).max() < 1e-15
    # and W* is not a trivial point: moving off it raises the risk
    assert empirical_risk(p.W_star + 0.01, p.X, p.y, p.supports) > 1e-7


def test_make_problem_inputs_are_standard_gaussian():
    p = make_problem(K=1, d=8, r_star=1, r=1, N=20000, seed=3)
    assert np.abs(p.X.mean(axis=0)).max() < 0.05
    np.testing.assert_allclose(np.cov(p.X, rowvar=False), np.eye(8), atol=0.05)


def test_make_problem_is_reproducible():
    a = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.1, seed=42)
    b = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.1, seed=42)
    c = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.1, seed=np.random.default_rng(42))
    for other in (b, c):
        for name in ("X", "y", "y_clean", "supports", "W_star"):
            np.testing.assert_array_equal(getattr(a, name), getattr(other, name))
        np.testing.assert_array_equal(a.teacher.weights, other.teacher.weights)
        np.testing.assert_array_equal(a.teacher.supports, other.teacher.supports)
        assert a.sigma == other.sigma


def test_make_problem_different_seeds_differ():
    a = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.1, seed=1)
    b = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.1, seed=2)
    assert not np.array_equal(a.X, b.X)
    assert not np.array_equal(a.y, b.y)
    assert not np.array_equal(a.teacher.weights, b.teacher.weights)
    assert not np.array_equal(a.teacher.supports, b.teacher.supports)
    assert not np.array_equal(a.supports, b.supports)


def test_noise_does_not_change_the_rest_of_the_problem():
    a = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.0, seed=9)
    b = make_problem(K=3, d=15, r_star=2, r=5, N=30, noise_level=0.2, seed=9)
    for name in ("X", "y_clean", "supports", "W_star"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.y, b.y)


@pytest.mark.parametrize("s", [1e-3, 0.1, 0.5])
def test_noise_level(s):
    p = make_problem(K=3, d=20, r_star=4, r=6, N=20000, noise_level=s, seed=5)
    energy = np.sqrt(np.mean(p.y_clean**2))
    assert energy > 0
    assert p.sigma == pytest.approx(s * energy, rel=1e-12)
    assert p.meta["noise_level"] == s
    xi = p.y - p.y_clean
    # std of a sample of 20000 Gaussians: relative s.e. ~ 1/sqrt(2N) = 0.5%; allow 3%
    assert xi.std() == pytest.approx(p.sigma, rel=0.03)
    assert abs(xi.mean()) < 5 * p.sigma / np.sqrt(p.N)


def test_noise_std_formula():
    clean = np.array([3.0, -4.0, 0.0, 0.0])
    assert noise_std(clean, 0.2) == pytest.approx(0.2 * np.sqrt(25 / 4))
    assert noise_std(clean, 0.0) == 0.0
    with pytest.raises(ValueError, match="noise_level"):
        noise_std(clean, -0.1)


def test_with_supports_keeps_data_and_recomputes_wstar():
    from lthbook.risk import empirical_risk
    from lthbook.teacher import dense_supports, with_supports

    p = make_problem(K=3, d=12, r_star=3, r=3, N=50, seed=4)
    dense = with_supports(p, dense_supports(3, 12))
    assert dense.r == 12 and np.array_equal(dense.X, p.X) and np.array_equal(dense.y, p.y)
    assert np.allclose(embed(dense.W_star, dense.supports, 12), p.teacher.dense_weights())
    assert empirical_risk(dense.W_star, dense.X, dense.y, dense.supports) < 1e-25
    dropped = int(p.teacher.supports[0][0])  # an input teacher neuron 0 needs
    missing = np.stack([np.setdiff1d(np.arange(12), [dropped])] * 3)
    with pytest.raises(ValueError, match="Omega_0"):
        with_supports(p, missing)
    with pytest.raises(ValueError, match="K=3"):
        with_supports(p, dense_supports(2, 12))


def _fields(p):
    return dict(X=p.X, y=p.y, y_clean=p.y_clean, teacher=p.teacher, supports=p.supports, W_star=p.W_star,
                sigma=p.sigma)


@pytest.mark.parametrize("change, name", [
    (lambda f: {**f, "X": np.where(np.arange(f["X"].size).reshape(f["X"].shape) == 7, np.nan, f["X"])}, "X"),
    (lambda f: {**f, "X": f["X"] * np.inf}, "X"),
    (lambda f: {**f, "y": f["y"][:-1]}, "y"),  # was a torch RuntimeError deep inside AGD
    (lambda f: {**f, "y": np.full_like(f["y"], np.nan)}, "y"),
    (lambda f: {**f, "y_clean": f["y_clean"][:, None]}, "y_clean"),
    (lambda f: {**f, "X": f["X"][:, :-1]}, "X"),
    (lambda f: {**f, "X": f["X"][0]}, "X"),
    (lambda f: {**f, "W_star": f["W_star"][:-1]}, "W_star"),
    (lambda f: {**f, "W_star": f["W_star"] + np.nan}, "W_star"),
    (lambda f: {**f, "supports": f["supports"][:-1]}, "supports"),
    (lambda f: {**f, "supports": f["supports"] + 1000}, "supports"),
    (lambda f: {**f, "sigma": -1.0}, "sigma"),
    (lambda f: {**f, "sigma": float("nan")}, "sigma"),
    (lambda f: {**f, "teacher": "teacher"}, "teacher"),
    (lambda f: {**f, "X": [["a"]]}, "X"),
])
def test_problem_built_directly_is_validated(change, name):
    """Problem(...) skipped make_problem's checks: a NaN X was reported as "diverged" later."""
    good = make_problem(K=3, d=12, r_star=2, r=4, N=30, noise_level=0.1, seed=0)
    Problem(**_fields(good))  # the same fields pass
    with pytest.raises(ValueError, match=name):
        Problem(**change(_fields(good)))


def test_problem_validation_keeps_make_problem_bitwise_and_converts_lists():
    p = make_problem(K=3, d=12, r_star=2, r=4, N=30, noise_level=0.1, seed=5)
    q = Problem(**_fields(p))
    for name in ("X", "y", "y_clean", "W_star"):
        assert getattr(q, name) is getattr(p, name)  # float64 arrays are not copied
    lists = Problem(**{**_fields(p), "X": p.X.tolist(), "y": p.y.astype(np.float32)})
    assert lists.X.dtype == np.float64 and np.array_equal(lists.X, p.X) and lists.y.dtype == np.float64


def test_make_problem_refuses_sizes_beyond_the_memory(monkeypatch):
    """make_problem(d=10**9) was killed by the out-of-memory killer instead of refusing."""
    from lthbook import _validation
    from lthbook.teacher import make_problem_from_teacher, problem_memory_bytes

    assert problem_memory_bytes(5, 10**9, 20, 50, 300) >= 300 * 10**9 * 8  # Python ints: no overflow
    if _validation.available_memory() is not None:  # the real check, with the real free memory
        with pytest.raises(ValueError, match=r"make_problem\(K=5, d=1000000000.*would need about .* GiB of memory, "
                                             r"but only .* is available"):
            make_problem(K=5, d=10**9, r_star=20, r=50, N=300, seed=0)
        with pytest.raises(ValueError, match=r"N=1000000000000"):
            make_problem(K=5, d=100, r_star=20, r=50, N=10**12, seed=0)
    monkeypatch.setattr(_validation, "available_memory", lambda: (300 * 2**20, "a test"))
    with pytest.raises(ValueError, match=r"would need about 385.7 MiB of memory, but only 300.0 MiB is available "
                                         r"\(a test\); X alone is N\*d\*8 = 400000000 bytes; reduce N or d"):
        make_problem(K=2, d=1000, r_star=2, r=2, N=50000, seed=0)
    teacher = sample_teacher(2, 1000, 2, seed=0)
    with pytest.raises(ValueError, match=r"make_problem_from_teacher\(K=2, d=1000"):
        make_problem_from_teacher(teacher, r=2, N=50000, seed=0)
    assert make_problem(K=2, d=10, r_star=2, r=2, N=50, seed=0).N == 50  # small problems never look it up
