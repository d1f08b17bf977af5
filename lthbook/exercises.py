"""Auto-checks for the coding exercises at the end of the chapters.

Each ``check_*`` function takes the student's function, calls it on a few random
instances drawn from ``seed`` and compares its output with the package's own,
tested implementation (the reference named in each docstring) within a stated
tolerance.

* On success it prints one line (``check_gradient: OK ...``) and returns ``True``.
* On a mismatch it raises :class:`ExerciseCheckError`, a subclass of
  ``AssertionError``, so that the notebook cell fails visibly. The message names
  the instance (its shapes and seed), the size of the mismatch and one entry
  (expected vs got), and, where the pattern is recognisable, a hint such as
  "off by a constant factor" or "wrong sign". It never shows the reference code.
* If the student's function raises, the error is reported with the instance it
  failed on; ``NotImplementedError`` (an unfinished stub of the student notebook)
  is passed through unchanged.
* The student's function must compute the answer itself: while it runs, the functions
  that implement the answer in the ``lthbook`` package may not run (a profile hook
  watches every Python call; each check lists the modules it guards in
  :data:`REFERENCE_MODULES`). A function that imports and calls the reference
  (``from lthbook.risk import empirical_risk``), or that is the reference under another
  name, fails with :class:`ExerciseCheckError` naming what it called. What an exercise
  hands the student stays allowed: ``risk_gradient`` in the AGD step, ``risk_hessian``
  for the step size, and the methods of the masked networks of §5.2. This keeps a graded
  submission (``make assignments``, Otter Grader) honest; it cannot stop anyone from
  copying the public source code by hand.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ._validation import check_int
from .agd import initial_points, run_agd
from .convergence import fit_convergence_rate
from .pruning import magnitude_mask
from .risk import empirical_risk, risk_gradient, risk_hessian
from .teacher import make_problem
from .tensor_init import first_moment, second_moment

__all__ = [
    "ExerciseCheckError",
    "check_risk",
    "check_gradient",
    "check_hessian",
    "check_step_size",
    "check_agd_step",
    "check_magnitude_mask",
    "check_first_moment",
    "check_second_moment",
    "check_convergence_rate",
    "check_imp_prune",
    "check_rewind",
]


class ExerciseCheckError(AssertionError):
    """Raised by a ``check_*`` function when the student's function disagrees with the reference."""


# --------------------------------------------------------------------------
# random instances
# --------------------------------------------------------------------------

#: (K, d, r*, r, N) of the instances: one neuron, a pruned student, a wider one, a dense one.
_SHAPES = ((1, 6, 2, 3, 12), (3, 12, 3, 6, 40), (4, 15, 3, 9, 30), (2, 8, 8, 8, 25))


@dataclass(frozen=True)
class _Instance:
    index: int
    seed: int
    W: np.ndarray
    X: np.ndarray
    y: np.ndarray
    supports: np.ndarray
    problem: Any

    def describe(self) -> str:
        K, r = self.supports.shape[0], self.supports.shape[1]
        N, d = self.X.shape
        return f"instance {self.index} (K={K}, d={d}, r={r}, N={N}, seed={self.seed})"


def _instances(seed: int, n_instances: int) -> Iterator[_Instance]:
    """Small noisy problems with a ``W`` away from ``W*`` (where the gradient would vanish)."""
    for i in range(n_instances):
        K, d, r_star, r, N = _SHAPES[i % len(_SHAPES)]
        s = seed + i
        problem = make_problem(K=K, d=d, r_star=r_star, r=r, N=N, noise_level=0.1, seed=s)
        W = initial_points(problem.W_star, 0.5, seed=s)[0]
        yield _Instance(i, s, W, problem.X, problem.y, problem.supports, problem)


def _check_setup(name: str, student_fn: Callable, n_instances: int, seed: int) -> None:
    if not callable(student_fn):
        raise TypeError(f"{name}: student_fn must be a function, got {type(student_fn).__name__}")
    check_int("n_instances", n_instances, 1)
    check_int("seed", seed, 0)


_PACKAGE_DIR = Path(__file__).resolve().parent

