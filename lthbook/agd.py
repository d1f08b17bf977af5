"""Algorithm 1 (accelerated gradient descent, AGD) with the §5 modifications.

One iteration (Algorithm 1, line 4) is

    W(t+1) = W(t) - eta * grad f_D(W(t)) + beta * (W(t) - W(t-1)),

and ``beta = 0`` is plain gradient descent (GD). As in §5 of the paper:

* every step uses the whole training set (no fresh subsets per step);
* ``W(0)`` is a random point at a given relative distance from ``W*``
  (:func:`initial_points`), not the tensor initialization;
* a run stops when ``||W(t+1) - W(t)||_F / ||W(t)||_F < 1e-8`` or after
  10 000 iterations, and counts as a success when
  ``||W - W*||_F / ||W*||_F < 1e-4``.

Many runs go at once: ``P`` data sets, each with ``B`` initial points, are one
batch of tensors, and each step is a handful of batched matrix products. Each
run stops on its own (it is frozen once its stopping rule fires), and a run
whose iterates blow up or stop being finite is flagged ``diverged`` and
frozen at its last finite iterate: never a silent NaN.

Step size. The book uses the model exactly as Eqs. (1)-(2) write it (output
scaled by ``1/K``, risk by ``1/(2N)``). For that scaling the default
``eta="auto"`` sets, per run, ``eta = (1 + beta) / lambda_max``, with
``lambda_max`` the largest eigenvalue of the Hessian at ``W(0)`` (power
iteration): the middle of heavy-ball's stability interval
``0 < eta < 2(1 + beta)/lambda_max``, and ``1/L`` for GD. Theorem 2's
``eta = K/14`` has the same form, a constant over the Hessian's upper bound
``Theta(1/K)`` of Eq. (7). See :func:`paper_step_size` for how the paper's
``eta = 0.5`` maps onto this scaling.

Early exits (off by default, so the default is the paper's protocol exactly).
A run that cannot change its outcome any more may be settled before the
paper's rules stop it; the reason is recorded per run in ``exit_reason``:

* ``success_exit`` -- its relative error is below ``success_tol`` and fell over
  the last ``exit_window`` iterations (the run is inside the basin of ``W*``
  and converging, so the final error of the full protocol would be below
  ``success_tol`` too), or is below ``success_tol / 100``;
* ``stall_exit`` -- its error is above ``success_tol`` and changed by less than
  this fraction (e.g. 1%) over the last ``exit_window`` iterations: a run stuck
  at a spurious point. Runs that are still moving, however slowly, go on: runs
  that escape a plateau late drift by several percent per window before they
  do, while runs at a spurious point settle to a constant error;
* ``plateau_exit`` -- its error changed by less than this fraction over the
  last window (a noisy run at its error floor, Fig. 5).

These are predictions, so :mod:`lthbook.timing` measures how often they
disagree with the full protocol (:func:`lthbook.timing.compare_exit_rules`).

Kernels. Each step needs the products ``z_nj = w_j^T x_{n,Omega_j}`` and
``sum_n a_nj e_n x_{n,Omega_j}`` (:mod:`lthbook.risk`) for all ``B`` runs of all ``P`` data
sets. ``kernel="gathered"`` forms them per neuron on the gathered inputs ``X[:, Omega_j]``
(the fewest operations, ``4 N r K B`` per data set, in products with ``B`` columns that read
``K N r`` numbers twice: bound by memory traffic). ``kernel="dense"`` writes the ``K B``
weight vectors into one matrix that is zero outside the supports and multiplies it by the
columns of ``X`` in the union of the supports (``u`` of them): ``4 N u K B`` operations in
products with ``K B`` columns that read the data once. ``kernel="auto"`` takes the dense
kernel when ``u < DENSE_CROSSOVER * r``; the constant is measured by
``bench/bench_agd.py --crossover`` (see its comment). On CPU the dense kernel pads its ``K B``
rows to a multiple of :data:`lthbook.risk.GEMM_ROW_MULTIPLE` (MKL is slow on a remainder). The
iterates agree to rounding.

Threads. On CPU, ``threads=None`` uses one torch thread when an iteration
costs fewer than ``SINGLE_THREAD_FLOPS`` (waking a second thread costs more
than it saves) or when the machine is busy (1-minute load average at least the
number of cores minus 0.5: other processes hold the cores, and threads that wait
for each other then cost far more than they gain; ``bench/bench_agd.py`` at load
average 5-7 on 2 cores: 7.3 ms per trial-iteration on 2 threads against 2.95 ms on
one), and torch's setting otherwise; an integer sets it exactly. The result does
not depend on the thread count.

Precision. ``"float64"`` (default) resolves the ``1e-8`` stopping rule.
``"float32+polish"`` iterates in float32 until the relative step falls under
``1e-6`` and then finishes in float64 within the same iteration budget. Plain
float32 cannot resolve relative steps much below ``1e-8``: for large ``r`` its
step-to-step change stalls near that level, so the paper's rule fires late or
only by rounding luck, and the run may go to the iteration cap.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from ._validation import as_generator, check_float, check_int, resolve_device
from .risk import DenseData, GatheredData, batched_top_eigenvalue
from .teacher import Problem

#: Stopping rule of §5: a run stops when its relative step falls below this.
STOP_TOL = 1e-8
#: Iteration cap of §5.
MAX_ITER = 10_000
#: Success threshold of §5 on the relative error ``||W - W*||_F / ||W*||_F``.
SUCCESS_TOL = 1e-4
DIVERGENCE_FACTOR = 1e6
PRECISIONS = ("float64", "float32", "float32+polish")
POLISH_SWITCH_TOL = 1e-6
#: Below this many floating-point operations per iteration, CPU runs use one thread:
#: for small matrices, waking a second thread costs more than it saves, and on a busy
#: machine (two processes on two cores) the threads' spin-waiting slows tiny runs a hundredfold.
SINGLE_THREAD_FLOPS = 5e7
#: Gradient kernels of :func:`run_agd` (module docstring, "Kernels").
KERNELS = ("auto", "gathered", "dense")
#: ``kernel="auto"`` uses the dense kernel when ``u < DENSE_CROSSOVER * r`` (``u``: the largest
#: union of the ``K`` supports in the batch, ``r``: inputs per neuron), the gathered one otherwise.
#: Measured with ``bench/bench_agd.py --crossover --threads 1 --rounds 3 --iters 10`` (Fig 2's
#: shape: K=5, d=500, N=3000, 5 data sets x 12 starts; 2-core machine, the other core busy),
#: ms per iteration, gathered / dense (min of 3), 2026-12-04, dense kernel in the transposed
#: layout: r=100 (u/r 3.35) 28.5/34.6, r=150 (2.79) 37.8/41.2, r=200 (2.31) 53.0/43.9,
#: r=250 (1.96) 59.6/50.6, r=300 (1.67) 69.7/49.5, r=400 (1.25) 87.4/48.0, r=500 (1.00)
#: 113.0/48.7: the ratio crosses 1 at u/r = 2.66 (1.87 with the earlier dense layout).
#: Re-run on the idle machine the same day: 0.83, 0.85, 1.00, 1.19, 1.28, 1.80, 2.23 at the same
#: r, crossing at 2.32; r=200 (u/r 2.31) is a tie, so the constant's choice there costs nothing.
DENSE_CROSSOVER = 2.66
#: Drop finished starts from the batch: when every live data set has at most ``b`` unfinished
#: runs (starts), the loop keeps only ``b`` columns per data set (its unfinished runs first), so a
#: data set whose last start keeps moving to the iteration cap no longer pays for all ``B``.
#: Off while an error history is recorded. Each run's iterates are computed as before; only the
#: width of the products changes, which may change rounding.
COMPACT_STARTS = True
#: ``exit_reason`` codes of :class:`AGDResult`.
EXIT_REASONS = ("cap", "step", "success_exit", "stall_exit", "plateau_exit", "diverged")
_CAP, _STEP, _SUCCESS, _STALL, _PLATEAU, _DIVERGED = range(6)


@contextmanager
def _cpu_threads(device: torch.device, flops_per_iteration: float, threads: int | None = None) -> Iterator[None]:
    """Torch CPU threads for one run: ``threads`` if given, else 1 for small iterations or a busy machine."""
    if device.type != "cpu":
        yield
        return
    wanted = threads if threads is not None else (1 if flops_per_iteration < SINGLE_THREAD_FLOPS or _busy() else None)
    previous = torch.get_num_threads()
    if wanted is None or wanted == previous:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _busy() -> bool:
    """Whether other processes hold the cores: 1-minute load average >= cores - 0.5."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1) - 0.5
    except OSError:  # no load average on this platform
        return False


