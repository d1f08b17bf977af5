"""Empirical risk of Eq. (2), its gradient and its Hessian, in closed form.

The student's output for sample ``n`` is ``(1/K) sum_j phi(w_j^T x_{n,Omega_j})``
and the empirical risk is

    f_D(W) = 1/(2N) sum_n ( (1/K) sum_j phi(w_j^T x_{n,Omega_j}) - y_n )^2      (Eq. 2)

Writing ``z_nj = w_j^T x_{n,Omega_j}``, ``a_nj = 1[z_nj > 0]`` (``phi'``) and
``e_n`` for the residual in brackets,

    grad_{w_j} f = 1/(N K) sum_n e_n a_nj x_{n,Omega_j}
    d^2 f / dw_j dw_l = 1/(N K^2) sum_n a_nj a_nl x_{n,Omega_j} x_{n,Omega_l}^T

The second formula is the Hessian wherever it exists: ReLU is piecewise linear,
so ``phi'' = 0`` off the kinks ``z_nj = 0`` and the risk is a quadratic on each
cell of fixed activation pattern. It is a Gram matrix, hence always positive
semi-definite; see the §3 chapter for what local convexity means then.

The Hessian is laid out for ``vec(W) = [w_1; w_2; ...; w_K]`` (columns
stacked), i.e. entry ``(j*r + i, l*r + m)`` is ``d^2 f / dW_{ij} dW_{ml}``.

All functions here run in torch (float64 by default). The ``batched_*``
kernels take many weight matrices and many data sets at once and are what
:mod:`lthbook.agd` iterates; the plain functions wrap them for one ``W``.

Internal batched layout: data ``Xg`` of shape ``(P, K, N, r)`` (``P`` data sets,
``Xg[p, j] = X_p[:, Omega_j]``), labels ``y`` of shape ``(P, N)`` (or ``(P, N, B)``:
one label vector per weight matrix, e.g. several noise levels on the same inputs) and weights
``V`` of shape ``(P, K, r, B)`` (``B`` weight matrices per data set).
"""

from __future__ import annotations

import numpy as np
import torch

from ._validation import check_finite, check_shape
from .teacher import check_supports

# --------------------------------------------------------------------------
# batched kernels (torch, internal layout)
# --------------------------------------------------------------------------