#: What each check forbids the student's function to call: every module-level function of
#: the named ``lthbook`` modules, or one function (``"module.function"``). The modules hold
#: the reference implementation of the exercise and the code built on it.
REFERENCE_MODULES: dict[str, tuple[str, ...]] = {
    "check_risk": ("risk", "agd", "geometry", "paper_code"),
    "check_gradient": ("risk", "agd", "geometry", "paper_code"),
    "check_hessian": ("risk", "agd", "geometry", "paper_code"),
    # the exercise builds on lthbook.risk.risk_hessian (imported by the chapter); only the
    # eigenvalue solver and the step-size code are off limits
    "check_step_size": ("agd", "geometry", "paper_code", "risk.batched_top_eigenvalue"),
    # builds on lthbook.risk.risk_gradient
    "check_agd_step": ("agd", "convergence", "paper_code", "training"),
    "check_magnitude_mask": ("pruning", "imp", "paper_code"),
    "check_first_moment": ("tensor_init",),
    "check_second_moment": ("tensor_init",),
    "check_convergence_rate": ("convergence", "stats"),
    "check_imp_prune": ("imp", "pruning", "imp_experiments", "paper_code"),
    "check_rewind": ("imp", "imp_experiments", "paper_code", "training"),
}


@functools.lru_cache(maxsize=None)
def _forbidden_code(check: str) -> dict[Any, str]:
    """Code object -> qualified name of every function that ``check`` forbids (see
    :data:`REFERENCE_MODULES`). Methods of classes are not included: the checks hand the
    student objects whose methods live in lthbook."""
    import importlib

    found: dict[Any, str] = {}
    for spec in REFERENCE_MODULES[check]:
        module_name, _, function = spec.partition(".")
        module = importlib.import_module(f"lthbook.{module_name}")
        members = {function: getattr(module, function)} if function else vars(module)
        for obj in members.values():
            fn = inspect.unwrap(obj) if callable(obj) else None
            code = getattr(fn, "__code__", None)
            # defined in this module (not imported into it from another lthbook module)
            if (inspect.isfunction(fn) and code is not None and fn.__module__ == module.__name__
                    and Path(code.co_filename).resolve().parent == _PACKAGE_DIR):
                found[code] = f"{fn.__module__}.{fn.__qualname__}"
    return found


class _ReferenceGuard:
    """Records the forbidden functions called while the student's function runs (``sys.setprofile``)."""

    def __init__(self, check: str):
        self.called: list[str] = []
        self._forbidden = _forbidden_code(check)
        self._previous = None

    def _profile(self, frame, event, arg):
        if event == "call":
            name = self._forbidden.get(frame.f_code)
            if name is not None and name not in self.called:
                self.called.append(name)

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        threading.setprofile(None)
        return False


def _call(name: str, student_fn: Callable, where: str, *args: Any) -> Any:
    """Call the student's function; report its exceptions with the failing instance, and
    reject it if it called a function of the lthbook package (see the module docstring)."""
    try:
        with _ReferenceGuard(name) as guard:
            result = student_fn(*args)
    except NotImplementedError:
        raise
    except Exception as exc:  # the student's code may raise anything
        raise ExerciseCheckError(
            f"{name}: your function raised {type(exc).__name__}: {exc}\n  on {where}"
        ) from exc
    if guard.called:
        raise ExerciseCheckError(
            f"{name}: your function called {', '.join(guard.called[:3])} on {where}; that is the book's "
            "own implementation of what the exercise asks for: compute the answer yourself.")
    return result


# --------------------------------------------------------------------------
# comparison with helpful messages
# --------------------------------------------------------------------------


