"""Tests for lthbook.risk: Eq. (2), its gradient and Hessian, and the batched kernels.

Every closed form is checked against an independent computation: a plain numpy
loop over samples and neurons, the masked dense form of Eq. (4), torch autograd
and central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lthbook.risk import (
    batched_gradient,
    batched_hvp,
    batched_preactivations,
    batched_residual,
    batched_risk,
    batched_top_eigenvalue,
    dense_risk,
    empirical_risk,
    risk_gradient,
    risk_hessian,
)
from lthbook.teacher import embed, make_problem, mask_matrix

# --------------------------------------------------------------------------
# independent reference implementations
# --------------------------------------------------------------------------


def loop_risk(W, X, y, supports):
    """Eq. (2) by explicit loops over samples n and neurons j."""
    N = X.shape[0]
    K, r = supports.shape
    total = 0.0
    for n in range(N):
        out = 0.0
        for j in range(K):
            z = 0.0
            for i in range(r):
                z += W[i, j] * X[n, supports[j, i]]
            out += max(z, 0.0)
        out /= K
        total += (out - y[n]) ** 2
    return total / (2 * N)


def torch_risk(W, X, y, supports):
    """Eq. (2) written directly in torch, for autograd (``W`` is an ``(r, K)`` tensor)."""
    Xs = torch.from_numpy(X[:, supports])  # (N, K, r)
    Z = torch.einsum("nkr,rk->nk", Xs, W)
    out = torch.relu(Z).mean(dim=1)
    return 0.5 * ((out - torch.from_numpy(y)) ** 2).mean()


def autograd_hessian(W, X, y, supports):
    """Hessian by torch autograd, laid out as vec(W) = [w_1; ...; w_K] (columns stacked)."""
    r, K = W.shape
    H4 = torch.autograd.functional.hessian(lambda V: torch_risk(V, X, y, supports), torch.from_numpy(W.copy()))
    # H4[i, j, m, l] = d^2 f / dW_ij dW_ml  ->  entry (j*r + i, l*r + m)
    return H4.permute(1, 0, 3, 2).reshape(K * r, K * r).numpy()


def vec(W):
    """vec(W) = columns stacked (Fortran order)."""
    return W.reshape(-1, order="F")


def generic_point(problem, seed, scale=0.3, margin=1e-4):
    """A random W near W* whose preactivations all stay at least ``margin`` away from the ReLU kink."""
    rng = np.random.default_rng(seed)
    Xs = problem.X[:, problem.supports]
    for _ in range(200):
        W = problem.W_star + scale * np.linalg.norm(problem.W_star) / np.sqrt(problem.W_star.size) * rng.standard_normal(
            problem.W_star.shape
        )
        Z = np.einsum("nkr,rk->nk", Xs, W)
        if np.abs(Z).min() > margin:
            return W
    raise AssertionError("could not find a point away from the kinks")


@pytest.fixture(scope="module")
def noisy_problem():
    return make_problem(K=3, d=20, r_star=3, r=5, N=120, noise_level=0.1, seed=7)


@pytest.fixture(scope="module")
def problem_set():
    """P = 2 data sets sharing (K, N, r) but with different d, teachers, masks and noise."""
    return [
        make_problem(K=3, d=12, r_star=2, r=4, N=80, noise_level=0.05, seed=1),
        make_problem(K=3, d=15, r_star=4, r=4, N=80, noise_level=0.0, seed=2),
    ]


def to_batched(problems, Ws):
    """Internal layout: Xg (P, K, N, r), y (P, N), V (P, K, r, B) from lists of problems and (B, r, K) weights."""
    Xg = torch.from_numpy(np.stack([p.gathered() for p in problems]))
    y = torch.from_numpy(np.stack([p.y for p in problems]))
    V = torch.from_numpy(np.stack([np.stack([W.T for W in Wp], axis=-1) for Wp in Ws]))
    return Xg, y, V


# --------------------------------------------------------------------------
# Eq. (2) and Eq. (4)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_empirical_risk_matches_loop(noisy_problem, seed):
    p = noisy_problem
    W = np.random.default_rng(seed).standard_normal(p.W_star.shape)  # far from W*: many inactive units
    expected = loop_risk(W, p.X, p.y, p.supports)
    assert empirical_risk(W, p.X, p.y, p.supports) == pytest.approx(expected, rel=1e-12)


def test_empirical_risk_at_truth_is_half_mean_squared_noise(noisy_problem):
    p = noisy_problem
    expected = 0.5 * np.mean((p.y - p.y_clean) ** 2)
    assert expected > 0
    assert empirical_risk(p.W_star, p.X, p.y, p.supports) == pytest.approx(expected, rel=1e-10)


def test_empirical_risk_with_zero_weights():
    p = make_problem(K=2, d=6, r_star=2, r=3, N=30, seed=3)
    # all outputs are phi(0) = 0, so f = mean(y^2)/2
    assert empirical_risk(np.zeros((3, 2)), p.X, p.y, p.supports) == pytest.approx(0.5 * np.mean(p.y**2), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_risk_agrees_with_masked_form(noisy_problem, seed):
    """Eq. (2) with W (r x K) equals Eq. (4) with tilde W = embed(W) under the mask M."""
    p = noisy_problem
    W = np.random.default_rng(seed).standard_normal(p.W_star.shape)
    W_tilde = embed(W, p.supports, p.d)
    M = mask_matrix(p.supports, p.d)
    assert np.array_equal(M * W_tilde, W_tilde)
    assert dense_risk(W_tilde, p.X, p.y, M) == pytest.approx(empirical_risk(W, p.X, p.y, p.supports), rel=1e-12)
    assert dense_risk(W_tilde, p.X, p.y, M) == pytest.approx(loop_risk(W, p.X, p.y, p.supports), rel=1e-12)


def test_dense_risk_for_dense_network_equals_plain_two_layer_risk():
    p = make_problem(K=3, d=6, r_star=2, r=6, N=50, noise_level=0.1, seed=4)  # r = d: dense student
    W_tilde = np.random.default_rng(0).standard_normal((6, 3))
    expected = 0.5 * np.mean((np.maximum(p.X @ W_tilde, 0).mean(axis=1) - p.y) ** 2)
    assert dense_risk(W_tilde, p.X, p.y, np.ones((6, 3))) == pytest.approx(expected, rel=1e-12)
    W = np.stack([W_tilde[p.supports[j], j] for j in range(3)], axis=1)
    assert empirical_risk(W, p.X, p.y, p.supports) == pytest.approx(expected, rel=1e-12)


def test_dense_risk_rejects_weights_outside_mask(noisy_problem):
    p = noisy_problem
    W_tilde = embed(p.W_star, p.supports, p.d)
    M = mask_matrix(p.supports, p.d)
    i = int(np.flatnonzero(M[:, 0] == 0)[0])
    W_tilde[i, 0] = 1.0
    with pytest.raises(ValueError, match="M ⊙"):
        dense_risk(W_tilde, p.X, p.y, M)
    with pytest.raises(ValueError, match="mask"):
        dense_risk(W_tilde, p.X, p.y, M[:, :-1])


# --------------------------------------------------------------------------
# gradient
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_autograd(noisy_problem, seed):
    p = noisy_problem
    W = generic_point(p, seed)
    Wt = torch.from_numpy(W.copy()).requires_grad_(True)
    torch_risk(Wt, p.X, p.y, p.supports).backward()
    G = risk_gradient(W, p.X, p.y, p.supports)
    assert G.shape == W.shape
    np.testing.assert_allclose(G, Wt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("seed", [3, 4])
def test_gradient_matches_central_differences(noisy_problem, seed):
    p = noisy_problem
    W = generic_point(p, seed)
    G = risk_gradient(W, p.X, p.y, p.supports)
    h = 1e-6
    fd = np.zeros_like(W)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            E = np.zeros_like(W)
            E[i, j] = h
            fd[i, j] = (empirical_risk(W + E, p.X, p.y, p.supports) - empirical_risk(W - E, p.X, p.y, p.supports)) / (2 * h)
    assert np.abs(G).max() > 1e-3  # not a trivial comparison
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-9)


def test_gradient_vanishes_at_noiseless_truth():
    p = make_problem(K=4, d=20, r_star=3, r=6, N=100, seed=5)
    assert np.linalg.norm(risk_gradient(p.W_star, p.X, p.y, p.supports)) < 1e-13
    # and is clearly non-zero elsewhere
    W = p.W_star + 0.05
    assert np.linalg.norm(risk_gradient(W, p.X, p.y, p.supports)) > 1e-4


# --------------------------------------------------------------------------
# Hessian
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_hessian_matches_autograd(noisy_problem, seed):
    p = noisy_problem
    W = generic_point(p, seed)
    H = risk_hessian(W, p.X, p.y, p.supports)
    r, K = W.shape
    assert H.shape == (r * K, r * K)
    np.testing.assert_allclose(H, autograd_hessian(W, p.X, p.y, p.supports), rtol=1e-10, atol=1e-14)


def test_hessian_matches_finite_differences_of_gradient(noisy_problem):
    p = noisy_problem
    W = generic_point(p, 5)
    r, K = W.shape
    H = risk_hessian(W, p.X, p.y, p.supports)
    h = 1e-6
    H_fd = np.zeros_like(H)
    for j in range(K):
        for i in range(r):
            E = np.zeros_like(W)
            E[i, j] = h
            dg = risk_gradient(W + E, p.X, p.y, p.supports) - risk_gradient(W - E, p.X, p.y, p.supports)
            H_fd[:, j * r + i] = vec(dg) / (2 * h)
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-9)


def test_hessian_vec_ordering_convention(noisy_problem):
    """Entry (j*r + i, l*r + m) is d^2 f / dW_ij dW_ml, with vec(W) = columns stacked.

    Checked entry by entry against a mixed central difference of the risk, on
    entries where the column-stacked and row-stacked layouts disagree.
    """
    p = noisy_problem
    W = generic_point(p, 6)
    r, K = W.shape
    assert r != K
    H = risk_hessian(W, p.X, p.y, p.supports)
    f = lambda V: empirical_risk(V, p.X, p.y, p.supports)  # noqa: E731
    h = 1e-4  # the risk is exactly quadratic within a cell, so a large step is fine
    checked_distinct = 0
    for (i, j), (m, l) in [((0, 0), (1, 0)), ((2, 1), (4, 1)), ((1, 0), (3, 2)), ((4, 2), (0, 1)), ((3, 1), (3, 1))]:
        Eij = np.zeros_like(W)
        Eij[i, j] = h
        Eml = np.zeros_like(W)
        Eml[m, l] = h
        mixed = (f(W + Eij + Eml) - f(W + Eij - Eml) - f(W - Eij + Eml) + f(W - Eij - Eml)) / (4 * h * h)
        assert H[j * r + i, l * r + m] == pytest.approx(mixed, rel=1e-5, abs=1e-10)
        # the row-stacked (C-order) index would point somewhere else with a different value
        if abs(H[i * K + j, m * K + l] - mixed) > 1e-6:
            checked_distinct += 1
    assert checked_distinct >= 2

    # quadratic form and Hessian-vector product along a random direction
    U = np.random.default_rng(0).standard_normal(W.shape)
    u = vec(U)
    second = (f(W + 1e-5 * U) - 2 * f(W) + f(W - 1e-5 * U)) / 1e-10
    assert u @ H @ u == pytest.approx(second, rel=1e-4)
    hvp_fd = (risk_gradient(W + 1e-6 * U, p.X, p.y, p.supports) - risk_gradient(W - 1e-6 * U, p.X, p.y, p.supports)) / 2e-6
    np.testing.assert_allclose(H @ u, vec(hvp_fd), rtol=1e-6, atol=1e-9)
    # a row-stacked vec would not reproduce it
    assert not np.allclose(H @ U.reshape(-1), vec(hvp_fd), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_symmetric_psd(noisy_problem, seed):
    p = noisy_problem
    W = np.random.default_rng(seed).standard_normal(p.W_star.shape)
    H = risk_hessian(W, p.X, p.y, p.supports)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-15)
    ev = np.linalg.eigvalsh(H)
    assert ev[-1] > 0
    assert ev[0] >= -1e-12 * ev[-1]


def test_hessian_does_not_depend_on_labels(noisy_problem):
    p = noisy_problem
    W = generic_point(p, 8)
    H1 = risk_hessian(W, p.X, p.y, p.supports)
    H2 = risk_hessian(W, p.X, p.y_clean + 3.0, p.supports)
    np.testing.assert_array_equal(H1, H2)


# --------------------------------------------------------------------------
# batched kernels
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(problem_set):
    rng = np.random.default_rng(11)
    Ws = [[p.W_star + 0.2 * rng.standard_normal(p.W_star.shape) for _ in range(3)] for p in problem_set]  # B = 3
    return problem_set, Ws, to_batched(problem_set, Ws)


def test_batched_risk_and_gradient_match_single(batch):
    problems, Ws, (Xg, y, V) = batch
    P, B = len(problems), len(Ws[0])
    R = batched_risk(Xg, y, V)
    G = batched_gradient(Xg, y, V)
    assert R.shape == (P, B)
    assert G.shape == V.shape
    for pi, p in enumerate(problems):
        for b, W in enumerate(Ws[pi]):
            assert R[pi, b].item() == pytest.approx(loop_risk(W, p.X, p.y, p.supports), rel=1e-12)
            assert R[pi, b].item() == pytest.approx(empirical_risk(W, p.X, p.y, p.supports), rel=1e-13)
            np.testing.assert_allclose(G[pi, :, :, b].numpy().T, risk_gradient(W, p.X, p.y, p.supports), rtol=1e-12, atol=1e-15)


def test_batched_residual_and_preactivations(batch):
    problems, Ws, (Xg, y, V) = batch
    Z = batched_preactivations(Xg, V)
    e = batched_residual(Z, y)
    assert Z.shape == (len(problems), problems[0].K, problems[0].N, len(Ws[0]))
    p, W = problems[1], Ws[1][2]
    Zref = np.einsum("nkr,rk->nk", p.X[:, p.supports], W)
    np.testing.assert_allclose(Z[1, :, :, 2].numpy().T, Zref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(e[1, :, 2].numpy(), np.maximum(Zref, 0).mean(axis=1) - p.y, rtol=1e-12, atol=1e-14)


def test_batched_hvp_matches_hessian(batch):
    problems, Ws, (Xg, y, V) = batch
    active = (batched_preactivations(Xg, V) > 0).to(Xg.dtype)
    U = torch.randn(V.shape, generator=torch.Generator().manual_seed(0), dtype=V.dtype)
    HU = batched_hvp(Xg, active, U)
    for pi, p in enumerate(problems):
        for b, W in enumerate(Ws[pi]):
            H = risk_hessian(W, p.X, p.y, p.supports)
            u = vec(U[pi, :, :, b].numpy().T)
            np.testing.assert_allclose(vec(HU[pi, :, :, b].numpy().T), H @ u, rtol=1e-10, atol=1e-14)


def test_batched_top_eigenvalue_matches_eigvalsh(batch):
    problems, Ws, (Xg, y, V) = batch
    lam = batched_top_eigenvalue(Xg, V)
    assert lam.shape == (len(problems), len(Ws[0]))
    for pi, p in enumerate(problems):
        for b, W in enumerate(Ws[pi]):
            top = np.linalg.eigvalsh(risk_hessian(W, p.X, p.y, p.supports))[-1]
            assert lam[pi, b].item() == pytest.approx(top, rel=1e-3)
            # a Rayleigh quotient never exceeds lambda_max
            assert lam[pi, b].item() <= top * (1 + 1e-10)


def test_batched_top_eigenvalue_is_deterministic(batch):
    _, _, (Xg, _, V) = batch
    torch.testing.assert_close(batched_top_eigenvalue(Xg, V, seed=3), batched_top_eigenvalue(Xg, V, seed=3), rtol=0, atol=0)


# --------------------------------------------------------------------------
# input checks of the numpy wrappers
# --------------------------------------------------------------------------


def test_single_functions_validate_inputs(noisy_problem):
    p = noisy_problem
    with pytest.raises(ValueError, match="W"):
        empirical_risk(p.W_star.T, p.X, p.y, p.supports)
    with pytest.raises(ValueError, match="y"):
        risk_gradient(p.W_star, p.X, p.y[:-1], p.supports)
    X = p.X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        risk_hessian(p.W_star, X, p.y, p.supports)
    with pytest.raises(ValueError, match="X"):
        empirical_risk(p.W_star, p.X[0], p.y, p.supports)
    with pytest.raises(ValueError, match="supports"):
        empirical_risk(p.W_star, p.X, p.y, p.supports + p.d)


def test_transposed_data_gives_bitwise_equal_gradient_and_hvp():
    # the AGD loop passes a contiguous copy of Xg^T; it must not change a single bit
    from lthbook.risk import batched_gradient, batched_hvp, transposed

    gen = torch.Generator().manual_seed(0)
    Xg = torch.randn(2, 3, 40, 7, generator=gen, dtype=torch.float64)
    V = torch.randn(2, 3, 7, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 40, generator=gen, dtype=torch.float64)
    XgT = transposed(Xg)
    assert XgT.is_contiguous() and XgT.shape == (2, 3, 7, 40)
    assert torch.equal(batched_gradient(Xg, y, V, XgT), batched_gradient(Xg, y, V))
    active = ((Xg @ V) > 0).to(Xg.dtype)
    assert torch.equal(batched_hvp(Xg, active, V, XgT), batched_hvp(Xg, active, V))


# --------------------------------------------------------------------------
# the dense kernel (one product with X over all neurons) against the gathered one
# --------------------------------------------------------------------------


def _supports_cases():
    """(d, supports) with r < d and disjoint supports, overlapping supports, identical supports,
    r = d, and supports that leave most inputs unused (union much smaller than d)."""
    rng = np.random.default_rng(5)
    return {
        "disjoint r<d": (40, np.arange(24).reshape(3, 8)),
        "overlapping r<d": (30, np.stack([np.sort(rng.choice(30, 12, replace=False)) for _ in range(3)])),
        "identical": (20, np.tile(np.arange(3, 13), (3, 1))),
        "r=d": (15, np.stack([rng.permutation(15) for _ in range(3)])),
        "sparse union": (200, np.array([[0, 5, 9, 199], [5, 9, 60, 61], [1, 2, 3, 199]])),
    }


@pytest.mark.parametrize("case", list(_supports_cases()))
def test_dense_kernel_matches_gathered_and_the_loop(case):
    from lthbook.risk import DenseData, GatheredData

    d, supports = _supports_cases()[case]
    K, r = supports.shape
    N, P, B = 60, 2, 3
    rng = np.random.default_rng(1)
    X = rng.standard_normal((P, N, d))
    # the second data set uses other supports, so the two unions (and their sizes) differ
    sup = np.stack([supports, np.stack([np.sort(rng.choice(d, r, replace=False)) for _ in range(K)])])
    y = rng.standard_normal((P, N))
    V = torch.from_numpy(rng.standard_normal((P, K, r, B)))
    Xg = torch.from_numpy(np.stack([np.transpose(X[p][:, sup[p]], (1, 0, 2)) for p in range(P)]))
    gathered = GatheredData(Xg)
    dense = DenseData(torch.from_numpy(X), torch.from_numpy(sup))
    assert dense.width == max(np.unique(s).size for s in sup)
    yt = torch.from_numpy(y)
    G = dense.gradient(yt, V)
    torch.testing.assert_close(G, gathered.gradient(yt, V), rtol=1e-12, atol=1e-14)
    for p in range(P):  # against the numpy form of the module docstring
        for b in range(B):
            W = V[p, :, :, b].numpy().T
            np.testing.assert_allclose(G[p, :, :, b].numpy().T, risk_gradient(W, X[p], y[p], sup[p]), rtol=1e-11,
                                       atol=1e-14)
    U = torch.from_numpy(rng.standard_normal((P, K, r, B)))
    torch.testing.assert_close(dense.hvp(dense.active(V), U), gathered.hvp(gathered.active(V), U), rtol=1e-12,
                               atol=1e-14)
    torch.testing.assert_close(batched_top_eigenvalue(dense, V), batched_top_eigenvalue(gathered, V), rtol=1e-9,
                               atol=0)
    # dropping data sets and changing precision keep the layout consistent
    keep = torch.tensor([False, True])
    torch.testing.assert_close(dense.rows(keep).gradient(yt[keep], V[keep]), G[keep], rtol=1e-12, atol=1e-15)
    G32 = dense.to(torch.float32).gradient(yt.float(), V.float())
    torch.testing.assert_close(G32.double(), G, rtol=1e-4, atol=1e-5)


def test_dense_kernel_accepts_data_sets_of_different_d():
    from lthbook.risk import DenseData, GatheredData

    rng = np.random.default_rng(2)
    Xs = [rng.standard_normal((30, 12)), rng.standard_normal((30, 20))]
    sup = np.array([[[0, 3, 11], [3, 4, 5]], [[19, 2, 7], [8, 9, 10]]])
    V = torch.from_numpy(rng.standard_normal((2, 2, 3, 1)))
    y = torch.from_numpy(rng.standard_normal((2, 30)))
    dense = DenseData([torch.from_numpy(x) for x in Xs], torch.from_numpy(sup))
    Xg = torch.from_numpy(np.stack([np.transpose(x[:, s], (1, 0, 2)) for x, s in zip(Xs, sup)]))
    torch.testing.assert_close(dense.gradient(y, V), GatheredData(Xg).gradient(y, V), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("multiple", [1, 3, 4, 8])
def test_dense_gradient_row_padding_changes_only_rounding(monkeypatch, multiple):
    """On CPU the dense products get zero rows up to a multiple of GEMM_ROW_MULTIPLE: for every
    number of weight matrices B (K B rows below, at and above a multiple) the gradient is the
    numpy loop's to rounding, and the padding never shows in the result's shape."""
    import lthbook.risk as risk_module
    from lthbook.risk import DenseData, padded_rows

    monkeypatch.setattr(risk_module, "GEMM_ROW_MULTIPLE", multiple)
    rng = np.random.default_rng(11)
    P, N, d, K, r = 2, 40, 25, 3, 7
    X = rng.standard_normal((P, N, d))
    sup = np.stack([np.stack([np.sort(rng.choice(d, r, replace=False)) for _ in range(K)]) for _ in range(P)])
    y = rng.standard_normal((P, N))
    dense = DenseData(torch.from_numpy(X), torch.from_numpy(sup))
    for B in range(1, 6):
        rows = padded_rows(K * B, torch.device("cpu"))
        assert rows % multiple == 0 and K * B <= rows < K * B + multiple
        V = torch.from_numpy(rng.standard_normal((P, K, r, B)))
        G = dense.gradient(torch.from_numpy(y), V)
        assert G.shape == (P, K, r, B)
        for p in range(P):
            for b in range(B):
                np.testing.assert_allclose(G[p, :, :, b].numpy().T, risk_gradient(V[p, :, :, b].numpy().T, X[p], y[p],
                                                                                 sup[p]), rtol=1e-11, atol=1e-14)
    assert padded_rows(5, torch.device("cuda")) == 5  # only CPU GEMMs are padded


def test_dense_gradient_padding_rows_are_not_read():
    """Null test of the padding: the padded rows of the products are cut off before the gradient
    is read, so garbage written into them (here by a patched weight layout) must not change it,
    while garbage in a real row must."""
    import lthbook.risk as risk_module
    from lthbook.risk import DenseData

    rng = np.random.default_rng(12)
    P, N, d, K, r, B = 1, 30, 12, 3, 4, 1  # 3 rows -> 4 with the default multiple
    X = torch.from_numpy(rng.standard_normal((P, N, d)))
    sup = torch.from_numpy(np.stack([np.stack([np.sort(rng.choice(d, r, replace=False)) for _ in range(K)])]))
    y = torch.from_numpy(rng.standard_normal((P, N)))
    V = torch.from_numpy(rng.standard_normal((P, K, r, B)))
    dense = DenseData(X, sup)
    G = dense.gradient(y, V)
    original = DenseData._dense_t

    def garbage(row):
        def dense_t(self, V, rows):
            WT = original(self, V, rows)
            WT[:, row] = 7.0
            return WT
        return dense_t

    assert risk_module.padded_rows(K * B, torch.device("cpu")) == 4
    with pytest.MonkeyPatch.context() as m:
        m.setattr(DenseData, "_dense_t", garbage(3))  # the padded row
        torch.testing.assert_close(dense.gradient(y, V), G, rtol=1e-12, atol=1e-15)
        m.setattr(DenseData, "_dense_t", garbage(0))  # a real row: the gradient changes
        assert not torch.allclose(dense.gradient(y, V), G)