def paper_step_size(K: int, eta_unscaled: float = 0.5) -> float:
    """Translate a step size for the model *without* the ``1/K`` output factor.

    If the student outputs ``sum_j phi(.)`` and fits labels ``K y``, its risk is
    ``K^2`` times Eq. (2), so GD with step ``eta_unscaled`` on it takes exactly
    the steps of GD with ``eta = K^2 * eta_unscaled`` on Eq. (2).
    ``paper_step_size(5) == 12.5``.
    """
    K = check_int("K", K, 1)
    eta_unscaled = check_float("eta_unscaled", eta_unscaled, 0.0, low_inclusive=False)
    return K * K * eta_unscaled


def initial_points(
    W_star: np.ndarray, distance: float | Sequence[float], n: int = 1, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Random ``W(0)`` with ``||W(0) - W*||_F / ||W*||_F`` equal to ``distance`` (§5).

    The direction is uniform on the sphere (a normalized Gaussian matrix).
    ``distance`` may be a scalar (``n`` points) or a sequence (one point per
    entry, ``n`` ignored). Returns shape ``(n, r, K)``.
    """
    W_star = np.asarray(W_star, dtype=float)
    if W_star.ndim != 2:
        raise ValueError(f"W_star must have shape (r, K), got {W_star.shape}")
    scalar = np.ndim(distance) == 0
    dist = np.atleast_1d(np.asarray(distance, dtype=float))
    if dist.ndim != 1 or dist.size == 0 or not np.all(np.isfinite(dist)) or np.any(dist <= 0):
        raise ValueError(f"distance must be finite and > 0, got {distance!r}")
    if scalar:
        n = check_int("n", n, 1)
        dist = np.full(n, dist[0])
    rng = as_generator(seed)
    U = rng.standard_normal((dist.size,) + W_star.shape)
    U /= np.linalg.norm(U, axis=(1, 2), keepdims=True)
    return W_star[None] + (dist * np.linalg.norm(W_star))[:, None, None] * U


@dataclass
class AGDResult:
    """Outcome of :func:`run_agd`; arrays have shape ``(P, B)`` (data sets x initial points).

    Attributes
    ----------
    W: final iterates, shape ``(P, B, r, K)``.
    rel_error: ``||W - W*||_F / ||W*||_F``.
    success: ``rel_error < success_tol`` (and not diverged).
    stopped: the stopping rule ``||W(t+1)-W(t)||_F/||W(t)||_F < tol`` fired.
    diverged: iterates became non-finite or exploded; ``W`` is the last finite iterate.
    n_iter: iterations taken.
    exit_reason: why each run ended, one of :data:`EXIT_REASONS` (``"cap"``: ``max_iter``
        reached; ``"step"``: the stopping rule; the early exits of the module docstring;
        ``"diverged"``).
    eta: step size used per run.
    history: relative errors every ``record_every`` iterations, shape ``(T, P, B)``
        (``history_iters`` gives the iteration numbers), or ``None``. Recording ends
        once every run of the batch has stopped (checked every 25 iterations), so a
        stopped run's last entries repeat its final error.
    settings: the run's settings as used (``kernel`` among them: the one ``"auto"`` chose).
    """

    W: np.ndarray
    rel_error: np.ndarray
    success: np.ndarray
    stopped: np.ndarray
    diverged: np.ndarray
    n_iter: np.ndarray
    exit_reason: np.ndarray
    eta: np.ndarray
    beta: float
    precision: str
    history: np.ndarray | None = None
    history_iters: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


def _stack_problems(problems: Problem | Sequence[Problem]) -> list[Problem]:
    if isinstance(problems, Problem):
        return [problems]
    problems = list(problems)
    if not problems or not all(isinstance(p, Problem) for p in problems):
        raise TypeError("problems must be a Problem or a non-empty sequence of Problem")
    shapes = {(p.K, p.N, p.r) for p in problems}
    if len(shapes) != 1:
        raise ValueError(f"all problems in one batch must share (K, N, r); got {sorted(shapes)}")
    return problems


def _union_width(problems: Sequence[Problem]) -> int:
    """``u``: the largest number of distinct inputs the ``K`` neurons of one problem see."""
    return max(int(np.unique(p.supports).size) for p in problems)


def choose_kernel(problems: Problem | Sequence[Problem], kernel: str = "auto") -> str:
    """The gradient kernel :func:`run_agd` uses for these problems: ``kernel`` itself unless it is
    ``"auto"``, then ``"dense"`` when ``u < DENSE_CROSSOVER * r`` (``u``: the largest union of the
    ``K`` index sets ``Omega_j`` of a problem, ``r``: inputs per neuron) and ``"gathered"`` otherwise."""
    if not isinstance(kernel, str) or kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel != "auto":
        return kernel
    problems = _stack_problems(problems)
    return "dense" if _union_width(problems) < DENSE_CROSSOVER * problems[0].r else "gathered"


def _kernel_flops(problems: Sequence[Problem], kernel: str, B: int) -> float:
    K, N, r = problems[0].K, problems[0].N, problems[0].r
    width = _union_width(problems) if kernel == "dense" else r
    return 4.0 * len(problems) * B * K * N * width


def _kernel_data(problems: Sequence[Problem], kernel: str, dev: torch.device) -> GatheredData | DenseData:
    if kernel == "dense":
        X = [torch.from_numpy(p.X).to(dev, torch.float64) for p in problems]
        return DenseData(X, torch.from_numpy(np.stack([p.supports for p in problems]).astype(np.int64)).to(dev))
    return GatheredData(torch.from_numpy(np.stack([p.gathered() for p in problems])).to(dev, torch.float64))


def run_agd(
    problems: Problem | Sequence[Problem],
    W0: np.ndarray,
    eta: float | str | np.ndarray = "auto",
    beta: float = 0.2,
    *,
    max_iter: int = MAX_ITER,
    tol: float = STOP_TOL,
    success_tol: float = SUCCESS_TOL,
    precision: str = "float64",
    device: str | torch.device | None = "cpu",
    record_every: int | None = None,
    progress: bool = False,
    labels: np.ndarray | None = None,
    success_exit: bool = False,
    stall_exit: float | None = None,
    plateau_exit: float | None = None,
    exit_window: int = 500,
    threads: int | None = None,
    kernel: str = "auto",
) -> AGDResult:
    """Run Algorithm 1 from many initial points on one or many data sets at once.

    Parameters
    ----------
    problems:
        A :class:`~lthbook.teacher.Problem` or a list of ``P`` problems sharing ``K``, ``N``, ``r``.
    W0:
        Initial points: shape ``(B, r, K)`` (the same ``B`` starting points for each problem is
        *not* assumed: for ``P > 1`` pass ``(P, B, r, K)``).
    eta:
        Step size ``eta``: a positive number, an array of shape ``(P, B)``, or ``"auto"`` =
        ``(1 + beta) / lambda_max(grad^2 f_D(W(0)))`` per run (see module docstring).
    beta:
        Momentum ``beta`` in ``[0, 1)``; 0 gives GD. The paper's §5 uses 0.2.
    max_iter, tol, success_tol:
        Iteration cap (10 000), stopping tolerance on the relative step (1e-8) and
        success threshold on the relative error (1e-4), all from §5.
    precision:
        ``"float64"``, ``"float32"`` or ``"float32+polish"`` (module docstring).
    device:
        ``"cpu"`` or ``"cuda[:i]"``.
    record_every:
        Record the relative error every this many iterations (``None``: no history).
    progress:
        Show a tqdm progress bar over iterations.
    labels:
        Optional per-run labels ``y``, shape ``(P, B, N)``, replacing each problem's ``y``
        (runs on the same inputs with different label noise share one batch, Fig. 5).
    success_exit, stall_exit, plateau_exit, exit_window:
        Early exits (module docstring); all off by default. ``stall_exit`` and
        ``plateau_exit`` are relative changes of the error in ``(0, 1)`` over the last
        ``exit_window`` iterations (>= 50).
    threads:
        Torch CPU threads during the run (``None``: automatic, see module docstring).
    kernel:
        How the gradient's products are formed: ``"gathered"`` (one product per neuron on
        ``x_{n,Omega_j}``), ``"dense"`` (one product with ``X`` over all neurons, zeros outside
        the supports) or ``"auto"`` (module docstring, "Kernels"). The iterates agree up to
        rounding; the ``settings`` of the returned :class:`AGDResult` record the kernel used.
    """
    problems = _stack_problems(problems)
    P = len(problems)
    K, N, r = problems[0].K, problems[0].N, problems[0].r
    W0 = np.asarray(W0, dtype=float)
    if W0.ndim == 3 and P == 1:
        W0 = W0[None]
    if W0.ndim != 4 or W0.shape[0] != P or W0.shape[2:] != (r, K):
        raise ValueError(f"W0 must have shape (B, {r}, {K}) for one problem or ({P}, B, {r}, {K}); got {W0.shape}")
    if not np.all(np.isfinite(W0)):
        raise ValueError("W0 must contain only finite values (found NaN or inf)")
    B = W0.shape[1]
    beta = check_float("beta", beta, 0.0, 1.0, high_inclusive=False)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_float("tol", tol, 0.0, low_inclusive=False)
    success_tol = check_float("success_tol", success_tol, 0.0, low_inclusive=False)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if record_every is not None:
        record_every = check_int("record_every", record_every, 1)
    exit_window = check_int("exit_window", exit_window, 50)
    if plateau_exit is not None:
        plateau_exit = check_float("plateau_exit", plateau_exit, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    if stall_exit is not None:
        stall_exit = check_float("stall_exit", stall_exit, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    if threads is not None:
        threads = check_int("threads", threads, 1)
    dev = resolve_device(device)
    kernel = choose_kernel(problems, kernel)

    f64 = torch.float64
    if labels is None:
        y = torch.from_numpy(np.stack([p.y for p in problems])).to(dev, f64)
    else:
        labels = np.asarray(labels, dtype=float)
        if labels.shape != (P, B, N) or not np.all(np.isfinite(labels)):
            raise ValueError(f"labels must be finite with shape (P, B, N) = ({P}, {B}, {N}); got {labels.shape}")
        y = torch.from_numpy(np.ascontiguousarray(labels.transpose(0, 2, 1))).to(dev, f64)  # (P, N, B)
    V_star = torch.from_numpy(np.stack([p.W_star.T for p in problems])).to(dev, f64)[..., None]  # (P,K,r,1)
    V0 = torch.from_numpy(np.ascontiguousarray(W0.transpose(0, 3, 2, 1))).to(dev, f64)  # (P,K,r,B)

    with _cpu_threads(dev, _kernel_flops(problems, kernel, B), threads):
        data = _kernel_data(problems, kernel, dev)  # float64; shared by the Lanczos set-up and every step
        if isinstance(eta, str):
            if eta != "auto":
                raise ValueError(f"eta must be a positive number, an array of shape (P, B), or 'auto'; got {eta!r}")
            lam = batched_top_eigenvalue(data, V0)
            if not bool((lam > 0).all()):
                raise ValueError(
                    "eta='auto' needs W0 at which some neuron is active on some sample (the Hessian at W0 is zero); "
                    "pass an explicit eta"
                )
            eta_t = (1.0 + beta) / lam
        else:
            eta_arr = np.broadcast_to(np.asarray(eta, dtype=float), (P, B)) if np.ndim(eta) else np.full((P, B), float(eta))
            if not np.all(np.isfinite(eta_arr)) or np.any(eta_arr <= 0):
                raise ValueError(f"eta must be finite and > 0, got {eta!r}")
            eta_t = torch.from_numpy(np.array(eta_arr)).to(dev, f64)

        state = _State(V=V0.clone(), V_prev=V0.clone(), n_iter=torch.zeros(P, B, dtype=torch.long, device=dev),
                       stopped=torch.zeros(P, B, dtype=torch.bool, device=dev),
                       diverged=torch.zeros(P, B, dtype=torch.bool, device=dev),
                       settled=torch.full((P, B), -1, dtype=torch.long, device=dev))
        rules = _ExitRules(success=bool(success_exit), stall=stall_exit, plateau=plateau_exit,
                           window=exit_window, success_tol=success_tol)
        history: list[torch.Tensor] = []
        history_iters: list[int] = []
        star_norm = V_star.norm(dim=(1, 2))  # (P,1)

        def rel_err(V: torch.Tensor) -> torch.Tensor:
            return (V.to(f64) - V_star).norm(dim=(1, 2)) / star_norm

        if record_every is not None:
            history.append(rel_err(state.V))
            history_iters.append(0)

        phases = [("float64", tol)] if precision == "float64" else [("float32", tol)]
        if precision == "float32+polish":
            phases = [("float32", max(tol, POLISH_SWITCH_TOL)), ("float64", tol)]

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_iter, desc="AGD iterations", unit="it")
        t = 0
        for phase_index, (dtype_name, phase_tol) in enumerate(phases):
            dtype = torch.float32 if dtype_name == "float32" else f64
            last_phase = phase_index == len(phases) - 1
            t = _iterate(state, data.to(dtype), y.to(dtype), V_star.to(dtype), eta_t.to(dtype), beta, t,
                         max_iter, phase_tol, record_every, history, history_iters, rules, bar)
            if not last_phase:
                # runs that met the float32 switch criterion continue in float64
                state.stopped &= state.diverged
            if t >= max_iter:
                break
        if bar is not None:
            bar.close()

    err = rel_err(state.V)
    success = (err < success_tol) & ~state.diverged
    reason = torch.full((P, B), _CAP, dtype=torch.long, device=dev)
    reason[state.stopped] = _STEP
    reason = torch.where(state.settled >= 0, state.settled, reason)
    reason[state.diverged] = _DIVERGED
    to_np = lambda a: a.detach().cpu().numpy()  # noqa: E731
    return AGDResult(
        W=to_np(state.V.to(f64).permute(0, 3, 2, 1)),
        rel_error=to_np(err),
        success=to_np(success),
        stopped=to_np(state.stopped & ~state.diverged),
        diverged=to_np(state.diverged),
        n_iter=to_np(state.n_iter),
        exit_reason=np.asarray(EXIT_REASONS, dtype=object)[to_np(reason)],
        eta=to_np(eta_t),
        beta=beta,
        precision=precision,
        history=to_np(torch.stack(history)) if history else None,
        history_iters=np.asarray(history_iters) if history else None,
        settings={"max_iter": max_iter, "tol": tol, "success_tol": success_tol, "device": str(dev),
                  "success_exit": bool(success_exit), "stall_exit": stall_exit, "plateau_exit": plateau_exit,
                  "exit_window": exit_window, "kernel": kernel},
    )


@dataclass
class _State:
    V: torch.Tensor
    V_prev: torch.Tensor
    n_iter: torch.Tensor
    stopped: torch.Tensor
    diverged: torch.Tensor
    settled: torch.Tensor  # exit code of an early exit, -1 if none


@dataclass
class _ExitRules:
    success: bool
    stall: float | None
    plateau: float | None
    window: int
    success_tol: float

    @property
    def any(self) -> bool:
        return self.success or self.stall is not None or self.plateau is not None

    @property
    def every(self) -> int:
        return max(1, self.window // 10)

    def settle(self, e_now: torch.Tensor, e_then: torch.Tensor) -> torch.Tensor:
        """Exit code per run (-1: keep going) from the errors now and one window ago."""
        code = torch.full(e_now.shape, -1, dtype=torch.long, device=e_now.device)
        change = (e_now / e_then.clamp_min(torch.finfo(e_now.dtype).tiny) - 1.0).abs()
        below = e_now < self.success_tol
        if self.plateau is not None:
            code = torch.where(change < self.plateau, _PLATEAU, code)
        if self.success:
            good = below & ((e_now < e_then) | (e_now < 1e-2 * self.success_tol))
            code = torch.where(good, _SUCCESS, code)
        if self.stall is not None:
            code = torch.where(~below & (change < self.stall) & (code < 0), _STALL, code)
        return code


def _iterate(state, data, y, V_star, eta, beta, t, max_iter, tol, record_every, history, history_iters, rules, bar):
    """Advance all unfinished runs until each stops, diverges, settles (early exit) or ``t``
    reaches ``max_iter``. Data sets whose runs are all finished are dropped from the batch, and
    (with :data:`COMPACT_STARTS`, no history recorded) so are finished starts once every live data
    set has fewer unfinished ones: the loop works on the live rows and columns only and writes
    finished ones back to ``state``."""
    f64 = torch.float64
    P = data.P
    rows = torch.arange(P, device=y.device)
    cols: torch.Tensor | None = None  # (P_live, b) columns of state in the loop; None: all B in order
    V, V_prev = state.V.to(y.dtype), state.V_prev.to(y.dtype)
    n_iter, stopped, diverged, settled = (state.n_iter.clone(), state.stopped.clone(), state.diverged.clone(),
                                          state.settled.clone())
    Vs, eta_w = V_star, eta
    star_norm = V_star.to(f64).norm(dim=(1, 2))  # (P_live, 1)
    limit = DIVERGENCE_FACTOR * (1.0 + V_star.norm(dim=(1, 2)))
    err_full = (state.V - V_star.to(f64)).norm(dim=(1, 2)) / star_norm  # (P, B); finished rows keep theirs
    checkpoints: list[torch.Tensor] = []
    check_every = 25
    compact = COMPACT_STARTS and record_every is None

    def errors() -> torch.Tensor:
        return (V.to(f64) - Vs.to(f64)).norm(dim=(1, 2)) / star_norm

    def run_index(c: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Per-row run indices ``c`` (rows x columns) broadcast to ``shape`` (run axis last)."""
        return c.view(c.shape[0], *([1] * (len(shape) - 2)), c.shape[1]).expand(*shape[:-1], c.shape[1])

    def put(full: torch.Tensor, out: torch.Tensor, part: torch.Tensor, c: torch.Tensor | None) -> None:
        """``full[out] = part`` on the columns ``c`` (last axis) of those rows."""
        if c is None:
            full[out] = part.to(full.dtype)
            return
        block = full[out]
        block.scatter_(-1, run_index(c, part.shape), part.to(full.dtype))
        full[out] = block

    def write_back(keep: torch.Tensor | None) -> None:
        out = rows if keep is None else rows[~keep]
        sel = slice(None) if keep is None else ~keep
        c = None if cols is None else cols[sel]
        put(state.V, out, V[sel], c)
        put(state.V_prev, out, V_prev[sel], c)
        put(state.n_iter, out, n_iter[sel], c)
        put(state.stopped, out, stopped[sel], c)
        put(state.diverged, out, diverged[sel], c)
        put(state.settled, out, settled[sel], c)

    def take(a: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The columns ``pos`` (per row) of a tensor whose last axis is the run axis."""
        if a.shape[-1] == 1:  # shared by all runs of the data set (eta, y of shape (P, N, 1))
            return a
        return a.gather(-1, run_index(pos, a.shape))

    while t < max_iter:
        done = stopped | diverged | (settled >= 0)
        if rules.any and t % rules.every == 0:
            checkpoints.append(errors())
            if len(checkpoints) > 11:
                checkpoints.pop(0)
            if len(checkpoints) == 11:  # the errors now and one exit_window ago
                code = rules.settle(checkpoints[-1], checkpoints[0])
                settled = torch.where((code >= 0) & ~done, code, settled)
                done = done | (settled >= 0)
        if t % check_every == 0:
            live = ~done.all(dim=1)
            if not bool(live.any()):
                break
            if not bool(live.all()):  # write back the finished data sets and drop them
                write_back(live)
                rows, V, V_prev = rows[live], V[live], V_prev[live]
                cols = None if cols is None else cols[live]
                n_iter, stopped, diverged, settled, done = n_iter[live], stopped[live], diverged[live], settled[live], done[live]
                data, y, Vs = data.rows(live), y[live], Vs[live]
                eta_w, limit, star_norm = eta_w[live], limit[live], star_norm[live]
                checkpoints = [c[live] for c in checkpoints]
            b = int((~done).sum(dim=1).max()) if compact else done.shape[1]
            if b < done.shape[1]:  # keep b columns per data set, its unfinished runs first
                pos = torch.sort(done.to(torch.int8), dim=1, stable=True).indices[:, :b]
                write_back(None)
                full = torch.arange(done.shape[1], device=done.device).expand_as(done) if cols is None else cols
                cols = full.gather(1, pos)
                V, V_prev = take(V, pos), take(V_prev, pos)
                n_iter, stopped, diverged, settled, done = (take(n_iter, pos), take(stopped, pos), take(diverged, pos),
                                                            take(settled, pos), take(done, pos))
                eta_w = take(eta_w, pos)
                y = take(y, pos) if y.dim() == 3 else y
                checkpoints = [take(c, pos) for c in checkpoints]
        active = ~done
        G = data.gradient(y, V)
        V_next = V - eta_w[:, None, None, :] * G + beta * (V - V_prev)
        step = (V_next - V).norm(dim=(1, 2)) / V.norm(dim=(1, 2)).clamp_min(torch.finfo(V.dtype).tiny)
        bad = ~torch.isfinite(V_next).all(dim=(1, 2)) | ((V_next - Vs).norm(dim=(1, 2)) > limit)
        move = active & ~bad
        m = move[:, None, None, :]
        V_prev = torch.where(m, V, V_prev)
        V = torch.where(m, V_next, V)
        n_iter += move.long()
        stopped |= move & (step < tol)
        diverged |= active & bad
        t += 1
        if bar is not None:
            bar.update(1)
        if record_every is not None and t % record_every == 0:
            err_full[rows] = errors()
            history.append(err_full.clone())
            history_iters.append(t)
    write_back(None)
    return t