def _diagnose(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str:
    """A hint for two recognisable mistakes: a flipped sign and a constant factor."""
    if np.allclose(got, -expected, rtol=rtol, atol=atol) and np.abs(expected).max() > atol:
        return "got = -expected: check the sign."
    if expected.size == 1:
        return f"got / expected = {float(got.ravel()[0] / expected.ravel()[0]):.6g}." if expected.ravel()[0] else ""
    big = np.abs(expected) > 1e3 * atol + 1e-300
    if big.any():
        ratio = got[big] / expected[big]
        if np.allclose(ratio, ratio[0], rtol=1e-6) and np.allclose(got, ratio[0] * expected, rtol=rtol, atol=atol):
            return (f"got = {ratio[0]:.6g} * expected everywhere: a normalising factor "
                    "(1/N, 1/K, 1/2, ...) is probably missing or extra.")
    return ""


def _compare(name: str, got: Any, expected: np.ndarray, where: str, *, rtol: float, atol: float,
             what: str = "output") -> None:
    expected = np.asarray(expected, dtype=float)
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ExerciseCheckError(f"{name}: your {what} on {where} is not numeric ({exc})") from exc
    if got.shape != expected.shape:
        raise ExerciseCheckError(
            f"{name}: your {what} on {where} has shape {got.shape}, expected shape {expected.shape}")
    if not np.all(np.isfinite(got)):
        raise ExerciseCheckError(f"{name}: your {what} on {where} contains NaN or inf")
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return
    diff = np.abs(got - expected)
    worst = np.unravel_index(int(np.argmax(diff - rtol * np.abs(expected))), diff.shape) if diff.ndim else ()
    entry = f" at index {tuple(int(i) for i in worst)}" if worst else ""
    lines = [
        f"{name}: your {what} differs from the expected one on {where}.",
        f"  max |got - expected| = {diff.max():.3e} (tolerance: {atol:g} + {rtol:g} * |expected|)",
        f"  worst entry{entry}: expected {expected[worst]:.6g}, got {got[worst]:.6g}",
    ]
    hint = _diagnose(got, expected, rtol, atol)
    if hint:
        lines.append("  hint: " + hint)
    raise ExerciseCheckError("\n".join(lines))


def _ok(name: str, n: int, tolerance: str) -> bool:
    print(f"{name}: OK, matches the reference on {n} random instance{'s' if n > 1 else ''} ({tolerance}).")
    return True


def _check_eq2_quantity(name: str, student_fn: Callable, reference: Callable, n_instances: int, seed: int,
                        rtol: float, what: str) -> bool:
    """Compare ``student_fn(W, X, y, supports)`` with ``reference`` (same signature) on random instances."""
    _check_setup(name, student_fn, n_instances, seed)
    for inst in _instances(seed, n_instances):
        got = _call(name, student_fn, inst.describe(), inst.W.copy(), inst.X.copy(), inst.y.copy(),
                    inst.supports.copy())
        expected = reference(inst.W, inst.X, inst.y, inst.supports)
        _compare(name, got, expected, inst.describe(), rtol=rtol, atol=1e-12, what=what)
    return _ok(name, n_instances, f"relative tolerance {np.format_float_scientific(rtol, exp_digits=1, trim='-')}")


# --------------------------------------------------------------------------
# §2: risk and gradient (Eq. 2)
# --------------------------------------------------------------------------


def check_risk(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(W, X, y, supports) -> float``, the empirical risk ``f_D(W)`` of Eq. (2).

    ``W`` has shape ``(r, K)``, ``X`` ``(N, d)``, ``y`` ``(N,)`` and ``supports``
    (the index sets ``Omega_j``) ``(K, r)``. Reference: :func:`lthbook.risk.empirical_risk`;
    tolerance ``1e-12 + 1e-9 * |expected|``.
    """
    return _check_eq2_quantity("check_risk", student_fn, empirical_risk, n_instances, seed, 1e-9, "risk")


def check_gradient(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(W, X, y, supports) -> array (r, K)``, the gradient of Eq. (2) with respect to ``W``.

    Column ``j`` of the result is ``d f_D / d w_j``. Reference:
    :func:`lthbook.risk.risk_gradient`; tolerance ``1e-12 + 1e-8 * |expected|``.
    """
    return _check_eq2_quantity("check_gradient", student_fn, risk_gradient, n_instances, seed, 1e-8, "gradient")


# --------------------------------------------------------------------------
# §3: Hessian and the step size
# --------------------------------------------------------------------------


def check_hessian(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(W, X, y, supports) -> array (rK, rK)``, the Hessian of Eq. (2).

    Rows and columns are ordered as ``vec(W) = [w_1; ...; w_K]`` (the columns of ``W``
    stacked), so the ``(j, l)`` block of size ``r x r`` is ``d^2 f_D / dw_j dw_l^T``.
    Reference: :func:`lthbook.risk.risk_hessian`; tolerance ``1e-12 + 1e-8 * |expected|``.
    """
    return _check_eq2_quantity("check_hessian", student_fn, risk_hessian, n_instances, seed, 1e-8, "Hessian")


def check_step_size(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(W, X, y, supports, beta) -> float``, the step size ``eta = (1 + beta) / lambda_max``.

    ``lambda_max`` is the largest eigenvalue of the Hessian of Eq. (2) at ``W``.
    Reference: the step that :func:`lthbook.agd.run_agd` picks with ``eta="auto"``
    at ``W(0) = W``. Tolerance: relative ``1e-4`` (the reference finds ``lambda_max``
    by the Lanczos method, :func:`lthbook.risk.batched_top_eigenvalue`).
    """
    name = "check_step_size"
    _check_setup(name, student_fn, n_instances, seed)
    betas = (0.0, 0.2, 0.5, 0.9)
    for inst in _instances(seed, n_instances):
        beta = betas[inst.index % len(betas)]
        where = f"{inst.describe()}, beta={beta}"
        got = _call(name, student_fn, where, inst.W.copy(), inst.X.copy(), inst.y.copy(), inst.supports.copy(), beta)
        expected = run_agd(inst.problem, inst.W[None], eta="auto", beta=beta, max_iter=1).eta[0, 0]
        _compare(name, got, expected, where, rtol=1e-4, atol=0.0, what="step size")
    return _ok(name, n_instances, "relative tolerance 1e-4")


# --------------------------------------------------------------------------
# §4: one step of Algorithm 1, magnitude pruning, moments
# --------------------------------------------------------------------------


def check_agd_step(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(W, W_prev, X, y, supports, eta, beta) -> array (r, K)``: one step of Algorithm 1.

    The step maps ``W(t) = W`` and ``W(t-1) = W_prev`` to ``W(t+1)`` (Algorithm 1,
    line 4, on the whole training set). Reference: :func:`lthbook.agd.run_agd` with a
    fixed ``eta``, run for one step from ``W(0)`` (where ``W(-1) = W(0)``) and for two
    steps (the second one uses the momentum term). Tolerance ``1e-12 + 1e-9 * |expected|``.
    """
    name = "check_agd_step"
    _check_setup(name, student_fn, n_instances, seed)
    betas = (0.2, 0.5, 0.0, 0.9)
    for inst in _instances(seed, n_instances):
        beta = betas[inst.index % len(betas)]
        eta = 0.5 * inst.supports.shape[0]  # any fixed step will do for comparing one update
        W0 = inst.W
        one = run_agd(inst.problem, W0[None], eta=eta, beta=beta, max_iter=1).W[0, 0]
        two = run_agd(inst.problem, W0[None], eta=eta, beta=beta, max_iter=2).W[0, 0]
        for step, W, W_prev, expected in ((1, W0, W0, one), (2, one, W0, two)):
            where = f"{inst.describe()}, eta={eta}, beta={beta}, step {step} (W_prev {'= W' if step == 1 else '!= W'})"
            got = _call(name, student_fn, where, W.copy(), W_prev.copy(), inst.X.copy(), inst.y.copy(),
                        inst.supports.copy(), eta, beta)
            _compare(name, got, expected, where, rtol=1e-9, atol=1e-12, what="W(t+1)")
    return _ok(name, n_instances, "relative tolerance 1e-9")


def check_magnitude_mask(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(W_tilde, prune_fraction) -> bool array (d, K)``: global magnitude pruning (§4.1).

    The mask keeps the largest-magnitude entries of ``tilde W`` and removes
    ``round(prune_fraction * d * K)`` of the smallest, ranking all ``d K`` weights
    together. Reference: :func:`lthbook.pruning.magnitude_mask`. The instances have
    no ties, so the mask must match exactly.
    """
    name = "check_magnitude_mask"
    _check_setup(name, student_fn, n_instances, seed)
    fractions = (0.3, 0.62, 0.9, 0.15)
    for i in range(n_instances):
        s = seed + i
        K, d = _SHAPES[i % len(_SHAPES)][:2]
        W_tilde = np.random.default_rng(s).standard_normal((d, K))
        fraction = fractions[i % len(fractions)]
        where = f"instance {i} (tilde W of shape (d, K) = ({d}, {K}), prune_fraction={fraction}, seed={s})"
        got = _call(name, student_fn, where, W_tilde.copy(), fraction)
        expected = magnitude_mask(W_tilde, fraction)
        got = np.asarray(got)
        if got.shape != expected.shape:
            raise ExerciseCheckError(f"{name}: your mask on {where} has shape {got.shape}, expected {expected.shape}")
        if not np.all((got == 0) | (got == 1)):
            raise ExerciseCheckError(f"{name}: your mask on {where} must hold only 0/1 (or False/True)")
        got = got.astype(bool)
        if not np.array_equal(got, expected):
            wrong_keep = int(np.sum(got & ~expected))
            wrong_drop = int(np.sum(~got & expected))
            lines = [
                f"{name}: your mask differs from the expected one on {where}.",
                f"  you keep {int(got.sum())} weights, the expected mask keeps {int(expected.sum())};",
                f"  {wrong_keep} weights you keep should be pruned, {wrong_drop} you prune should be kept.",
            ]
            if wrong_keep and wrong_drop:
                kept_wrongly = np.abs(W_tilde[got & ~expected])
                pruned_wrongly = np.abs(W_tilde[~got & expected])
                if kept_wrongly.max() < pruned_wrongly.min():
                    lines.append("  hint: every weight you keep by mistake is smaller in magnitude than "
                                 "every weight you prune by mistake.")
            raise ExerciseCheckError("\n".join(lines))
    return _ok(name, n_instances, "exact match")


def _moment_instances(seed: int, n_instances: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    for i in range(n_instances):
        K, d, r_star, _, N = _SHAPES[i % len(_SHAPES)]
        s = seed + i
        problem = make_problem(K=K, d=d, r_star=r_star, r=r_star, N=10 * N, noise_level=0.1, seed=s)
        yield f"instance {i} (X of shape (N, D) = ({10 * N}, {d}), seed={s})", problem.X, problem.y


def check_first_moment(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(X, y) -> array (D,)``: the empirical first moment ``M1 = (1/N) sum_n y_n x_n``.

    Used by the tensor initialization of §4 to fix the signs and magnitudes of the
    columns of ``W(0)``. Reference: :func:`lthbook.tensor_init.first_moment`;
    tolerance ``1e-12 + 1e-9 * |expected|``.
    """
    return _check_moment("check_first_moment", student_fn, first_moment, "M1", n_instances, seed)


def check_second_moment(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(X, y) -> array (D, D)``: the empirical ``M2 = (1/N) sum_n y_n (x_n x_n^T - I)``.

    Its top-``K`` eigenvectors span the teacher's weights (step 1 of the tensor
    initialization, §4). Reference: :func:`lthbook.tensor_init.second_moment`;
    tolerance ``1e-12 + 1e-9 * |expected|``.
    """
    return _check_moment("check_second_moment", student_fn, second_moment, "M2", n_instances, seed)


def _check_moment(name: str, student_fn: Callable, reference: Callable, what: str, n_instances: int,
                  seed: int) -> bool:
    """The moment checks: ``student_fn(X, y)`` against ``reference(X, y)`` on the instances of
    :func:`_moment_instances`, tolerance ``1e-12 + 1e-9 * |expected|``."""
    _check_setup(name, student_fn, n_instances, seed)
    for where, X, y in _moment_instances(seed, n_instances):
        got = _call(name, student_fn, where, X.copy(), y.copy())
        _compare(name, got, reference(X, y), where, rtol=1e-9, atol=1e-12, what=what)
    return _ok(name, n_instances, "relative tolerance 1e-9")


# --------------------------------------------------------------------------
# §5.1: the convergence rate nu of Theorem 2
# --------------------------------------------------------------------------


def _error_curve(rng: np.random.Generator, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """A recorded error curve: a slow start above 1e-2, a linear phase at rate ``nu``, a round-off floor."""
    t = np.arange(0, 6000, 5)
    start = 0.3 * 0.998 ** t  # slow transient, above the window
    t0 = int(np.ceil(np.log(1e-2 / 0.3) / np.log(0.998)))  # where the transient reaches 1e-2
    linear = 1e-2 * nu ** np.clip(t - t0, 0, None) * np.exp(0.01 * rng.standard_normal(t.size))
    errors = np.where(t < t0, start, linear)
    errors = np.maximum(errors, 1e-13 * (1 + 0.5 * rng.random(t.size)))  # round-off floor, below the window
    return t, errors


def check_convergence_rate(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(iterations, errors) -> float``: the contraction factor ``nu`` of Theorem 2 (Eq. 9).

    ``nu`` is ``exp`` of the least-squares slope of ``log(error)`` against the
    iteration, fitted over the errors strictly between ``1e-10`` and ``1e-2`` (the
    linear phase). The curves have a slow start above ``1e-2``, 1% multiplicative
    noise and a round-off floor near ``1e-13``. Reference:
    :func:`lthbook.convergence.fit_convergence_rate`; tolerance ``1e-4`` on ``nu``.
    """
    name = "check_convergence_rate"
    _check_setup(name, student_fn, n_instances, seed)
    rates = (0.99, 0.95, 0.995, 0.9)
    for i in range(n_instances):
        s = seed + i
        nu = rates[i % len(rates)]
        t, errors = _error_curve(np.random.default_rng(s), nu)
        where = f"instance {i} ({t.size} recorded errors every 5 iterations, seed={s})"
        got = _call(name, student_fn, where, t.copy(), errors.copy())
        expected = fit_convergence_rate(t, errors, upper=1e-2, lower=1e-10)
        _compare(name, got, expected, where, rtol=0.0, atol=1e-4, what="nu")
    return _ok(name, n_instances, "absolute tolerance 1e-4")


# --------------------------------------------------------------------------
# §5.2: iterative magnitude pruning (torch)
# --------------------------------------------------------------------------


def _imp_instance(seed: int, index: int) -> tuple[Any, Any, float, str]:
    """A weight matrix, a mask keeping part of it, and a pruning fraction (no ties, no .5 rounding)."""
    import torch

    shapes = ((6, 4), (10, 8), (5, 12), (16, 16))
    fractions = (0.2, 0.35, 0.5, 0.2)
    rows, cols = shapes[index % len(shapes)]
    fraction = fractions[index % len(fractions)]
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    mask = (torch.rand(rows, cols, generator=gen) < 0.7).to(torch.float64)
    if (fraction * float(mask.sum())) % 1.0 == 0.5:  # keep clear of round-half-to-even
        mask.view(-1)[int(torch.nonzero(mask.view(-1))[0])] = 0.0
    where = (f"instance {index} (weight of shape {tuple(weight.shape)}, {int(mask.sum())} entries unpruned, "
             f"fraction={fraction}, seed={seed})")
    return weight, mask, fraction, where


def check_imp_prune(student_fn: Callable, n_instances: int = 4, seed: int = 0) -> bool:
    """Check ``student_fn(weight, mask, fraction) -> mask``: one IMP pruning step on one weight tensor (§5.2).

    ``weight`` and ``mask`` are torch tensors of the same shape (``mask`` holds 1 for
    kept, 0 for pruned entries). The new mask removes ``round(fraction * n_left)`` of the
    ``n_left`` still-unpruned entries, those of smallest ``|weight|``, and keeps every
    entry already pruned. Reference: :func:`lthbook.imp.prune_layerwise` on a linear
    layer carrying ``mask``. Exact match (the instances have no ties).
    """
    import torch

    from .imp import attach_masks, masks, prune_layerwise, set_masks

    name = "check_imp_prune"
    _check_setup(name, student_fn, n_instances, seed)
    for i in range(n_instances):
        weight, mask, fraction, where = _imp_instance(seed + i, i)
        layer = torch.nn.Sequential(torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64))
        attach_masks(layer)
        with torch.no_grad():
            layer[0].weight_orig.copy_(weight)
        set_masks(layer, {"0.weight": mask})
        prune_layerwise(layer, fraction)
        expected = masks(layer)["0.weight"].to(torch.bool)
        got = _call(name, student_fn, where, weight.clone(), mask.clone(), fraction)
        got = torch.as_tensor(got)
        if tuple(got.shape) != tuple(expected.shape):
            raise ExerciseCheckError(f"{name}: your mask on {where} has shape {tuple(got.shape)}, "
                                     f"expected {tuple(expected.shape)}")
        if not bool(((got == 0) | (got == 1)).all()):
            raise ExerciseCheckError(f"{name}: your mask on {where} must hold only 0/1 (or False/True)")
        got = got.to(torch.bool)
        if not torch.equal(got, expected):
            old = mask.to(torch.bool)
            lines = [f"{name}: your mask differs from the expected one on {where}.",
                     f"  you keep {int(got.sum())} entries, the expected mask keeps {int(expected.sum())}."]
            if bool((got & ~old).any()):
                lines.append(f"  {int((got & ~old).sum())} entries that were already pruned are unpruned in your mask.")
            removed = old & ~got
            if bool(removed.any()) and bool((expected & removed).any()):
                lines.append(f"  {int((expected & removed).sum())} entries you remove should stay.")
            raise ExerciseCheckError("\n".join(lines))
    return _ok(name, n_instances, "exact match")


def check_rewind(student_fn: Callable, n_instances: int = 3, seed: int = 0) -> bool:
    """Check ``student_fn(model, initial) -> None``: rewinding a pruned network to its initialization (§5.2).

    ``model`` is a small masked network (:func:`lthbook.imp.attach_masks`) that has been
    pruned and trained; ``initial`` maps each parameter name to its saved initial value
    (:func:`lthbook.imp.snapshot_parameters`). After the call every parameter must equal
    its initial value and the masks must be unchanged, and ``initial`` must survive
    further training of ``model`` unchanged (the values are copied, not shared).
    Reference: :func:`lthbook.imp.rewind` and :func:`lthbook.imp.check_rewind`; exact
    (bitwise) comparison.
    """
    import torch

    from .imp import attach_masks, check_rewind as rewind_errors, masks, prune_layerwise, rewind, set_masks
    from .imp import snapshot_parameters

    name = "check_rewind"
    _check_setup(name, student_fn, n_instances, seed)

    def net(d, h):
        return torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Linear(h, 1)).double()

    def train(model, x, steps):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()

    for i in range(n_instances):
        s = seed + i
        torch.manual_seed(s)
        d, h = 5 + i, 4 + 2 * i
        model = attach_masks(net(d, h))
        initial, reference = snapshot_parameters(model), snapshot_parameters(model)
        x = torch.randn(32, d, dtype=torch.float64)
        prune_layerwise(model, 0.2 * (i % 4 + 1))  # 20% to 80%, then again
        train(model, x, 3)
        mask_before = masks(model)
        expected = attach_masks(net(d, h))  # same architecture and masks, rewound by the reference
        set_masks(expected, mask_before)
        rewind(expected, reference)
        where = f"instance {i} (a {d}-{h}-1 ReLU network, pruned and trained 3 steps, seed={s})"
        _call(name, student_fn, where, model, initial)
        bad = rewind_errors(model, initial, reference)
        if bad:
            changed = [n for n in bad if not torch.equal(initial[n], reference[n])]
            detail = (f"your function changed the saved initialization of {changed}" if changed else
                      f"after your rewind these parameters differ from their initial values: {bad}")
            raise ExerciseCheckError(f"{name}: on {where}, {detail}.")
        if any(not torch.equal(m, masks(model)[k]) for k, m in mask_before.items()):
            raise ExerciseCheckError(
                f"{name}: on {where}, your rewind changed the masks; pruned weights must stay pruned.")
        if not torch.equal(model(x), expected(x)):
            raise ExerciseCheckError(f"{name}: on {where}, the rewound network computes other outputs than expected.")
        train(model, x, 2)
        shared = [n for n in initial if not torch.equal(initial[n], reference[n])]
        if shared:
            raise ExerciseCheckError(
                f"{name}: on {where}, training after your rewind also changed the saved initialization of {shared}: "
                "the parameters share memory with `initial` instead of holding copies of its values.")
    return _ok(name, n_instances, "bitwise equality")
