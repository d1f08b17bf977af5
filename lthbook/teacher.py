"""The sparse teacher network of Eq. (1), the student's masks, and W*.

Symbols follow the paper (§2 and §5):

* ``K`` neurons, input dimension ``d``, ``N`` samples;
* the teacher's neuron ``j`` sees ``r*`` inputs, indexed by ``Omega*_j``, with
  weights ``hat w*_j`` (the columns of ``hat W*``, shape ``(r*, K)``);
* the student's neuron ``j`` sees ``r >= r*`` inputs ``Omega_j ⊇ Omega*_j``;
* ``W*`` (shape ``(r, K)``) is the teacher written in the student's coordinates
  (the *augmented* matrix of §2): entry ``(i, j)`` is the teacher weight of input
  ``Omega_j[i]`` when that input is in ``Omega*_j`` and 0 otherwise;
* the mask ``M`` and the zero-padded ``tilde W`` (shape ``(d, K)``) of Eq. (4).

Index sets are stored as integer arrays of shape ``(K, r)``, each row sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ._validation import as_generator, check_finite, check_float, check_int, check_memory, check_shape


def relu(z: np.ndarray) -> np.ndarray:
    """The activation ``phi(z) = max(z, 0)`` used throughout the paper."""
    return np.maximum(z, 0.0)


def check_supports(name: str, supports: np.ndarray, d: int) -> np.ndarray:
    """Validate an index-set array of shape ``(K, r)`` with distinct entries in ``[0, d)``."""
    supports = np.asarray(supports)
    if supports.ndim != 2 or not np.issubdtype(supports.dtype, np.integer):
        raise ValueError(f"{name} must be a 2-D integer array of shape (K, r), got {supports.shape} {supports.dtype}")
    if supports.size and (supports.min() < 0 or supports.max() >= d):
        raise ValueError(f"{name} entries must lie in [0, d) = [0, {d})")
    for j, row in enumerate(supports):
        if len(np.unique(row)) != len(row):
            raise ValueError(f"{name}[{j}] has repeated indices; each Omega_j must be a set")
    return supports


@dataclass(frozen=True)
class SparseTeacher:
    """Ground-truth network of Eq. (1): ``y = (1/K) sum_j phi(hat w*_j^T x_{Omega*_j}) + xi``.

    Attributes
    ----------
    weights:
        ``hat W*``, shape ``(r*, K)``; column ``j`` holds the weights of neuron ``j``.
    supports:
        ``Omega*``, shape ``(K, r*)``; row ``j`` lists the inputs neuron ``j`` sees.
    d:
        Input dimension.
    """

    weights: np.ndarray
    supports: np.ndarray
    d: int

    def __post_init__(self) -> None:
        check_int("d", self.d, 1)
        check_supports("supports", self.supports, self.d)
        K, r_star = self.supports.shape
        check_shape("weights", self.weights, (r_star, K))
        check_finite("weights", self.weights)

    @property
    def K(self) -> int:
        """Number of hidden neurons ``K``."""
        return self.supports.shape[0]

    @property
    def r_star(self) -> int:
        """Inputs per teacher neuron ``r*``."""
        return self.supports.shape[1]

    def mask(self) -> np.ndarray:
        """Teacher mask ``M*`` of shape ``(d, K)``: ``M*_{ij} = 1`` iff ``i in Omega*_j``."""
        return mask_matrix(self.supports, self.d)

    def dense_weights(self) -> np.ndarray:
        """Zero-padded ``tilde W*`` of shape ``(d, K)`` (Eq. 4)."""
        return embed(self.weights, self.supports, self.d)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Noiseless outputs ``g(x_n; hat W*)`` of Eq. (1) for the rows of ``X`` (shape ``(N, d)``)."""
        X = np.asarray(X, dtype=float)
        check_shape("X", X, (None, self.d))
        Z = np.einsum("nkr,rk->nk", X[:, self.supports], self.weights)
        return relu(Z).mean(axis=1)


