"""§4.1: finding a proper student mask by training the dense network and pruning by magnitude.

The paper's recipe: train the fully connected student (``r = d``) with
Algorithm 1 for ``T1`` iterations, sort all ``d K`` weights by absolute value
and remove the smallest ones. If the trained weights are close enough to the
zero-padded truth ``tilde W*`` (Eq. 4), every teacher weight is larger in
magnitude than every weight the teacher does not have, so removing at most a
``1 - r*/d`` fraction keeps every ``Omega*_j`` (a *proper* student,
``Omega_j ⊇ Omega*_j``), and removing exactly that fraction returns the
teacher's architecture ``M = M*``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_float, check_int
from .agd import initial_points, run_agd
from .teacher import Problem, SparseTeacher, dense_supports, embed, with_supports


def magnitude_mask(W_tilde: np.ndarray, prune_fraction: float) -> np.ndarray:
    """Boolean mask ``M`` (shape ``(d, K)``) keeping the largest-magnitude entries of ``tilde W``.

    All ``d K`` weights are ranked together (global magnitude pruning, as in §4.1);
    ``round(prune_fraction * d * K)`` of the smallest are removed. Ties are broken
    by position, so the mask always has exactly the requested number of zeros. A NaN or
    infinite weight (a diverged training run) has no magnitude to rank and is refused
    with a ``ValueError`` naming ``W_tilde``.
    """
    W_tilde = np.asarray(W_tilde, dtype=float)
    if W_tilde.ndim != 2:
        raise ValueError(f"W_tilde must have shape (d, K), got {W_tilde.shape}")
    if not np.isfinite(W_tilde).all():
        bad = np.argwhere(~np.isfinite(W_tilde))
        raise ValueError(f"W_tilde must contain only finite weights; found {len(bad)} NaN or infinite entries "
                         f"(first at (i, j) = {tuple(int(v) for v in bad[0])}): the training diverged")
    prune_fraction = check_float("prune_fraction", prune_fraction, 0.0, 1.0, high_inclusive=False)
    n_prune = int(round(prune_fraction * W_tilde.size))
    order = np.argsort(np.abs(W_tilde), axis=None, kind="stable")
    mask = np.ones(W_tilde.size, dtype=bool)
    mask[order[:n_prune]] = False
    return mask.reshape(W_tilde.shape)


def contains_teacher(mask: np.ndarray, teacher: SparseTeacher) -> np.ndarray:
    """Per neuron ``j``: does the kept set ``Omega_j`` contain the teacher's ``Omega*_j``? Shape ``(K,)``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (teacher.d, teacher.K):
        raise ValueError(f"mask must have shape (d, K) = ({teacher.d}, {teacher.K}), got {mask.shape}")
    return np.array([mask[teacher.supports[j], j].all() for j in range(teacher.K)])


@dataclass
class PruningOutcome:
    """Result of :func:`train_and_prune`.

    Attributes
    ----------
    mask: kept weights ``M``, shape ``(d, K)``.
    W_dense: trained dense weights ``tilde W``, shape ``(d, K)``.
    proper: every ``Omega_j ⊇ Omega*_j``.
    exact: ``M == M*`` (the teacher's architecture).
    dense_rel_error: ``||tilde W - tilde W*||_F / ||tilde W*||_F`` after training.
    """

    mask: np.ndarray
    W_dense: np.ndarray
    proper: bool
    exact: bool
    dense_rel_error: float


def train_dense(
    problem: Problem,
    iterations: int = 200,
    distance: float = 0.1,
    beta: float = 0.2,
    seed: int | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, float]:
    """Train the dense student (``r = d``) on ``problem``'s data for ``iterations`` AGD steps (``T1``).

    Starts at relative distance ``distance`` from ``tilde W*`` (the paper starts from
    the tensor initialization, which §4 shows lands in the convex region; a random
    start at small distance stands in for it here). Returns ``tilde W`` (shape
    ``(d, K)``) and its relative error ``||tilde W - tilde W*||_F / ||tilde W*||_F``.
    """
    iterations = check_int("iterations", iterations, 1)
    dense = with_supports(problem, dense_supports(problem.K, problem.d))
    W0 = initial_points(dense.W_star, distance, n=1, seed=seed)
    result = run_agd(dense, W0, beta=beta, max_iter=iterations, device=device)
    return embed(result.W[0, 0], dense.supports, problem.d), float(result.rel_error[0, 0])


def prune_trained(W_dense: np.ndarray, teacher: SparseTeacher, prune_fraction: float,
                  dense_rel_error: float = float("nan")) -> PruningOutcome:
    """Prune trained dense weights by magnitude and compare the kept mask with the teacher's ``M*``."""
    mask = magnitude_mask(W_dense, prune_fraction)
    return PruningOutcome(
        mask=mask,
        W_dense=W_dense,
        proper=bool(contains_teacher(mask, teacher).all()),
        exact=bool(np.array_equal(mask, teacher.mask().astype(bool))),
        dense_rel_error=dense_rel_error,
    )


def train_and_prune(
    problem: Problem,
    prune_fraction: float,
    iterations: int = 200,
    distance: float = 0.1,
    beta: float = 0.2,
    seed: int | None = None,
    device: str = "cpu",
) -> PruningOutcome:
    """§4.1 in one call: :func:`train_dense` then :func:`prune_trained`."""
    W_dense, error = train_dense(problem, iterations, distance, beta, seed, device)
    return prune_trained(W_dense, problem.teacher, prune_fraction, error)
