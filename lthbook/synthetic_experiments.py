"""The synthetic experiments of §5.1 (Figures 2-5): their cells and the assembly of the
cells' results into each figure's arrays.

A cell (:class:`lthbook.cells.Cell`) is one call of Algorithm 1
(:func:`lthbook.agd.run_agd`) on a batch of ``P`` data sets (trials) with ``B``
initial points each. The runner (:func:`lthbook.runner.run_figure`) stores each
cell's raw statistics in the on-disk cache as soon as it finishes, so an interrupted
run resumes without losing a finished cell. The settings per scale are in
:mod:`lthbook.presets`, the claim checks in :mod:`lthbook.claims`, and one
:class:`AgdFigure` per figure (:data:`FIG2` ... :data:`FIG5`) names its cells, its
per-cell computation and its assembly for the registry (:mod:`lthbook.registry`).

Common protocol (§5, :mod:`lthbook.agd`): inputs ``x_n ~ N(0, I_d)``, index sets
``Omega*_j`` of ``r*`` random inputs, teacher weights uniform in ``[-0.5, 0.5]``,
``W(0)`` at a prescribed relative distance ``||W(0) - W*||_F / ||W*||_F`` in a
uniformly random direction, full-batch AGD (Algorithm 1, line 4) with momentum
``beta``, stopped when the relative step falls below ``1e-8`` or after
``max_iter`` iterations, success when the relative error is below ``1e-4``.

Choices the paper leaves open (all configurable through ``overrides``):

* ``r* = r`` (``r_star: None``): the student *is* the exactly pruned network of
  width ``r`` (``Omega_j = Omega*_j``). The paper's Figures 2-5 vary "the
  sparsity" ``r`` without naming ``r*``; with ``r* = r`` varying ``r`` varies the
  winning ticket itself.
* Figure 2: the ``B`` initial distances of one trial share that trial's teacher
  and data set (one batch); the paper draws a fresh data set per (r, distance)
  test. The success rate per cell is an average over independent trials either way.
* Figure 4: ``W(0)`` at relative distance 0.1 (inside the convex region), so a
  failure means the sample size is insufficient, not a bad start.
* Figure 5: the noise levels of one trial share its teacher, inputs, noise
  direction and ``W(0)`` (common random numbers); only the noise scale changes.
* Step size: ``eta="auto"`` (``(1 + beta)/lambda_max`` at ``W(0)``, see
  :mod:`lthbook.agd`) except Figure 3, which uses the paper's ``eta = 0.5``
  translated to this book's ``1/K``-scaled risk (``eta = 0.5 K^2 = 12.5`` for
  ``K = 5``, :func:`lthbook.agd.paper_step_size`), and runs past the 1e-8 stopping
  rule (``tol = 1e-14``) so its curves show the linear phase down to ~1e-12.
* Iteration caps below the paper's 10 000 at the ``ci`` and ``book`` scales: a run
  stuck at a spurious point (Figure 2), a run with ``N`` close to ``rK`` (Figure 4)
  and every noisy run (Figure 5) zig-zags across ReLU kinks and never meets the 1e-8
  rule, so each such run costs the full cap.

Result of :func:`lthbook.runner.run_figure` (all figures): ``figure``, ``title``, ``claim``, ``scale``,
``seed``, ``device``, ``threads``, ``settings`` (the full parameter set, after overrides),
``eta`` (the step size actually used, per ``r``), ``axes``, ``raw`` (per-cell
statistics, see each ``_assemble_figN``), ``cells`` (number of cells),
``cells_from_cache``, ``cell_time_s`` (summed compute time of all cells, also of
those read from the cache), ``wall_time_s`` (this call), ``versions``
(python, numpy, torch, lthbook) and ``created`` (UTC time stamp).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import __version__
from .agd import initial_points, run_agd
from .cache import to_jsonable
from .cells import Cell, cell_rng
from .presets import EARLY_EXIT, resolve_eta
from .stats import fit_rate
from .teacher import make_problem

# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


def _chunks(trials: int, chunk: int) -> list[int]:
    """Trial counts of the chunks: ``[chunk, chunk, ..., rest]``."""
    return [min(chunk, trials - start) for start in range(0, trials, chunk)]


def _shared(settings: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: settings[k] for k in keys}


_RUN_KEYS = ("K", "r_star", "eta", "beta", "max_iter", "tol", "success_tol", "precision", "early_exit",
             "plateau_exit")


#: Settings that are left out of a cell's cache key while they are off, so that turning
#: a new option off keeps the keys (and cached results) of the plain protocol.
_OPTIONAL_KEYS = ("early_exit", "plateau_exit")



def fig2_cells(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Figure 2: one cell per ``r`` and chunk of trials, each running every initial distance.

    With ``far_distances`` (distances beyond the grid ``distances``) and ``far_r_values``
    (the ``r`` that need them: those whose success rate is still high at the grid's end),
    each of those ``r`` gets a second block of cells (``"block": "far"``) with trials of their
    own, drawn from their own seeds. The cells of the main grid keep their configuration, so
    widening the grid reuses every cached cell and computes only the new block."""
    base = _shared(s, _RUN_KEYS + ("d", "N", "distances"))
    cells = [{**base, "r": r, "chunk": c, "n_trials": n, "seed_key": {"r": r, "chunk": c},
              "cost": s["N"] * r * s["K"] * n * len(s["distances"])}
             for r in s["r_values"] for c, n in enumerate(_chunks(s["trials"], s["chunk"]))]
    far = list(s.get("far_distances") or [])
    for r in (s.get("far_r_values") or []) if far else []:
        cells += [{**base, "distances": far, "block": "far", "r": r, "chunk": c, "n_trials": n,
                   "seed_key": {"r": r, "chunk": c, "block": "far"}, "cost": s["N"] * r * s["K"] * n * len(far)}
                  for c, n in enumerate(_chunks(s["trials"], s["chunk"]))]
    return cells