def mask_matrix(supports: np.ndarray, d: int) -> np.ndarray:
    """Mask ``M`` of Eq. (4), shape ``(d, K)``: ``M_{ij} = 1`` iff ``i in Omega_j``."""
    supports = check_supports("supports", supports, d)
    M = np.zeros((d, supports.shape[0]))
    for j, row in enumerate(supports):
        M[row, j] = 1.0
    return M


def embed(W: np.ndarray, supports: np.ndarray, d: int) -> np.ndarray:
    """Zero-pad ``W`` (shape ``(r, K)``, student coordinates) to ``tilde W`` (shape ``(d, K)``)."""
    supports = check_supports("supports", supports, d)
    W = np.asarray(W, dtype=float)
    check_shape("W", W, (supports.shape[1], supports.shape[0]))
    W_tilde = np.zeros((d, supports.shape[0]))
    for j, row in enumerate(supports):
        W_tilde[row, j] = W[:, j]
    return W_tilde


def sample_teacher(K: int, d: int, r_star: int, seed: int | np.random.Generator | None = None) -> SparseTeacher:
    """Draw a teacher as in §5: each ``Omega*_j`` is ``r*`` indices drawn from ``[d]``
    without replacement, each weight uniform in ``[-0.5, 0.5]``."""
    K = check_int("K", K, 1)
    d = check_int("d", d, 1)
    r_star = check_int("r_star", r_star, 1, d)
    rng = as_generator(seed)
    supports = np.stack([np.sort(rng.choice(d, size=r_star, replace=False)) for _ in range(K)])
    weights = rng.uniform(-0.5, 0.5, size=(r_star, K))
    return SparseTeacher(weights=weights, supports=supports, d=d)