def batched_preactivations(Xg: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``z_nj`` for every data set and weight matrix: shape ``(P, K, N, B)``."""
    return Xg @ V


def batched_residual(Z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Residuals ``e_n = (1/K) sum_j phi(z_nj) - y_n``, shape ``(P, N, B)``."""
    return torch.relu(Z).mean(dim=1) - (y if y.dim() == 3 else y[:, :, None])


def batched_risk(Xg: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Eq. (2) for every data set and weight matrix, shape ``(P, B)``."""
    e = batched_residual(batched_preactivations(Xg, V), y)
    return 0.5 * (e * e).mean(dim=1)


def transposed(Xg: torch.Tensor) -> torch.Tensor:
    """``Xg`` with its last two axes swapped, stored contiguously: shape ``(P, K, r, N)``.

    The gradient and Hessian-vector products multiply by ``Xg^T``; a contiguous copy makes
    that product a plain matrix product (on one CPU thread, 5.8 ms instead of 19.5 ms for
    the transposed view at Fig 2's worst cell, K=5, N=3000, r=500, 12 right-hand sides;
    the results are bitwise equal). It doubles the memory of the data."""
    return Xg.transpose(-1, -2).contiguous()


def batched_gradient(Xg: torch.Tensor, y: torch.Tensor, V: torch.Tensor, XgT: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Gradient of Eq. (2), shape ``(P, K, r, B)`` like ``V``. ``XgT`` (optional) is
    :func:`transposed` ``(Xg)``, passed by callers that take many steps on the same data."""
    K, N = Xg.shape[1], Xg.shape[2]
    Z = batched_preactivations(Xg, V)
    e = batched_residual(Z, y)
    # a_nj e_n; a multiplication by the 0/1 mask, not torch.where: on one CPU thread the latter took
    # 20-25 ms against 1.3 ms at Fig 2's worst cell (bench/bench_agd.py's cell, load average 6)
    weighted = (Z > 0).to(Z.dtype).mul_(e[:, None])
    return (Xg.transpose(-1, -2) if XgT is None else XgT) @ weighted / (N * K)


def batched_hvp(Xg: torch.Tensor, active: torch.Tensor, U: torch.Tensor, XgT: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Hessian-vector product ``H(W) U`` given the activation pattern ``active = (Z > 0)``.

    ``active`` has shape ``(P, K, N, B)`` and ``U`` has the layout of ``V``; ``XgT`` as in
    :func:`batched_gradient`.
    """
    K, N = Xg.shape[1], Xg.shape[2]
    s = ((Xg @ U) * active).sum(dim=1, keepdim=True)  # (P, 1, N, B)
    return (Xg.transpose(-1, -2) if XgT is None else XgT) @ (active * s) / (N * K * K)


class GatheredData:
    """The ``P`` data sets in the per-neuron layout: ``Xg`` of shape ``(P, K, N, r)``
    (``Xg[p, j] = X_p[:, Omega_j]``) and its :func:`transposed` copy.

    One product per neuron, ``x_{n,Omega_j}^T w_j`` for ``B`` right-hand sides: ``2 N r K B``
    flops per data set, the fewest possible, but each product has only ``B`` columns and
    reads its ``N x r`` block of data (twice: ``Xg`` and ``Xg^T``) for them, so the kernel
    is bound by memory traffic when ``B`` is small. :class:`DenseData` is the alternative.
    """

    kind = "gathered"

    def __init__(self, Xg: torch.Tensor, XgT: torch.Tensor | None = None) -> None:
        self.Xg = Xg
        self.XgT = transposed(Xg) if XgT is None else XgT

    @property
    def P(self) -> int:
        return self.Xg.shape[0]

    def flops(self, B: int) -> float:
        """Floating-point operations of one gradient (forward and backward products)."""
        P, K, N, r = self.Xg.shape
        return 4.0 * P * K * N * r * B

    def active(self, V: torch.Tensor) -> torch.Tensor:
        """Activation pattern ``a_nj = 1[z_nj > 0]`` in this layout, ``(P, K, N, B)``."""
        return (batched_preactivations(self.Xg, V) > 0).to(self.Xg.dtype)

    def gradient(self, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """:func:`batched_gradient`, shape ``(P, K, r, B)`` like ``V``."""
        return batched_gradient(self.Xg, y, V, self.XgT)

    def hvp(self, active: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """:func:`batched_hvp` with ``active`` from :meth:`active`."""
        return batched_hvp(self.Xg, active, U, self.XgT)

    def rows(self, keep: torch.Tensor) -> "GatheredData":
        """The data sets ``keep`` (a boolean mask of length ``P``)."""
        return GatheredData(self.Xg[keep], self.XgT[keep])

    def to(self, dtype: torch.dtype) -> "GatheredData":
        return GatheredData(self.Xg.to(dtype), self.XgT.to(dtype))


#: On CPU, :meth:`DenseData.gradient` pads the ``K B`` rows of its two products (one row per
#: neuron and weight matrix) with zero rows up to a multiple of this number. MKL's double-precision
#: GEMM, for Figure 2's shapes (``(K B) x u`` times ``u x N``, ``u = 500``, ``N = 3000``), is fast
#: on a multiple of 4 rows and much slower when rows are left over (measured, not documented by MKL). Forward product, 5 data sets, one thread,
#: ms per data set, min of 3 rounds (``bench/bench_agd.py --rows --threads 1 --rounds 3 --iters 10``,
#: 2026-12-04, 2-core AMD EPYC with AVX-512, the other core busy): 5 rows 1.64, 8 rows 1.30; 10 rows
#: 2.20, 12 rows 1.52; 15 rows 2.75, 16 rows 1.83; 30 rows 3.37, 32 rows 2.61; 55 rows 5.05, 56 rows
#: 3.96 (the backward product alike). A whole AGD iteration with B = 1, 2, 3, 5, 6, 7, 9, 10, 11 starts
#: (5, 10, 15, ... rows) ran 1.47, 1.47, 1.65, 1.10, 1.14, 1.27, 1.11, 1.18, 1.41 times as fast
#: padded (medians), B = 4, 8, 12 (no padding) 0.98-1.00.
#: The padded rows are exact zeros and never read back; they change the rounding of the real rows
#: (another GEMM code path), not their values beyond it. ``1`` turns the padding off.
GEMM_ROW_MULTIPLE = 4


def padded_rows(rows: int, device: torch.device) -> int:
    """``rows`` rounded up to a multiple of :data:`GEMM_ROW_MULTIPLE` on CPU (unchanged elsewhere)."""
    m = GEMM_ROW_MULTIPLE if device.type == "cpu" else 1
    return -(-rows // m) * m


class DenseData:
    """The ``P`` data sets as plain matrices, for one dense product over all neurons.

    The ``K`` neurons' weights ``w_j`` (``B`` of each) are written into one matrix
    ``tilde W`` with zeros outside each ``Omega_j`` (the masked form of Eq. (4)), so
    ``Z = X tilde W`` gives every ``z_nj`` at once and ``X^T (a * e)``, restricted to the
    supports, is the gradient of the module docstring. Only the columns of ``X`` in the
    union ``U_p`` of the supports of data set ``p`` are kept (padded to the largest union
    ``u`` over the batch; padded columns meet zero weights and their gradient rows are never
    read). That is ``2 N u K B`` flops per product against the gathered kernel's
    ``2 N r K B``, but in products with ``K B`` columns that read the data once: it is
    faster when ``u / r`` is small enough (:data:`lthbook.agd.DENSE_CROSSOVER`).

    ``X`` is a tensor of shape ``(P, N, d)`` or a sequence of ``P`` tensors of shape
    ``(N, d_p)`` (``d`` may differ between data sets), and ``supports`` (``Omega``) has shape
    ``(P, K, r)``, integer.
    """

    kind = "dense"

    def __init__(self, X: torch.Tensor | list[torch.Tensor], supports: torch.Tensor) -> None:
        cols, pos = [], []
        for p in range(len(X)):  # union of the supports of data set p, and where each support entry sits in it
            union, inverse = torch.unique(supports[p], return_inverse=True)
            cols.append(union.to(X[p].device))
            pos.append(inverse)
        u = max(c.numel() for c in cols)
        Xu = torch.stack([X[p][:, torch.cat([c, c[:1].expand(u - c.numel())])] for p, c in enumerate(cols)])
        self._set(Xu, Xu.transpose(-1, -2).contiguous(), torch.stack(pos).to(Xu.device))

    @classmethod
    def _from_parts(cls, Xu: torch.Tensor, XuT: torch.Tensor, pos: torch.Tensor) -> "DenseData":
        obj = cls.__new__(cls)
        obj._set(Xu, XuT, pos)
        return obj

    def _set(self, Xu: torch.Tensor, XuT: torch.Tensor, pos: torch.Tensor) -> None:
        self.Xu, self.XuT, self.pos = Xu, XuT, pos  # (P, N, u), (P, u, N), (P, K, r)
        P, K, r = pos.shape
        u = Xu.shape[2]
        p = torch.arange(P, device=pos.device)[:, None, None]
        j = torch.arange(K, device=pos.device)[None, :, None]
        # row of (P*u*K, B)-shaped tilde W for entry (p, j, i) of V's (P*K*r, B) rows
        self._index = ((p * u + pos) * K + j).reshape(-1)

    @property
    def P(self) -> int:
        return self.Xu.shape[0]

    @property
    def width(self) -> int:
        """``u``: the columns of ``X`` kept (largest union of supports in the batch)."""
        return self.Xu.shape[2]

    def flops(self, B: int) -> float:
        """Floating-point operations of one gradient (forward and backward products)."""
        P, N, u = self.Xu.shape
        return 4.0 * P * N * u * self.pos.shape[1] * B

    def _dense(self, V: torch.Tensor) -> torch.Tensor:
        P, K, r, B = V.shape
        W = V.new_zeros(P * self.width * K, B)
        W.index_copy_(0, self._index, V.reshape(-1, B))
        return W.view(P, self.width, K * B)

    def _restrict(self, G: torch.Tensor, B: int) -> torch.Tensor:
        P, K, r = self.pos.shape
        return G.reshape(-1, B).index_select(0, self._index).view(P, K, r, B)

    def _preactivations(self, V: torch.Tensor) -> torch.Tensor:
        P, K, r, B = V.shape
        return (self.Xu @ self._dense(V)).view(P, -1, K, B)  # (P, N, K, B)

    def active(self, V: torch.Tensor) -> torch.Tensor:
        """Activation pattern ``a_nj`` in this layout, ``(P, N, K, B)``."""
        return (self._preactivations(V) > 0).to(self.Xu.dtype)

    def _dense_t(self, V: torch.Tensor, rows: int) -> torch.Tensor:
        """``tilde W^T`` laid out ``(P, rows, u)``: row ``(j, b)`` (``j * B + b``) is neuron ``j`` of
        weight matrix ``b``, zero outside ``Omega_j``; rows from ``K * B`` on are zero."""
        P, K, r, B = V.shape
        WT = V.new_zeros(P, rows, self.width)
        WT[:, :K * B].view(P, K, B, self.width).scatter_(3, self.pos[:, :, None, :].expand(P, K, B, r),
                                                          V.transpose(2, 3))
        return WT

    def gradient(self, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """Gradient of Eq. (2), shape ``(P, K, r, B)`` like ``V`` (equal to :func:`batched_gradient`
        up to rounding).

        Computed in the transposed layout, with ``N`` as the contiguous axis: ``Z^T = tilde W^T
        X_U^T`` and ``(X_U^T (a * e))^T = (a * e)^T X_U``, each product reading the stored ``X_U``
        (or its stored transpose) as the *transposed* operand of the GEMM. For Figure 2's shapes
        (``N = 3000``, ``u = 500``, ``K B = 5 ... 60`` columns) MKL runs these 1.2-3.3 times as fast
        as ``X_U tilde W`` and ``X_U^T (a * e)`` (``bench/bench_agd.py --layouts``). On CPU both
        products get zero rows up to a multiple of :data:`GEMM_ROW_MULTIPLE` (:func:`padded_rows`)."""
        P, K, r, B = V.shape
        N, u = self.Xu.shape[1], self.Xu.shape[2]
        rows = padded_rows(K * B, V.device)
        ZT = self._dense_t(V, rows) @ self.Xu.transpose(1, 2)  # (P, rows, N); padded rows are exact zeros
        Z = ZT[:, :K * B].view(P, K, B, N)  # z_nj
        yT = y.transpose(1, 2) if y.dim() == 3 else y[:, None, :]  # (P, B, N) or (P, 1, N)
        e = torch.relu(Z).mean(dim=1) - yT  # residual e_n, (P, B, N)
        weighted = (ZT > 0).to(ZT.dtype)  # a_nj, and 0 on the padded rows
        weighted[:, :K * B].view(P, K, B, N).mul_(e[:, None])  # a_nj e_n (see batched_gradient)
        GT = (weighted @ self.XuT.transpose(1, 2))[:, :K * B].view(P, K, B, u)
        G = GT.gather(3, self.pos[:, :, None, :].expand(P, K, B, r))  # back to each neuron's support
        return G.transpose(2, 3).contiguous() / (N * K)

    def hvp(self, active: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product ``H(W) U`` with ``active`` from :meth:`active` (as :func:`batched_hvp`)."""
        P, K, r, B = U.shape
        N = self.Xu.shape[1]
        s = (self._preactivations(U) * active).sum(dim=2, keepdim=True)  # (P, N, 1, B)
        return self._restrict(self.XuT @ (active * s).view(P, N, K * B), B) / (N * K * K)

    def rows(self, keep: torch.Tensor) -> "DenseData":
        """The data sets ``keep`` (a boolean mask of length ``P``)."""
        return DenseData._from_parts(self.Xu[keep], self.XuT[keep], self.pos[keep])

    def to(self, dtype: torch.dtype) -> "DenseData":
        return DenseData._from_parts(self.Xu.to(dtype), self.XuT.to(dtype), self.pos)


def batched_top_eigenvalue(
    Xg: torch.Tensor | GatheredData | DenseData, V: torch.Tensor, max_iterations: int = 300, rtol: float = 1e-10,
    seed: int = 0, XgT: torch.Tensor | None = None,
) -> torch.Tensor:
    """Largest Hessian eigenvalue ``lambda_max`` at each ``V`` by the Lanczos method, shape ``(P, B)``.

    Each run builds its own Krylov basis ``q_0, H q_0, ...`` (fully re-orthogonalised)
    and takes the largest eigenvalue of the small tridiagonal matrix it spans (the
    top Ritz value). Ritz values rise monotonically to ``lambda_max`` and converge far
    faster than power iteration when the top eigenvalues are close, which is typical
    of this Hessian: tens of Hessian-vector products instead of thousands. A run is
    frozen once its estimate changes by less than ``rtol`` (relative) in one step, or
    its Krylov space is exhausted; every run starts from the same vector (drawn from
    ``seed``), so a run's estimate does not depend on which other runs share its batch.
    ``Xg`` is the gathered data (a tensor) or a :class:`GatheredData` / :class:`DenseData`.
    """
    P, K, r, B = V.shape
    data = Xg if isinstance(Xg, (GatheredData, DenseData)) else GatheredData(Xg, XgT)
    active = data.active(V)
    tiny = torch.finfo(V.dtype).tiny
    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = torch.randn((1, K, r, 1), generator=gen, dtype=V.dtype).to(V.device)
    q = start.expand_as(V).clone()
    q = q / q.norm(dim=(1, 2), keepdim=True)
    basis = [q]
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    lam = torch.zeros(P, B, dtype=V.dtype, device=V.device)
    done = torch.zeros(P, B, dtype=torch.bool, device=V.device)
    for k in range(min(max_iterations, K * r)):
        w = data.hvp(active, q)
        alphas.append((w * q).sum(dim=(1, 2)))
        Q = torch.stack(basis)  # (k+1, P, K, r, B)
        for _ in range(2):  # full re-orthogonalisation, twice for stability
            w = w - (Q * (Q * w).sum(dim=(2, 3), keepdim=True)).sum(dim=0)
        beta = w.norm(dim=(1, 2))  # (P, B)
        T = torch.diag_embed(torch.stack(alphas, dim=-1))
        if betas:
            off = torch.stack(betas, dim=-1)
            T = T + torch.diag_embed(off, offset=1) + torch.diag_embed(off, offset=-1)
        theta = torch.linalg.eigvalsh(T)[..., -1]
        converged = ((theta - lam).abs() <= rtol * theta.abs()) | (beta <= 1e-12 * theta.abs().clamp_min(tiny))
        lam = torch.where(done, lam, theta)
        done |= converged
        if bool(done.all()):
            break
        betas.append(beta)
        q = w / beta[:, None, None, :].clamp_min(tiny)
        basis.append(q)
    return lam


# --------------------------------------------------------------------------
# one weight matrix, one data set (numpy in, numpy out)
# --------------------------------------------------------------------------


def _prepare(W, X, y, supports):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    W = np.asarray(W, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, d), got {X.shape}")
    N, d = X.shape
    supports = check_supports("supports", supports, d)
    K, r = supports.shape
    check_shape("y", y, (N,))
    check_shape("W", W, (r, K))
    for name, arr in (("X", X), ("y", y), ("W", W)):
        check_finite(name, arr)
    Xg = torch.from_numpy(np.transpose(X[:, supports], (1, 0, 2)).copy())[None]  # (1, K, N, r)
    V = torch.from_numpy(W.T.copy())[None, :, :, None]  # (1, K, r, 1)
    return Xg, torch.from_numpy(y)[None], V


def empirical_risk(W: np.ndarray, X: np.ndarray, y: np.ndarray, supports: np.ndarray) -> float:
    """Empirical risk ``f_D(W)`` of Eq. (2).

    Parameters
    ----------
    W: student weights, shape ``(r, K)``; column ``j`` is ``w_j``.
    X: inputs, shape ``(N, d)``.  y: labels, shape ``(N,)``.
    supports: the student's index sets ``Omega``, shape ``(K, r)``.
    """
    Xg, yt, V = _prepare(W, X, y, supports)
    return float(batched_risk(Xg, yt, V)[0, 0])


def risk_gradient(W: np.ndarray, X: np.ndarray, y: np.ndarray, supports: np.ndarray) -> np.ndarray:
    """Gradient ``grad f_D(W)`` of Eq. (2), shape ``(r, K)`` (formula in the module docstring)."""
    Xg, yt, V = _prepare(W, X, y, supports)
    return batched_gradient(Xg, yt, V)[0, :, :, 0].T.numpy()


def risk_hessian(W: np.ndarray, X: np.ndarray, y: np.ndarray, supports: np.ndarray) -> np.ndarray:
    """Hessian ``grad^2 f_D(W)`` of Eq. (2), shape ``(rK, rK)``, ordered as ``vec(W)``.

    Exact wherever no ``z_nj`` is exactly 0 (almost every ``W``); this is the
    matrix whose spectrum Theorem 1 (Eq. 7) bounds.
    """
    Xg, _, V = _prepare(W, X, y, supports)
    Xg, V = Xg[0], V[0, :, :, 0]  # (K, N, r), (K, r)
    K, N, r = Xg.shape
    active = (torch.einsum("knr,kr->kn", Xg, V) > 0).to(Xg.dtype)
    A = (Xg * active[:, :, None]).permute(1, 0, 2).reshape(N, K * r)  # row n = [a_n1 x_n1, ..., a_nK x_nK]
    return (A.T @ A / (N * K * K)).numpy()


def dense_risk(W_tilde: np.ndarray, X: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """Eq. (4): the risk of a dense ``tilde W`` (shape ``(d, K)``) under the constraint ``tilde W = M ⊙ tilde W``.

    Raises if ``W_tilde`` has a non-zero entry outside the mask ``M``.
    """
    W_tilde = np.asarray(W_tilde, dtype=float)
    mask = np.asarray(mask)
    X = np.asarray(X, dtype=float)
    check_shape("mask", mask, W_tilde.shape)
    if np.any((mask == 0) & (W_tilde != 0)):
        raise ValueError("W_tilde violates the constraint W_tilde = M ⊙ W_tilde of Eq. (4)")
    K = W_tilde.shape[1]
    outputs = np.maximum(X @ W_tilde, 0.0).sum(axis=1) / K
    return float(0.5 * np.mean((outputs - np.asarray(y, dtype=float)) ** 2))