def fig3_cells(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Figure 3: one cell per ``r``, algorithm (``beta``) and chunk; AGD and GD cells of one
    ``r`` and chunk share their ``seed_key`` (same teachers, data and ``W(0)``)."""
    base = _shared(s, _RUN_KEYS + ("d", "N", "distance", "fit_window", "inits"))
    return [{**base, "beta": beta, "algorithm": "AGD" if beta > 0 else "GD", "r": r, "chunk": c, "n_trials": n,
             "seed_key": {"r": r, "chunk": c}, "cost": s["N"] * r * s["K"] * n}
            for r in s["r_values"] for beta in s["betas"] for c, n in enumerate(_chunks(s["trials"], s["chunk"]))]


def fig4_cells(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Figure 4: one cell per ``(r, N)`` pair and chunk of trials."""
    base = _shared(s, _RUN_KEYS + ("d", "distance"))
    return [{**base, "r": r, "N": N, "chunk": c, "n_trials": n, "seed_key": {"r": r, "N": N, "chunk": c},
             "cost": N * r * s["K"] * n + 5e4}
            for r in s["r_values"] for N in s["N_values"] for c, n in enumerate(_chunks(s["trials"], s["chunk"]))]


def fig5_cells(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Figure 5: one cell per ``r`` and chunk of trials, each running every noise level."""
    base = _shared(s, _RUN_KEYS + ("d", "N", "distance", "noise_levels"))
    return [{**base, "r": r, "chunk": c, "n_trials": n, "seed_key": {"r": r, "chunk": c},
             "cost": s["N"] * r * s["K"] * n * len(s["noise_levels"])}
            for r in s["r_values"] for c, n in enumerate(_chunks(s["trials"], s["chunk"]))]


def cell_config(name: str, cell: Mapping[str, Any], seed: int, device: str) -> dict[str, Any]:
    """The full configuration of a cell, as hashed by the cache: figure, parameters, seed,
    device type and ``lthbook.__version__``."""
    cfg = {k: v for k, v in cell.items() if k != "cost" and not (k in _OPTIONAL_KEYS and not v)}
    return {"figure": name, "seed": int(seed), "device": device, "lthbook_version": __version__, **cfg}


def _r_star(config: Mapping[str, Any]) -> int:
    return config["r"] if config["r_star"] is None else config["r_star"]


def _run(config: Mapping[str, Any], problems, W0, device: str, threads: int | None = None, **extra):
    early = bool(config.get("early_exit", False))
    return run_agd(problems, W0, eta=resolve_eta(config["eta"], config["K"]), beta=config["beta"],
                   max_iter=config["max_iter"], tol=config["tol"], success_tol=config["success_tol"],
                   precision=config["precision"], device=device, success_exit=early,
                   stall_exit=EARLY_EXIT["stall_exit"] if early else None, exit_window=EARLY_EXIT["exit_window"],
                   plateau_exit=config.get("plateau_exit"), threads=threads, **extra)


def compute_fig2_cell(config: Mapping[str, Any], device: str = "cpu", threads: int | None = None
                      ) -> dict[str, Any]:
    """Figure 2, one ``r`` and one chunk of trials: each trial draws a teacher
    (``K``, ``d``, ``r*``), a student mask of width ``r`` and ``N`` samples, and runs
    Algorithm 1 from one ``W(0)`` at each relative distance in ``distances``."""
    rng = cell_rng(config)
    K, d, N, r, n = config["K"], config["d"], config["N"], config["r"], config["n_trials"]
    problems = [make_problem(K, d, _r_star(config), r, N, seed=rng) for _ in range(n)]
    W0 = np.stack([initial_points(p.W_star, config["distances"], seed=rng) for p in problems])
    res = _run(config, problems, W0, device, threads)
    return {"success": res.success.sum(axis=0), "trials": n, "diverged": res.diverged.sum(axis=0),
            "stopped": res.stopped.sum(axis=0), "rel_error": res.rel_error, "n_iter": res.n_iter,
            "exit_reason": res.exit_reason, "eta": res.eta}


def _decimate(iters: np.ndarray, values: np.ndarray, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, int(math.ceil(len(iters) / max_points)))
    idx = np.arange(0, len(iters), step)
    if idx[-1] != len(iters) - 1:
        idx = np.append(idx, len(iters) - 1)
    return iters[idx], values[idx]


def compute_fig3_cell(config: Mapping[str, Any], device: str = "cpu", threads: int | None = None
                      ) -> dict[str, Any]:
    """Figure 3, one ``r``, one algorithm (``beta``) and one chunk of trials: the relative
    error at every iteration and the fitted rate ``nu`` (:func:`lthbook.stats.fit_rate`) per run. Each
    trial (data set) is run from ``inits`` initial points; per-run lists are ordered
    trial-major. The AGD and GD cells of the same ``r`` and chunk share teachers, data and
    ``W(0)``."""
    rng = cell_rng(config)
    K, d, N, r, n = config["K"], config["d"], config["N"], config["r"], config["n_trials"]
    problems = [make_problem(K, d, _r_star(config), r, N, seed=rng) for _ in range(n)]
    W0 = np.stack([initial_points(p.W_star, config["distance"], n=config["inits"], seed=rng) for p in problems])
    res = _run(config, problems, W0, device, threads, record_every=1)
    hist = res.history.reshape(res.history.shape[0], -1)  # (T, P*B), trial-major
    iters = res.history_iters
    nu = [fit_rate(iters, hist[:, k], config["fit_window"]) for k in range(hist.shape[1])]
    mean_log = np.log10(np.clip(hist, 1e-300, None)).mean(axis=1)
    ci, cv = _decimate(iters, mean_log)
    return {"nu": nu, "trials": n, "runs": hist.shape[1], "diverged": res.diverged.ravel(),
            "n_iter": res.n_iter.ravel(), "final_error": res.rel_error.ravel(), "eta": res.eta.ravel(),
            "curve_iterations": ci, "curve_mean_log10_error": cv}


def compute_fig4_cell(config: Mapping[str, Any], device: str = "cpu", threads: int | None = None
                      ) -> dict[str, Any]:
    """Figure 4, one ``(r, N)`` pair and one chunk of trials, ``W(0)`` at relative distance
    ``distance`` from ``W*``."""
    rng = cell_rng(config)
    K, d, N, r, n = config["K"], config["d"], config["N"], config["r"], config["n_trials"]
    problems = [make_problem(K, d, _r_star(config), r, N, seed=rng) for _ in range(n)]
    W0 = np.stack([initial_points(p.W_star, config["distance"], n=1, seed=rng) for p in problems])
    res = _run(config, problems, W0, device, threads)
    return {"success": int(res.success.sum()), "trials": n, "diverged": int(res.diverged.sum()),
            "rel_error": res.rel_error[:, 0], "n_iter": res.n_iter[:, 0], "exit_reason": res.exit_reason[:, 0],
            "eta": res.eta[:, 0]}


def compute_fig5_cell(config: Mapping[str, Any], device: str = "cpu", threads: int | None = None
                      ) -> dict[str, Any]:
    """Figure 5, one ``r`` and one chunk of trials at every noise level ``sigma/E_y``.

    A trial's teacher, inputs, noise direction and ``W(0)`` are shared by all noise
    levels; the data sets of all (level, trial) pairs run as one batch. ``plateau`` is
    the ratio of the error after ``max_iter`` steps to the error after 90% of them
    (close to 1 when the final error has settled at its noise floor).
    """
    rng = cell_rng(config)
    K, d, N, r, n = config["K"], config["d"], config["N"], config["r"], config["n_trials"]
    levels = config["noise_levels"]
    trial_seeds = rng.integers(0, 2**63 - 1, size=n)
    # per trial, one problem per noise level: same seed, so same teacher, inputs and noise direction
    per_level = [[make_problem(K, d, _r_star(config), r, N, noise_level=lev, seed=int(ts)) for lev in levels]
                 for ts in trial_seeds]
    for trial in per_level:
        if any(not np.array_equal(q.X, trial[0].X) for q in trial[1:]):  # pragma: no cover - make_problem contract
            raise RuntimeError("noise levels of one trial must share their inputs")
    problems = [trial[0] for trial in per_level]
    labels = np.stack([[q.y for q in trial] for trial in per_level])  # (n, L, N): the levels share one batch row
    W0 = np.stack([np.repeat(initial_points(p.W_star, config["distance"], n=1, seed=rng), len(levels), axis=0)
                   for p in problems])  # (n, L, r, K)
    every = max(1, config["max_iter"] // 10)
    res = _run(config, problems, W0, device, threads, record_every=every, labels=labels)
    hist = res.history  # (T, n, L)
    k90 = int(np.searchsorted(res.history_iters, 0.9 * res.history_iters[-1]))
    plateau = hist[-1] / np.maximum(hist[k90], 1e-300)
    sigma = np.array([[q.sigma for q in trial] for trial in per_level])
    # payload layout [level][trial]
    return {"rel_error": res.rel_error.T, "trials": n, "n_iter": res.n_iter.T, "stopped": res.stopped.T,
            "diverged": res.diverged.T, "plateau": plateau.T, "sigma": sigma.T, "exit_reason": res.exit_reason.T,
            "eta": res.eta.T}


def _by(cells, payloads, key: Callable[[Mapping[str, Any]], Any]) -> dict[Any, list[dict]]:
    groups: dict[Any, list[dict]] = {}
    for cell, payload in zip(cells, payloads):
        groups.setdefault(key(cell), []).append(payload)
    return groups


def _eta_summary(groups: dict[Any, list[dict]], order: Sequence[Any]) -> list[float]:
    out = []
    for k in order:
        values = np.concatenate([np.ravel(np.asarray(p["eta"], dtype=float)) for p in groups[k]])
        out.append(float(np.mean(values)))
    return out


def _assemble_fig2(s, cells, payloads):
    main = [c.get("block") is None for c in cells]
    g = _by([c for c, m in zip(cells, main) if m], [p for p, m in zip(payloads, main) if m], lambda c: c["r"])
    far_groups = _by([c for c, m in zip(cells, main) if not m], [p for p, m in zip(payloads, main) if not m],
                     lambda c: c["r"])
    succ, trials, div, stopped, err, nit = [], [], [], [], [], []
    for r in s["r_values"]:
        ps = g[r]
        succ.append(np.sum([p["success"] for p in ps], axis=0).tolist())
        trials.append([int(sum(p["trials"] for p in ps))] * len(s["distances"]))
        div.append(np.sum([p["diverged"] for p in ps], axis=0).tolist())
        stopped.append(np.sum([p["stopped"] for p in ps], axis=0).tolist())
        err.append([row for p in ps for row in p["rel_error"]])
        nit.append([row for p in ps for row in p["n_iter"]])
    axes = {"r": s["r_values"], "sqrt_r": np.sqrt(s["r_values"]).tolist(), "distance": s["distances"]}
    raw = {"success": succ, "trials": trials, "diverged": div, "stopped": stopped,
           "rel_error": err, "n_iter": nit,
           "layout": "success/trials/diverged/stopped: [r][distance]; rel_error/n_iter: [r][trial][distance]"}
    if far_groups:
        far_r = [r for r in s["r_values"] if r in far_groups]
        raw["far"] = {
            "r": far_r, "distance": list(s["far_distances"]),
            "success": [np.sum([p["success"] for p in far_groups[r]], axis=0).tolist() for r in far_r],
            "trials": [[int(sum(p["trials"] for p in far_groups[r]))] * len(s["far_distances"]) for r in far_r],
            "diverged": [np.sum([p["diverged"] for p in far_groups[r]], axis=0).tolist() for r in far_r],
            "rel_error": [[row for p in far_groups[r] for row in p["rel_error"]] for r in far_r],
            "n_iter": [[row for p in far_groups[r] for row in p["n_iter"]] for r in far_r],
            "layout": "the far_distances block: trials of their own for the r in far_r_values; "
                      "success/trials/diverged: [far r][far distance]; rel_error/n_iter: [far r][trial][far distance]"}
    return axes, raw, _eta_summary(g, s["r_values"])


def _mean_curve(payloads: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """The run-weighted mean of the chunks' mean ``log10`` error curves of one ``r``, on the
    iteration grid of the longest chunk. Chunks are thinned to different spacings when they ran
    for different lengths (:func:`_decimate`), so each curve is interpolated in the iteration
    onto that grid (holding its last value after its end: a stopped run keeps its error);
    chunks that share the grid are averaged point by point, as before."""
    longest = max(payloads, key=lambda p: p["curve_iterations"][-1])
    grid = np.asarray(longest["curve_iterations"], dtype=float)
    stack = [np.interp(grid, np.asarray(p["curve_iterations"], dtype=float),
                       np.asarray(p["curve_mean_log10_error"], dtype=float)) for p in payloads]
    weights = np.array([p["runs"] for p in payloads], dtype=float)
    return {"iterations": longest["curve_iterations"], "mean_log10_error": np.average(stack, axis=0,
                                                                                     weights=weights).tolist()}


def _assemble_fig3(s, cells, payloads):
    raw: dict[str, Any] = {"layout": "nu/n_iter/final_error: [algorithm][r][run] (runs = trials x inits, "
                                     "trial-major); curves: [algorithm][r]"}
    eta = {}
    for alg, beta in zip(("AGD", "GD"), s["betas"]):
        g = _by([c for c in cells if c["beta"] == beta], [p for c, p in zip(cells, payloads) if c["beta"] == beta],
                lambda c: c["r"])
        raw.setdefault("nu", {})[alg] = [[v for p in g[r] for v in p["nu"]] for r in s["r_values"]]
        raw.setdefault("n_iter", {})[alg] = [[v for p in g[r] for v in p["n_iter"]] for r in s["r_values"]]
        raw.setdefault("final_error", {})[alg] = [[v for p in g[r] for v in p["final_error"]] for r in s["r_values"]]
        raw.setdefault("diverged", {})[alg] = [int(sum(sum(p["diverged"]) for p in g[r])) for r in s["r_values"]]
        raw.setdefault("curves", {})[alg] = [_mean_curve(g[r]) for r in s["r_values"]]
        eta[alg] = _eta_summary(g, s["r_values"])
    axes = {"r": s["r_values"], "sqrt_r": np.sqrt(s["r_values"]).tolist(), "algorithms": ["AGD", "GD"],
            "betas": s["betas"]}
    return axes, raw, eta


def _assemble_fig4(s, cells, payloads):
    g = _by(cells, payloads, lambda c: (c["r"], c["N"]))
    succ = [[int(sum(p["success"] for p in g[(r, N)])) for N in s["N_values"]] for r in s["r_values"]]
    trials = [[int(sum(p["trials"] for p in g[(r, N)])) for N in s["N_values"]] for r in s["r_values"]]
    div = [[int(sum(p["diverged"] for p in g[(r, N)])) for N in s["N_values"]] for r in s["r_values"]]
    err = [[[v for p in g[(r, N)] for v in p["rel_error"]] for N in s["N_values"]] for r in s["r_values"]]
    nit = [[[v for p in g[(r, N)] for v in p["n_iter"]] for N in s["N_values"]] for r in s["r_values"]]
    axes = {"r": s["r_values"], "N": s["N_values"]}
    raw = {"success": succ, "trials": trials, "diverged": div, "rel_error": err, "n_iter": nit,
           "layout": "success/trials/diverged: [r][N]; rel_error/n_iter: [r][N][trial]"}
    eta = [float(np.mean([np.mean(p["eta"]) for N in s["N_values"] for p in g[(r, N)]])) for r in s["r_values"]]
    return axes, raw, eta


def _assemble_fig5(s, cells, payloads):
    g = _by(cells, payloads, lambda c: c["r"])
    L = len(s["noise_levels"])
    err = [[[v for p in g[r] for v in p["rel_error"][l]] for r in s["r_values"]] for l in range(L)]
    raw = {"rel_error": err,
           "mean_rel_error": [[float(np.mean(e)) for e in row] for row in err],
           "plateau": [[[v for p in g[r] for v in p["plateau"][l]] for r in s["r_values"]] for l in range(L)],
           "stopped": [[int(sum(sum(p["stopped"][l]) for p in g[r])) for r in s["r_values"]] for l in range(L)],
           "diverged": [[int(sum(sum(p["diverged"][l]) for p in g[r])) for r in s["r_values"]] for l in range(L)],
           "n_iter": [[[v for p in g[r] for v in p["n_iter"][l]] for r in s["r_values"]] for l in range(L)],
           "trials": [int(sum(p["trials"] for p in g[r])) for r in s["r_values"]],
           "layout": "rel_error/plateau/n_iter: [noise level][r][trial]; mean_rel_error/stopped/diverged: "
                     "[noise level][r]; trials: [r]"}
    axes = {"r": s["r_values"], "sqrt_r": np.sqrt(s["r_values"]).tolist(), "noise_levels": s["noise_levels"]}
    return axes, raw, _eta_summary(g, s["r_values"])


# --------------------------------------------------------------------------
# the experiment family of Figures 2-5
# --------------------------------------------------------------------------


class _AgdSession:
    """Computes independent Algorithm 1 cells (no shared state between cells)."""

    def __init__(self, compute: Callable[..., dict[str, Any]], device: str, threads: int | None) -> None:
        self._compute, self._device, self._threads = compute, device, threads

    def __enter__(self) -> "_AgdSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def compute(self, cell: Cell, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
        start = time.perf_counter()
        payload = to_jsonable(self._compute(cell.config, self._device, self._threads))
        payload["wall_s"] = time.perf_counter() - start
        return payload

    def extra(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class AgdFigure:
    """One figure of §5.1 (an :class:`lthbook.cells.Experiment`): ``cells(settings)`` lists the
    cells' parameters, ``compute(config, device, threads)`` runs one cell, ``assemble``
    gathers the payloads into ``(axes, raw, eta)``. ``shape_keys`` are the parameters that
    set a cell's cost (for :func:`lthbook.timing.estimate_run_time`), ``exits`` the early-exit
    settings that :func:`lthbook.timing.compare_exit_rules` compares with the full protocol
    (``None``: the figure has none)."""

    cells: Callable[[Mapping[str, Any]], list[dict[str, Any]]]
    compute: Callable[..., dict[str, Any]]
    assemble_arrays: Callable[..., tuple[Any, Any, Any]]
    shape_keys: tuple[str, ...] = ("r",)
    exits: Mapping[str, Any] | None = None

    def plan(self, name: str, settings: Mapping[str, Any], seed: int, device_type: str) -> list[Cell]:
        out = []
        for i, c in enumerate(self.cells(settings)):
            where = ", ".join(f"{k}={v}" for k, v in c["seed_key"].items() if k != "chunk")
            out.append(Cell(config=cell_config(name, c, seed, device_type), cost=float(c["cost"]), label=where,
                            params=c))
        return out

    def session(self, name: str, settings: Mapping[str, Any], seed: int, device: str, threads: int | None,
                data_dir: str | None = None) -> _AgdSession:
        return _AgdSession(self.compute, device, threads)

    def assemble(self, settings: Mapping[str, Any], cells: Sequence[Cell],
                 payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        axes, raw, eta = self.assemble_arrays(settings, [c.params for c in cells], payloads)
        return {"eta": eta, "axes": axes, "raw": raw}


#: Figure 2: success against the initial distance and ``sqrt(r)`` (Theorem 1).
FIG2 = AgdFigure(fig2_cells, compute_fig2_cell, _assemble_fig2, exits={"early_exit": True})
#: Figure 3: convergence rate ``nu`` of AGD and GD against ``r`` (Theorem 2).
FIG3 = AgdFigure(fig3_cells, compute_fig3_cell, _assemble_fig3)
#: Figure 4: success against the sample size ``N`` and ``r`` (Eq. 8).
FIG4 = AgdFigure(fig4_cells, compute_fig4_cell, _assemble_fig4, shape_keys=("r", "N"), exits={"early_exit": True})
#: Figure 5: final error against ``sqrt(r)`` per noise level (Eq. 9).
FIG5 = AgdFigure(fig5_cells, compute_fig5_cell, _assemble_fig5, exits={"plateau_exit": 1e-3})

__all__ = ["AgdFigure", "FIG2", "FIG3", "FIG4", "FIG5", "fig2_cells", "fig3_cells", "fig4_cells", "fig5_cells",
           "cell_config", "cell_rng", "compute_fig2_cell", "compute_fig3_cell", "compute_fig4_cell",
           "compute_fig5_cell"]