def sample_student_supports(
    teacher: SparseTeacher, r: int, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Student index sets ``Omega_j ⊇ Omega*_j`` with ``|Omega_j| = r``.

    Each ``Omega_j`` keeps the teacher's ``r*`` inputs and adds ``r - r*`` others
    drawn uniformly without replacement; ``r = d`` gives the dense network.
    """
    r = check_int("r", r, teacher.r_star, teacher.d)
    rng = as_generator(seed)
    rows = []
    for star in teacher.supports:
        others = np.setdiff1d(np.arange(teacher.d), star)
        extra = rng.choice(others, size=r - teacher.r_star, replace=False)
        rows.append(np.sort(np.concatenate([star, extra])))
    return np.stack(rows)


def augmented_weights(teacher: SparseTeacher, supports: np.ndarray) -> np.ndarray:
    """``W*`` of §2, shape ``(r, K)``: the teacher in the student's coordinates.

    Requires ``Omega_j ⊇ Omega*_j`` for every ``j`` (otherwise no student weight
    matrix reproduces the teacher, and a ``ValueError`` names the neuron).
    """
    supports = check_supports("supports", supports, teacher.d)
    if supports.shape[0] != teacher.K:
        raise ValueError(f"supports must have K={teacher.K} rows, got {supports.shape[0]}")
    W_star = np.zeros((supports.shape[1], teacher.K))
    for j in range(teacher.K):
        missing = np.setdiff1d(teacher.supports[j], supports[j])
        if missing.size:
            raise ValueError(
                f"student mask Omega_{j} must contain the teacher's Omega*_{j}; missing inputs {missing.tolist()}"
            )
        position = {int(i): p for p, i in enumerate(supports[j])}
        for w, i in zip(teacher.weights[:, j], teacher.supports[j]):
            W_star[position[int(i)], j] = w
    return W_star


def noise_std(clean_outputs: np.ndarray, noise_level: float) -> float:
    """``sigma`` for a noise level ``sigma / E_y`` (§5), with ``E_y = sqrt(mean g(x_n)^2)``."""
    noise_level = check_float("noise_level", noise_level, 0.0)
    energy = float(np.sqrt(np.mean(np.square(clean_outputs))))
    return noise_level * energy


@dataclass(frozen=True)
class Problem:
    """One training set ``D = {(x_n, y_n)}`` with its teacher and a student architecture.

    Attributes
    ----------
    X: inputs, shape ``(N, d)``, rows i.i.d. ``N(0, I_d)``.
    y: labels of Eq. (1), shape ``(N,)``, including noise.
    y_clean: noiseless labels ``g(x_n; hat W*)``.
    teacher: the :class:`SparseTeacher`.
    supports: the student's ``Omega``, shape ``(K, r)``.
    W_star: the augmented ``W*``, shape ``(r, K)``.
    sigma: standard deviation of the Gaussian noise ``xi_n``.
    """

    X: np.ndarray
    y: np.ndarray
    y_clean: np.ndarray
    teacher: SparseTeacher
    supports: np.ndarray
    W_star: np.ndarray
    sigma: float = 0.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the fields as :func:`make_problem` does, so a hand-built problem with a NaN,
        a wrong length or a mask that misses the teacher fails here, naming the field."""
        if not isinstance(self.teacher, SparseTeacher):
            raise ValueError(f"teacher must be a SparseTeacher, got {type(self.teacher).__name__}")
        for name in ("X", "y", "y_clean", "W_star"):
            value = getattr(self, name)
            if not (isinstance(value, np.ndarray) and value.dtype == np.float64):
                try:  # lists, float32 ... become float64 arrays; make_problem's arrays pass unchanged
                    value = np.asarray(value, dtype=float)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{name} must be an array of real numbers ({exc})") from None
                object.__setattr__(self, name, value)
        if self.X.ndim != 2 or self.X.shape[0] < 1:
            raise ValueError(f"X must have shape (N, d) with N >= 1, got {self.X.shape}")
        N, d = self.X.shape
        if d != self.teacher.d:
            raise ValueError(f"X must have d = teacher.d = {self.teacher.d} columns, got {d}")
        check_shape("y", self.y, (N,))
        check_shape("y_clean", self.y_clean, (N,))
        supports = check_supports("supports", self.supports, d)
        if supports.shape[0] != self.teacher.K:
            raise ValueError(f"supports must have K = teacher.K = {self.teacher.K} rows, got {supports.shape[0]}")
        check_shape("W_star", self.W_star, (supports.shape[1], self.teacher.K))
        for name in ("X", "y", "y_clean", "W_star"):
            check_finite(name, getattr(self, name))
        object.__setattr__(self, "sigma", check_float("sigma", self.sigma, 0.0))
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def K(self) -> int:
        return self.supports.shape[0]

    @property
    def r(self) -> int:
        return self.supports.shape[1]

    def gathered(self) -> np.ndarray:
        """The inputs each student neuron sees, ``x_{n, Omega_j}``, shape ``(K, N, r)``."""
        return np.ascontiguousarray(np.transpose(self.X[:, self.supports], (1, 0, 2)))

    def mask(self) -> np.ndarray:
        """The student mask ``M`` of Eq. (4), shape ``(d, K)``."""
        return mask_matrix(self.supports, self.d)


def orthonormal_teacher(K: int, d: int, seed: int | np.random.Generator | None = None) -> SparseTeacher:
    """A dense teacher (``r* = d``) whose ``K`` weight vectors are orthonormal.

    Its ``W*`` has condition number 1, which isolates the ``K``-dependence of
    Theorem 1's bounds from the conditioning of a random ``W*`` (the ``Theta``'s
    in Eq. 7 hide constants that depend on it). Needs ``K <= d``.
    """
    K = check_int("K", K, 1)
    d = check_int("d", d, K)
    rng = as_generator(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, K)))
    return SparseTeacher(weights=Q, supports=np.tile(np.arange(d), (K, 1)), d=d)


