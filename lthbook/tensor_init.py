"""Tensor initialization of §4: method-of-moments estimate of ``W*`` to start Algorithm 1.

The paper starts AGD from a ``W(0)`` produced by "a tensor initialization method,
which is built upon Algorithm 1 in (Zhong et al., 2017)", with ``x`` in the
moments of Zhong et al.'s Definition 5.1 replaced by
``tilde x = K^{-1/2} sum_j x_{Omega_j} in R^r`` (§4; the details are in the
paper's Appendix A, which is not reproduced here). This module implements
Zhong et al.'s Algorithm 1 for ReLU and two ways of applying it to the pruned
network.

**Moments** (Zhong et al. 2017, Definition 5.1).
For ``y = (1/K) sum_j phi(w_j^T x)`` with ``x ~ N(0, I_d)``, ``sigma_j = ||w_j||``
and ``bar w_j = w_j / sigma_j``, Stein's lemma gives, for the Hermite tensors
``He_1(x) = x``, ``He_2(x) = x⊗x - I``, ``He_3(x) = x⊗3 - x⊗~I`` and
``He_4(x) = x⊗4 - (x⊗x)⊗~I + I⊗~I`` (``⊗~`` = sum over the distinct placements
of the indices: 3, 6 and 3 terms)::

    M_k = E[y He_k(x)] = (1/K) sum_j m_k(sigma_j) bar w_j^{⊗k},
    m_k(sigma) = E[phi(sigma z) He_k(z)],  z ~ N(0, 1).

For ReLU (:func:`relu_hermite_coefficients`)
``m_0..m_4 = sigma * (1/sqrt(2 pi), 1/2, 1/sqrt(2 pi), 0, -1/sqrt(2 pi))``. So

* ``M1 = (1/(2K)) sum_j w_j`` (odd: it fixes the signs, since ``phi(w^T x)`` and
  ``phi(-w^T x)`` differ by ``w^T x``);
* ``M2 = (1/K) sum_j sigma_j/sqrt(2 pi) bar w_j bar w_j^T`` is positive
  semi-definite of rank ``K``: its top-``K`` eigenvectors span the weights;
* ``M3 = 0`` (ReLU's third Hermite coefficient vanishes), so the fourth moment
  ``M4 = -(1/K) sum_j sigma_j/sqrt(2 pi) bar w_j^{⊗4}`` supplies the directions.

**Algorithm** (Zhong et al. 2017, Algorithm 1, specialised to ReLU). Labels
enter ``M2`` and ``M4`` with their least-squares affine part removed
(``E[(a + b^T x) He_k(x)] = 0`` for ``k >= 2``: same population moments, far
less sampling noise).

1. ``V`` (``D x K``): top-``K`` eigenvectors of the empirical ``M2`` by absolute eigenvalue.
2. ``T4 = M4(V, V, V, V)`` (``K^4``) from the projected samples ``V^T x_n``; its
   reductions ``R = M4(V, V, V, alpha) = T4(I, I, I, beta)`` for random
   ``alpha = V beta`` are third-order. No ``D^4`` tensor is ever formed
   (:func:`reduced_fourth_moment`, :func:`fourth_moment_on_subspace`). In
   population ``R = -(1/K) sum_j sigma_j/sqrt(2 pi) (alpha^T bar w_j) u_j^{⊗3}``
   with ``u_j = V^T bar w_j``: the weights ``alpha^T bar w_j`` have either sign.
3. Decomposition into ``K`` unit ``u_j`` (:func:`dense_directions`), one candidate
   per random reduction (``n_tries`` of them): ``"whitened"`` whitens with
   ``P = M2(V, V)`` (positive definite), starts from
   the eigenvectors of a reduction ``R(I, I, g)`` and refines by orthogonal power
   iteration on the whitened ``-T4``; ``"jennrich"`` is plain simultaneous
   diagonalisation of ``R`` (:func:`decompose_symmetric_tensor`), exact without
   noise but far less accurate with it; ``"auto"`` (default) lets both compete.
   The candidate with the smallest empirical risk (Eq. 2) wins (or, for the
   ``"paper"`` method, where ``y`` is not a network of ``tilde x``, the one that
   best reconstructs ``T4``).
4. Signed magnitudes from the first moment: ``M1 = (1/(2K)) sum_j c_j V u_j`` with
   ``c_j = ±sigma_j``, fitted as the slopes of the least-squares regression of
   ``y`` on ``(1, u_1^T V^T x, ..., u_K^T V^T x)``; ``w_j = c_j V u_j``.

The columns come back in an arbitrary order (the permutation symmetry of the
network); :func:`match_columns` / :func:`relative_distance` align them with ``W*``.

**Pruned networks** (``method`` of :func:`tensor_initialization`).

The teacher is the dense network ``y = (1/K) sum_j phi(tilde w*_j^T x)`` whose
zero-padded weights ``tilde w*_j`` live in ``Omega*_j ⊆ Omega_j``.

* ``"exact"``: run the dense algorithm on ``x_U``, ``U = ∪_j Omega_j``
  (``|U| <= min(d, K r)``). Since ``x_U ~ N(0, I_|U|)`` and every teacher weight is
  supported in ``U``, the moments are exactly those of a dense network in
  ``R^|U|``. Each recovered column is assigned to the mask holding most of its
  energy (Hungarian assignment), restricted to that mask, and written in the
  student's ``(r, K)`` coordinates. Signed magnitudes are fitted after the
  restriction. Among the decomposition's candidates the one with the smallest
  empirical risk (Eq. 2) on ``x_U`` is kept. For identical masks (``r = d``) the
  assignment is arbitrary, as is the column order of any solution.
* ``"paper"``: the §4 substitution ``tilde x = K^{-1/2} sum_j x_{Omega_j}``.
  ``tilde x = B x`` with ``B = K^{-1/2} sum_j S_j`` (``S_j`` selects ``Omega_j``), so
  ``Cov(tilde x) = B B^T = I_r`` **iff the masks are pairwise disjoint**. In that
  case Stein's lemma gives ``E[y He_k(tilde x)] = (1/K) sum_j m_k(sigma_j)
  K^{-k/2} bar w_j^{⊗k}`` (``B tilde w_j = K^{-1/2} w_j``): the directions are exactly
  those of ``w_j`` in the student's coordinates, and the first moment carries an
  extra ``K^{-1/2}``, which this implementation undoes (magnitudes multiplied by
  ``sqrt(K)``; the least-squares fit of step 4 normalises by ``Cov(tilde x)``, so
  for identical masks the magnitudes also come out right). ``K = 1`` is the
  trivial disjoint case. Nothing in ``(tilde x, y)`` says which column belongs to which
  neuron; columns are assigned by matching them to the per-neuron first moments
  ``2K E[y x_{Omega_j}]`` (equal to ``w_j`` for disjoint masks). When masks overlap
  (in particular for the dense ``r = d``, where ``tilde x = sqrt(K) x``),
  ``tilde x`` is not standard Gaussian, the Hermite tensors are taken with the
  wrong covariance and the weights are aliased across masks: the substitution
  is then only a heuristic. Even when it is exact it is statistically costly:
  the ``k``-th moment's signal shrinks by ``K^{-k/2}`` relative to the noise
  (``M2`` by ``1/K``, ``M4`` by ``1/K^2``), so it needs far more samples than
  ``"exact"``.

Length: about 750 lines, a quarter of them this docstring. The module is one algorithm
(moments, subspace, power iterations, sign and magnitude recovery, matching to the
masks), whose steps share their conventions and are tested together; split into files it
would be harder to read against the paper's Algorithm, not easier.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._validation import as_generator, check_finite, check_int, check_shape
from .teacher import Problem

METHODS = ("paper", "exact")
MIN_SAMPLES_PER_NEURON = 2
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))

# --------------------------------------------------------------------------
# ReLU Gaussian constants
# --------------------------------------------------------------------------


def relu_gaussian_moments(sigma: float = 1.0) -> np.ndarray:
    """``E[phi(sigma z) z^j]`` for ``j = 0..4``, ``z ~ N(0, 1)``, ``phi`` = ReLU.

    Equals ``sigma * (1/sqrt(2 pi), 1/2, 2/sqrt(2 pi), 3/2, 8/sqrt(2 pi))`` for
    ``sigma >= 0`` (the half-line moments ``E[z^{j+1} 1(z > 0)]``).
    """
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, got sigma={sigma}")
    return sigma * np.array([1.0 / _SQRT_2PI, 0.5, 2.0 / _SQRT_2PI, 1.5, 8.0 / _SQRT_2PI])


def relu_hermite_coefficients(sigma: float = 1.0) -> np.ndarray:
    """``m_k(sigma) = E[phi(sigma z) He_k(z)]`` for ``k = 0..4`` (probabilists' Hermite ``He_k``).

    These are the coefficients of Zhong et al. (2017), Definition 5.1, for ReLU:
    ``sigma * (1/sqrt(2 pi), 1/2, 1/sqrt(2 pi), 0, -1/sqrt(2 pi))``. ``m_3 = 0`` is
    why the fourth moment replaces the third.
    """
    e = relu_gaussian_moments(sigma)
    he = np.array(
        [
            e[0],
            e[1],
            e[2] - e[0],  # z^2 - 1
            e[3] - 3 * e[1],  # z^3 - 3z
            e[4] - 6 * e[2] + 3 * e[0],  # z^4 - 6z^2 + 3
        ]
    )
    he[3] = 0.0  # exactly zero; the subtraction above leaves a rounding residue
    return he


# --------------------------------------------------------------------------
# empirical and population moments
# --------------------------------------------------------------------------


def _check_data(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, D), got {X.shape}")
    check_shape("y", y, (X.shape[0],))
    check_finite("X", X)
    check_finite("y", y)
    return X, y


def first_moment(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Empirical ``M1 = (1/N) sum_n y_n x_n``, shape ``(D,)``."""
    X, y = _check_data(X, y)
    return X.T @ y / X.shape[0]


def second_moment(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Empirical ``M2 = (1/N) sum_n y_n (x_n x_n^T - I)``, shape ``(D, D)`` (symmetric)."""
    X, y = _check_data(X, y)
    M = (X * y[:, None]).T @ X / X.shape[0]
    M = 0.5 * (M + M.T)
    M[np.diag_indices_from(M)] -= y.mean()
    return M


def reduced_fourth_moment(X: np.ndarray, y: np.ndarray, V: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Empirical ``M4(V, V, V, alpha)``, shape ``(K, K, K)``, without forming ``D^4`` tensors.

    With ``z_n = V^T x_n``, ``t_n = alpha^T x_n``, ``b = V^T alpha`` and ``V^T V = I_K``,
    contracting ``He_4(x) = x⊗4 - (x⊗x)⊗~I + I⊗~I`` gives::

        R_abc = mean_n y_n [ z_a z_b z_c t - t (delta_ab z_c + delta_ac z_b + delta_bc z_a)
                             - (b_a z_b z_c + b_b z_a z_c + b_c z_a z_b) ]
                + mean(y) (delta_ab b_c + delta_ac b_b + delta_bc b_a).

    ``V`` (shape ``(D, K)``) must have orthonormal columns; ``alpha`` has shape ``(D,)``.
    """
    X, y = _check_data(X, y)
    V = np.asarray(V, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    check_shape("V", V, (X.shape[1], None))
    check_shape("alpha", alpha, (X.shape[1],))
    K = V.shape[1]
    if not np.allclose(V.T @ V, np.eye(K), atol=1e-8):
        raise ValueError("V must have orthonormal columns (V^T V = I_K)")
    N = X.shape[0]
    Z = X @ V
    t = X @ alpha
    b = V.T @ alpha
    w = y * t
    R = np.einsum("n,na,nb,nc->abc", w, Z, Z, Z, optimize=True) / N
    u1 = Z.T @ w / N  # mean y t z
    S2 = (Z * y[:, None]).T @ Z / N  # mean y z z^T
    I = np.eye(K)
    R -= _sym3(I, u1)
    R -= np.einsum("a,bc->abc", b, S2) + np.einsum("b,ac->abc", b, S2) + np.einsum("c,ab->abc", b, S2)
    R += y.mean() * _sym3(I, b)
    return R


def fourth_moment_on_subspace(X: np.ndarray, y: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Empirical ``M4(V, V, V, V)``, shape ``(K, K, K, K)``: ``M4`` of the projected samples ``z_n = V^T x_n``.

    Exact because ``He_4(x)(V, V, V, V) = He_4(V^T x)`` when ``V^T V = I_K``.
    ``T4(I, I, I, beta) == reduced_fourth_moment(X, y, V, V @ beta)``.
    """
    X, y = _check_data(X, y)
    V = np.asarray(V, dtype=float)
    check_shape("V", V, (X.shape[1], None))
    K = V.shape[1]
    if not np.allclose(V.T @ V, np.eye(K), atol=1e-8):
        raise ValueError("V must have orthonormal columns (V^T V = I_K)")
    return _fourth_moment_projected(X @ V, y)


def _fourth_moment_projected(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``mean_n y_n He_4(z_n)`` for rows ``z_n`` of ``Z`` (shape ``(N, K)``)."""
    N, K = Z.shape
    T = np.einsum("n,na,nb,nc,nd->abcd", y, Z, Z, Z, Z, optimize=True) / N
    S2 = (Z * y[:, None]).T @ Z / N
    I = np.eye(K)
    T -= (
        np.einsum("ab,cd->abcd", S2, I)
        + np.einsum("ac,bd->abcd", S2, I)
        + np.einsum("ad,bc->abcd", S2, I)
        + np.einsum("bc,ad->abcd", S2, I)
        + np.einsum("bd,ac->abcd", S2, I)
        + np.einsum("cd,ab->abcd", S2, I)
    )
    T += y.mean() * (
        np.einsum("ab,cd->abcd", I, I) + np.einsum("ac,bd->abcd", I, I) + np.einsum("ad,bc->abcd", I, I)
    )
    return T


def _sym3(I: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``delta_ab u_c + delta_ac u_b + delta_bc u_a``."""
    return np.einsum("ab,c->abc", I, u) + np.einsum("ac,b->abc", I, u) + np.einsum("bc,a->abc", I, u)


def population_moments(W: np.ndarray) -> dict[str, np.ndarray]:
    """Closed-form ``M1`` (``(D,)``), ``M2`` (``(D, D)``) and ``M4`` coefficients for dense ``W`` (``(D, K)``).

    Returns ``{"M1", "M2", "sigma", "directions", "m4_weights"}`` where
    ``M4 = sum_j m4_weights[j] * directions[:, j]^{⊗4}`` (``m4_weights = -sigma/(K sqrt(2 pi))``),
    so ``M4(V, V, V, alpha) = sum_j m4_weights[j] (alpha^T bar w_j) (V^T bar w_j)^{⊗3}``.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2:
        raise ValueError(f"W must have shape (D, K), got {W.shape}")
    check_finite("W", W)
    K = W.shape[1]
    sigma = np.linalg.norm(W, axis=0)
    if np.any(sigma == 0):
        raise ValueError("every column of W must be non-zero")
    Wbar = W / sigma
    m = np.stack([relu_hermite_coefficients(s) for s in sigma])  # (K, 5)
    return {
        "M1": Wbar @ m[:, 1] / K,
        "M2": (Wbar * (m[:, 2] / K)) @ Wbar.T,
        "sigma": sigma,
        "directions": Wbar,
        "m4_weights": m[:, 4] / K,
    }


# --------------------------------------------------------------------------
# symmetric tensor decomposition (Jennrich / simultaneous diagonalisation)
# --------------------------------------------------------------------------


def _rank_one_design(U: np.ndarray, order: int) -> np.ndarray:
    """Columns ``vec(u_j^{⊗order})``, shape ``(K^order, n)``."""
    cols = []
    for u in U.T:
        t = u
        for _ in range(order - 1):
            t = np.multiply.outer(t, u)
        cols.append(t.ravel())
    return np.stack(cols, axis=1)


def fit_symmetric_weights(T: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares weights ``lambda`` of ``T ≈ sum_j lambda_j u_j^{⊗m}`` and the relative residual.

    ``T`` is a symmetric tensor of order ``m`` on ``R^K``; ``U`` has shape ``(K, n)``.
    """
    T = np.asarray(T, dtype=float)
    A = _rank_one_design(U, T.ndim)
    lam, *_ = np.linalg.lstsq(A, T.ravel(), rcond=None)
    norm = np.linalg.norm(T)
    residual = np.linalg.norm(A @ lam - T.ravel()) / norm if norm > 0 else 0.0
    return lam, float(residual)


def decompose_symmetric_tensor(
    T: np.ndarray,
    n_components: int,
    n_tries: int = 10,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Rank-``n`` decomposition ``T ≈ sum_j lambda_j u_j⊗u_j⊗u_j`` of a symmetric ``K x K x K`` tensor.

    Jennrich's algorithm (simultaneous diagonalisation, as in the KCL step of
    Zhong et al. 2017 / Kuleshov et al. 2015): for random ``g1, g2``,
    ``T(I, I, g1) T(I, I, g2)^+ = U diag(...) U^+``, so the eigenvectors of that
    matrix are the ``u_j``. It is exact for noiseless ``T`` whose components are
    linearly independent (``n <= K``) and whose weights are non-zero of any sign.
    Of ``n_tries`` random pairs the one with the smallest reconstruction residual
    is kept.

    Returns ``(U, lam, residual)``: unit components ``U`` (shape ``(K, n)``, each
    defined up to sign, the sign absorbed in ``lam``), weights ``lam`` and the
    relative residual ``||T - sum_j lam_j u_j^{⊗3}||_F / ||T||_F``.
    """
    T = np.asarray(T, dtype=float)
    if T.ndim != 3 or not (T.shape[0] == T.shape[1] == T.shape[2]):
        raise ValueError(f"T must be a cubical third-order tensor (K, K, K), got shape {T.shape}")
    check_finite("T", T)
    K = T.shape[0]
    n = check_int("n_components", n_components, 1, K)
    n_tries = check_int("n_tries", n_tries, 1)
    rng = as_generator(seed)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(n_tries):
        g1, g2 = rng.standard_normal(K), rng.standard_normal(K)
        A = np.einsum("abc,c->ab", T, g1)
        B = np.einsum("abc,c->ab", T, g2)
        # restrict to the n-dimensional range of B (rank n when the components are independent)
        Ub, sb, _ = np.linalg.svd(B)
        P = Ub[:, :n]
        Bn = P.T @ B @ P
        An = P.T @ A @ P
        try:
            vals, vecs = np.linalg.eig(An @ np.linalg.inv(Bn))
        except np.linalg.LinAlgError:
            continue
        U = P @ np.real(vecs)
        norms = np.linalg.norm(U, axis=0)
        if np.any(norms == 0) or not np.all(np.isfinite(U)):
            continue
        U = U / norms
        lam, res = fit_symmetric_weights(T, U)
        if best is None or res < best[2]:
            best = (U, lam, res)
    if best is None:
        raise np.linalg.LinAlgError("Jennrich's algorithm failed on every try (singular projections)")
    return best


# --------------------------------------------------------------------------
# dense algorithm (Zhong et al. 2017, Algorithm 1)
# --------------------------------------------------------------------------


def top_eigenvectors(M: np.ndarray, K: int) -> np.ndarray:
    """Orthonormal eigenvectors of the symmetric ``M`` for its ``K`` largest ``|eigenvalue|``, shape ``(D, K)``."""
    vals, vecs = np.linalg.eigh(0.5 * (M + M.T))
    order = np.argsort(-np.abs(vals), kind="stable")[:K]
    return vecs[:, order]


def _affine_residual(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Residual of the least-squares fit ``y ≈ a + X b``."""
    A = np.column_stack([np.ones(X.shape[0]), X])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return y - A @ coef


def _signed_magnitudes(X: np.ndarray, y: np.ndarray, directions: np.ndarray, K: int) -> np.ndarray:
    """Signed magnitudes ``c`` with ``w_j = c_j directions[:, j]`` from the first moment.

    ``M1 = (1/(2K)) sum_j c_j d_j`` and ``x`` is standard Gaussian, so the population
    least-squares fit of ``y`` on ``(1, X d_1, ..., X d_K)`` has slopes ``c/(2K)``. The
    empirical fit is this with only ``K`` regressors (less noise than ``mean_n y_n x_n``).
    """
    return _signed_magnitudes_projected(X @ directions, y, K)


def _signed_magnitudes_projected(Z: np.ndarray, y: np.ndarray, K: int) -> np.ndarray:
    A = np.column_stack([np.ones(Z.shape[0]), Z])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return 2.0 * K * coef[1:]


DECOMPOSITIONS = ("auto", "whitened", "jennrich")
SELECTIONS = ("risk", "moment")


def _polar(Y: np.ndarray) -> np.ndarray:
    """Nearest matrix with orthonormal columns (polar factor) of ``Y``."""
    A, _, Bt = np.linalg.svd(Y, full_matrices=False)
    return A @ Bt


def orthogonal_power_iteration(
    S: np.ndarray, U0: np.ndarray, max_iter: int = 200, tol: float = 1e-12
) -> np.ndarray:
    """Simultaneous power iteration ``U <- polar([S(I, u_j, u_j, u_j)]_j)`` on a symmetric fourth-order ``S``.

    For ``S = sum_j mu_j v_j^{⊗4}`` with orthonormal ``v_j`` and ``mu_j > 0`` the
    ``v_j`` are attracting fixed points (the whitened ``-M4`` has this form).
    ``U0`` (shape ``(K, n)``) is the start; returns orthonormal columns.
    """
    U = _polar(U0)
    for _ in range(max_iter):
        U_new = _polar(np.einsum("abcd,bj,cj,dj->aj", S, U, U, U, optimize=True))
        done = np.linalg.norm(U_new - U) < tol
        U = U_new
        if done:
            break
    return U


def dense_directions(
    X: np.ndarray,
    y: np.ndarray,
    K: int,
    n_tries: int = 10,
    seed: int | np.random.Generator | None = None,
    decomposition: str = "auto",
    select: str = "risk",
) -> tuple[np.ndarray, dict]:
    """Steps 1-3 of Zhong et al.'s Algorithm 1: unit directions ``±bar w_j``, shape ``(D, K)``.

    1. ``V``: top-``K`` eigenvectors (by ``|eigenvalue|``) of the empirical ``M2``.
    2. ``T4 = M4(V, V, V, V)`` and its reductions ``R = M4(V, V, V, alpha)``, ``alpha = V beta``.
    3. Decomposition of ``T4`` into ``K`` unit vectors ``u_j``. Candidates come from
       ``n_tries`` random reductions:

       * ``"whitened"``: with ``P = M2(V, V) = sum_j a_j u_j u_j^T``
         (``a_j = sigma_j/(K sqrt(2 pi)) > 0``) the whitened ``S = -T4(P^{-1/2}, ...)``
         is an orthogonal tensor ``sum_j a_j^{-1} v_j^{⊗4}`` with positive weights. The
         reduction ``S(I, I, g, beta)`` (whitened ``M4(V, V, V, alpha)`` contracted once
         more) is a symmetric matrix whose eigenvectors start
         :func:`orthogonal_power_iteration` on ``S``; ``u_j ∝ P^{1/2} v_j``. No candidates
         if the empirical ``P`` is not positive definite.
       * ``"jennrich"``: :func:`decompose_symmetric_tensor` on ``R = T4(I, I, I, beta)``
         (Jennrich's simultaneous diagonalisation, no whitening, no refinement).
         Exact without noise, much less accurate with it.
       * ``"auto"`` (default): both pools compete (``"jennrich"`` alone when ``P`` is
         not positive definite).

       ``select`` picks among the candidates: ``"risk"`` (default) the smallest
       empirical risk (Eq. 2) of ``w_j = c_j V u_j`` with step-4 magnitudes (valid
       when ``y`` is a network of ``x``, as here); ``"moment"`` the smallest
       relative residual ``||T4 - sum_j lam_j u_j^{⊗4}||_F / ||T4||_F``. The moment
       residual favours the unconstrained Jennrich candidates, which fit the noise
       in ``T4``; the risk does not.

    Moments are computed from labels with their least-squares affine part
    removed: ``E[(a + b^T x) He_k(x)] = 0`` for ``k >= 2``, so ``M2`` and ``M4`` are
    unchanged in population while their sampling noise drops (a control variate).

    Returns the directions (unit columns ``V u_j``, signs arbitrary) and
    diagnostics ``{"V", "T4", "P", "residual", "decomposition"}`` (``residual``: the
    chosen candidate's relative ``T4`` residual; ``decomposition``: its pool).
    """
    X, y = _check_data(X, y)
    N, D = X.shape
    K = check_int("K", K, 1, D)
    n_tries = check_int("n_tries", n_tries, 1)
    if decomposition not in DECOMPOSITIONS:
        raise ValueError(f"decomposition must be one of {DECOMPOSITIONS}, got decomposition={decomposition!r}")
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got select={select!r}")
    rng = as_generator(seed)
    y_res = _affine_residual(X, y)
    M2 = second_moment(X, y_res)
    V = top_eigenvectors(M2, K)
    T4 = _fourth_moment_projected(X @ V, y_res)
    P = V.T @ M2 @ V
    P = 0.5 * (P + P.T)
    candidates: list[tuple[np.ndarray, str]] = []
    if decomposition in ("auto", "whitened"):
        candidates += [(U, "whitened") for U in _whitened_candidates(T4, P, n_tries, rng)]
    if decomposition in ("auto", "jennrich") or not candidates:
        candidates += [(U, "jennrich") for U in _jennrich_candidates(T4, n_tries, rng)]
    if not candidates:
        raise np.linalg.LinAlgError("the tensor decomposition failed on every try")
    residuals = [fit_symmetric_weights(T4, U)[1] for U, _ in candidates]
    if select == "moment":
        scores = residuals
    else:
        Z = X @ V
        scores = [_projected_risk(Z, y, U, K) for U, _ in candidates]
    i = int(np.argmin(scores))
    U, used = candidates[i]
    return V @ U, {"V": V, "T4": T4, "P": P, "residual": residuals[i], "decomposition": used}


def _projected_risk(Z: np.ndarray, y: np.ndarray, U: np.ndarray, K: int) -> float:
    """Empirical risk (Eq. 2) of ``w_j = c_j V u_j`` with the first-moment magnitudes ``c``; ``Z = X V``."""
    ZU = Z @ U
    c = _signed_magnitudes_projected(ZU, y, K)
    pred = np.maximum(ZU * c, 0.0).mean(axis=1)
    return float(0.5 * np.mean((pred - y) ** 2))


def _whitened_candidates(T4: np.ndarray, P: np.ndarray, n_tries: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Candidates from whitening by ``P`` and orthogonal power iteration on ``-T4`` (empty if ``P`` is not PD)."""
    ev, E = np.linalg.eigh(P)
    if ev.min() <= 1e-12 * max(abs(ev).max(), 1e-300):
        return []
    K = P.shape[0]
    P_inv_half = (E / np.sqrt(ev)) @ E.T
    P_half = (E * np.sqrt(ev)) @ E.T
    S = -np.einsum("abcd,ai,bj,ck,dl->ijkl", T4, P_inv_half, P_inv_half, P_inv_half, P_inv_half, optimize=True)
    out = []
    for _ in range(n_tries):
        beta, g = rng.standard_normal(K), rng.standard_normal(K)
        # reduction of the whitened M4 by alpha ∝ V P^{-1/2} beta, then by g: a symmetric K x K matrix
        _, U0 = np.linalg.eigh(np.einsum("abcd,c,d->ab", S, g, beta / np.linalg.norm(beta)))
        U = P_half @ orthogonal_power_iteration(S, U0)
        out.append(U / np.linalg.norm(U, axis=0))
    return out


def _jennrich_candidates(T4: np.ndarray, n_tries: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Candidates from Jennrich's algorithm on the reductions ``R = T4(I, I, I, beta)``."""
    K = T4.shape[0]
    out = []
    for _ in range(n_tries):
        beta = rng.standard_normal(K)
        R = np.einsum("abcd,d->abc", T4, beta / np.linalg.norm(beta))  # = M4(V, V, V, V beta)
        try:
            U, _, _ = decompose_symmetric_tensor(R, K, n_tries=n_tries, seed=rng)
        except np.linalg.LinAlgError:
            continue
        out.append(U)
    return out


def dense_tensor_initialization(
    X: np.ndarray,
    y: np.ndarray,
    K: int,
    n_tries: int = 10,
    seed: int | np.random.Generator | None = None,
    decomposition: str = "auto",
    select: str = "risk",
) -> np.ndarray:
    """Zhong et al. (2017) Algorithm 1 for ReLU on a dense network: estimate ``W`` (shape ``(D, K)``).

    ``X`` (shape ``(N, D)``) must have i.i.d. ``N(0, I_D)`` rows and
    ``y ≈ (1/K) sum_j phi(w_j^T x)``. Columns come back in arbitrary order.
    ``decomposition`` and ``select``: see :func:`dense_directions`.
    """
    X, y = _check_data(X, y)
    directions, _ = dense_directions(X, y, K, n_tries, seed, decomposition, select)
    c = _signed_magnitudes(X, y, directions, K)
    return directions * c


# --------------------------------------------------------------------------
# matching and distances
# --------------------------------------------------------------------------


def match_columns(W_est: np.ndarray, W_star: np.ndarray, return_permutation: bool = False):
    """Permute the columns of ``W_est`` to minimise ``||W_est[:, perm] - W_star||_F`` (Hungarian algorithm).

    Both have shape ``(r, K)``. Returns ``W_est[:, perm]`` (and ``perm`` if asked).
    Only meaningful when all neurons share one coordinate system (identical masks,
    e.g. the dense ``r = d`` network); for distinct masks the column order is fixed
    by the masks.
    """
    W_est = np.asarray(W_est, dtype=float)
    W_star = np.asarray(W_star, dtype=float)
    if W_est.ndim != 2:
        raise ValueError(f"W_est must have shape (r, K), got {W_est.shape}")
    check_shape("W_star", W_star, W_est.shape)
    cost = ((W_est[:, :, None] - W_star[:, None, :]) ** 2).sum(axis=0)  # cost[i, j]: est col i vs star col j
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(W_est.shape[1], dtype=int)
    perm[cols] = rows
    out = W_est[:, perm]
    return (out, perm) if return_permutation else out


def relative_distance(W0: np.ndarray, W_star: np.ndarray, match: bool = True) -> float:
    """``||W0 - W*||_F / ||W*||_F``, after the best column permutation when ``match`` is true."""
    W0 = np.asarray(W0, dtype=float)
    W_star = np.asarray(W_star, dtype=float)
    if W0.ndim != 2:
        raise ValueError(f"W0 must have shape (r, K), got {W0.shape}")
    check_shape("W_star", W_star, W0.shape)
    norm = np.linalg.norm(W_star)
    if norm == 0:
        raise ValueError("W_star must be non-zero")
    if match:
        W0 = match_columns(W0, W_star)
    return float(np.linalg.norm(W0 - W_star) / norm)


# --------------------------------------------------------------------------
# pruned networks: §4 of the paper
# --------------------------------------------------------------------------


def paper_input(X: np.ndarray, supports: np.ndarray) -> np.ndarray:
    """The §4 substitution ``tilde x_n = K^{-1/2} sum_j x_{n, Omega_j}``, shape ``(N, r)``."""
    X = np.asarray(X, dtype=float)
    supports = np.asarray(supports)
    return X[:, supports].sum(axis=1) / np.sqrt(supports.shape[0])


def paper_input_covariance(supports: np.ndarray) -> np.ndarray:
    """``Cov(tilde x) = (1/K) sum_{j,l} S_j S_l^T``, shape ``(r, r)``; ``= I_r`` iff the masks are pairwise disjoint."""
    supports = np.asarray(supports)
    K, r = supports.shape
    same = supports[:, None, :, None] == supports[None, :, None, :]  # (K, K, r, r)
    return same.sum(axis=(0, 1)) / K


def masks_disjoint(supports: np.ndarray) -> bool:
    """True when the index sets ``Omega_j`` are pairwise disjoint (the case where the §4 substitution is exact)."""
    supports = np.asarray(supports)
    return np.unique(supports).size == supports.size


def _check_problem(problem: Problem, method: str, n_tries: int) -> int:
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a lthbook.teacher.Problem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got method={method!r}")
    n_tries = check_int("n_tries", n_tries, 1)
    K, N = problem.K, problem.N
    if N < MIN_SAMPLES_PER_NEURON * K:
        raise ValueError(
            f"N must satisfy N >= {MIN_SAMPLES_PER_NEURON}*K = {MIN_SAMPLES_PER_NEURON * K} for the moment estimates "
            f"(the empirical M2 has rank <= N + 1), got N={N}"
        )
    check_finite("problem.X", problem.X)
    check_finite("problem.y", problem.y)
    return n_tries


def _exact(problem: Problem, n_tries: int, rng: np.random.Generator, decomposition: str) -> np.ndarray:
    K, r = problem.K, problem.r
    union = np.unique(problem.supports)
    if union.size < K:
        raise ValueError(
            f"method='exact' needs |U| >= K for the union U of the masks Omega_j; got |U|={union.size} < K={K}"
        )
    XU = problem.X[:, union]
    directions, _ = dense_directions(XU, problem.y, K, n_tries, rng, decomposition, select="risk")
    local = np.searchsorted(union, problem.supports)  # (K, r): positions of Omega_j inside U
    energy = np.stack([(directions[local[j]] ** 2).sum(axis=0) for j in range(K)])  # (mask j, column i)
    masks, cols = linear_sum_assignment(-energy)
    order = cols[np.argsort(masks)]
    restricted = np.zeros_like(directions)
    for j in range(K):
        restricted[local[j], j] = directions[local[j], order[j]]
    c = _signed_magnitudes(XU, problem.y, restricted, K)
    W0 = np.empty((r, K))
    for j in range(K):
        W0[:, j] = c[j] * restricted[local[j], j]
    return W0


def _paper(problem: Problem, n_tries: int, rng: np.random.Generator, decomposition: str) -> np.ndarray:
    K, r = problem.K, problem.r
    if r < K:
        raise ValueError(
            f"method='paper' recovers K directions in R^r and needs r >= K; got r={r} < K={K} (use method='exact')"
        )
    Xt = paper_input(problem.X, problem.supports)
    # (tilde x, y) is not a network of tilde x, so candidates are chosen by the moment residual, not the risk
    directions, _ = dense_directions(Xt, problem.y, K, n_tries, rng, decomposition, select="moment")
    V = directions * _signed_magnitudes(Xt, problem.y, directions, K) * np.sqrt(K)  # undo the K^{-1/2} of B w_j
    # per-neuron first moments 2K E[y x_{Omega_j}] (= w_j for disjoint masks) decide which column is whose
    G = np.stack([2.0 * K * problem.X[:, problem.supports[j]].T @ problem.y / problem.N for j in range(K)], axis=1)
    cost = ((V[:, :, None] - G[:, None, :]) ** 2).sum(axis=0)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(K, dtype=int)
    perm[cols] = rows
    return V[:, perm]


def tensor_initialization(
    problem: Problem,
    method: str = "exact",
    n_tries: int = 10,
    seed: int | np.random.Generator | None = None,
    *,
    decomposition: str = "auto",
) -> np.ndarray:
    """Tensor initialization ``W(0)`` of §4 for the student of ``problem``, shape ``(r, K)`` like ``W*``.

    Parameters
    ----------
    problem:
        A :class:`~lthbook.teacher.Problem`: ``N`` samples ``x_n ~ N(0, I_d)``, labels
        of Eq. (1), the student's masks ``Omega`` (``K`` rows of ``r`` inputs).
    method:
        ``"exact"`` (default): Zhong et al.'s Algorithm 1 on ``x_U`` for the union
        ``U`` of the masks, columns assigned to masks and restricted to them; exact in
        population for any masks containing the teacher's.
        ``"paper"``: the §4 substitution ``tilde x = K^{-1/2} sum_j x_{Omega_j}``
        (exact in population only for pairwise-disjoint masks; see the module docstring).
    n_tries:
        Random reductions ``alpha`` of the fourth moment (and random projections per
        reduction) tried by the decomposition; the candidate reconstructing the
        fourth moment best is kept.
    seed:
        Integer seed or ``numpy.random.Generator`` for those random draws.
    decomposition:
        ``"auto"`` (default), ``"whitened"`` or ``"jennrich"``: see :func:`dense_directions`.

    Returns
    -------
    ``W(0)``, shape ``(r, K)``; column ``j`` is indexed by ``Omega_j`` (the layout of
    ``problem.W_star``). For identical masks (``r = d``) the column order is arbitrary:
    compare with :func:`relative_distance` (which matches columns).
    """
    n_tries = _check_problem(problem, method, n_tries)
    if decomposition not in DECOMPOSITIONS:
        raise ValueError(f"decomposition must be one of {DECOMPOSITIONS}, got decomposition={decomposition!r}")
    rng = as_generator(seed)
    if method == "exact":
        return _exact(problem, n_tries, rng, decomposition)
    return _paper(problem, n_tries, rng, decomposition)


__all__ = [
    "DECOMPOSITIONS",
    "METHODS",
    "SELECTIONS",
    "decompose_symmetric_tensor",
    "dense_directions",
    "dense_tensor_initialization",
    "first_moment",
    "fit_symmetric_weights",
    "fourth_moment_on_subspace",
    "masks_disjoint",
    "match_columns",
    "orthogonal_power_iteration",
    "paper_input",
    "paper_input_covariance",
    "population_moments",
    "reduced_fourth_moment",
    "relative_distance",
    "relu_gaussian_moments",
    "relu_hermite_coefficients",
    "second_moment",
    "tensor_initialization",
    "top_eigenvectors",
]