def problem_memory_bytes(K: int, d: int, r_star: int, r: int, N: int) -> int:
    """Bytes :func:`make_problem` allocates at its peak for these sizes (exact Python integers):
    the inputs ``X`` (``N d`` float64), the teacher's gathered inputs and pre-activations
    (``N K (r* + 2)``), the labels and noise (``3 N``), the index sets drawn per neuron
    (``3 d`` int64 at a time) and ``W*``, ``Omega`` (``2 r K``)."""
    return 8 * (N * d + N * K * (r_star + 2) + 3 * N + 3 * d + 2 * r * K + 2 * K * r_star)


def _check_problem_memory(caller: str, K: int, d: int, r_star: int, r: int, N: int) -> None:
    check_memory(f"{caller}(K={K}, d={d}, r_star={r_star}, r={r}, N={N})",
                 problem_memory_bytes(K, d, r_star, r, N),
                 f"X alone is N*d*8 = {N * d * 8} bytes; reduce N or d")


def make_problem_from_teacher(
    teacher: SparseTeacher,
    r: int,
    N: int,
    noise_level: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> Problem:
    """Draw the student mask (``|Omega_j| = r``), ``N`` inputs ``x_n ~ N(0, I_d)`` and labels of Eq. (1) for ``teacher``."""
    r = check_int("r", r, teacher.r_star, teacher.d)
    N = check_int("N", N, 1)
    noise_level = check_float("noise_level", noise_level, 0.0)
    _check_problem_memory("make_problem_from_teacher", teacher.K, teacher.d, teacher.r_star, r, N)
    rng = as_generator(seed)
    supports = sample_student_supports(teacher, r, rng)
    X = rng.standard_normal((N, teacher.d))
    y_clean = teacher(X)
    sigma = noise_std(y_clean, noise_level)
    y = y_clean + sigma * rng.standard_normal(N)
    return Problem(
        X=X,
        y=y,
        y_clean=y_clean,
        teacher=teacher,
        supports=supports,
        W_star=augmented_weights(teacher, supports),
        sigma=sigma,
        meta={"noise_level": noise_level},
    )


def make_problem(
    K: int,
    d: int,
    r_star: int,
    r: int,
    N: int,
    noise_level: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> Problem:
    """Draw a teacher, a student mask, ``N`` Gaussian inputs and noisy labels (§5 recipe).

    Parameters
    ----------
    K, d, r_star, r, N:
        Paper symbols ``K``, ``d``, ``r*``, ``r`` and ``N``; need ``1 <= r* <= r <= d``.
    noise_level:
        ``sigma / E_y`` (§5); 0 gives noiseless labels.
    seed:
        Integer seed or ``numpy.random.Generator``; equal seeds give equal problems.
    """
    K = check_int("K", K, 1)
    d = check_int("d", d, 1)
    r = check_int("r", r, 1, d)
    r_star = check_int("r_star", r_star, 1, r)
    N = check_int("N", N, 1)
    noise_level = check_float("noise_level", noise_level, 0.0)
    _check_problem_memory("make_problem", K, d, r_star, r, N)
    rng = as_generator(seed)
    teacher = sample_teacher(K, d, r_star, rng)
    return make_problem_from_teacher(teacher, r, N, noise_level, rng)


def with_supports(problem: Problem, supports: np.ndarray) -> Problem:
    """The same teacher and samples seen through another student mask ``Omega`` (shape ``(K, r)``).

    ``W*`` is recomputed for the new mask (:func:`augmented_weights`), so the new
    mask must still contain the teacher's (``Omega_j ⊇ Omega*_j``). Use
    :func:`dense_supports` for the unpruned student (``r = d``).
    """
    supports = check_supports("supports", supports, problem.d)
    if supports.shape[0] != problem.K:
        raise ValueError(f"supports must have K={problem.K} rows, got {supports.shape[0]}")
    supports = np.sort(supports, axis=1)
    return replace(problem, supports=supports, W_star=augmented_weights(problem.teacher, supports))


def dense_supports(K: int, d: int) -> np.ndarray:
    """Index sets of the dense student: every neuron sees all ``d`` inputs (``r = d``, ``M`` all ones)."""
    return np.tile(np.arange(check_int("d", d, 1)), (check_int("K", K, 1), 1))
