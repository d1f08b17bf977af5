"""Benchmark helpers for Figures 2-5: how long a figure takes, and what its early exits save.

:func:`estimate_run_time` times a subset of a figure's cells and extrapolates to the
whole grid (the Reproducibility page and ``bench/`` quote it); :func:`compare_exit_rules`
runs a figure with the paper's protocol and with early exits and compares the runs.
Speed is measured here and in ``bench/``, never asserted by tests.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ._validation import check_float, check_int, resolve_device
from .cache import ResultCache, to_jsonable
from .registry import FIGURES, figure_settings, get
from .runner import run_figure
from .synthetic_experiments import AgdFigure, cell_config


def _agd_experiment(name: str) -> AgdFigure:
    experiment = get(name).experiment
    if not isinstance(experiment, AgdFigure):
        agd = [n for n, spec in FIGURES.items() if isinstance(spec.experiment, AgdFigure)]
        raise ValueError(f"name must be one of the Algorithm 1 figures {', '.join(agd)}; got {name!r}")
    return experiment


def _with_exits() -> list[str]:
    return [n for n, spec in FIGURES.items() if isinstance(spec.experiment, AgdFigure) and spec.experiment.exits]


def compare_exit_rules(
    name: str,
    scale: str | None = None,
    seed: int | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    exits: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
    cache: bool | None | ResultCache = True,
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run a figure with the paper's protocol and with early exits, and compare run by run.

    ``exits`` are the settings switched on for the second run (default
    ``{"early_exit": True}`` for Figures 2 and 4, ``{"plateau_exit": 1e-3}`` for Figure 5).
    Both runs draw the same teachers, data and ``W(0)`` (same seed and cells), so any
    difference comes from the exits alone. Returns the number of runs, the runs whose
    success (``rel_error < success_tol``) differs, for Figure 5 the largest relative
    difference of the final errors (what that figure plots), the total iterations of
    both (``iteration_ratio`` = full / early) and their cell times.
    """
    experiment = _agd_experiment(name)
    if experiment.exits is None:
        raise ValueError(f"name must be a figure with early exits ({', '.join(_with_exits())}); {name} has none")
    if exits is None:
        exits = experiment.exits
    base = dict(overrides or {})
    full = run_figure(name, scale, seed, cache_dir=cache_dir, cache=cache, threads=threads, progress=progress,
                      overrides={**base, "early_exit": False, "plateau_exit": None})
    early = run_figure(name, scale, seed, cache_dir=cache_dir, cache=cache, threads=threads, progress=progress,
                       overrides={**base, **dict(exits)})
    tol = full["settings"]["success_tol"]
    e_full = np.asarray(full["raw"]["rel_error"], dtype=float)
    e_early = np.asarray(early["raw"]["rel_error"], dtype=float)
    n_full = np.asarray(full["raw"]["n_iter"], dtype=float)
    n_early = np.asarray(early["raw"]["n_iter"], dtype=float)
    differ = (e_full < tol) != (e_early < tol)
    rel = np.abs(e_early - e_full) / np.maximum(e_full, 1e-300)
    return to_jsonable({
        "figure": name, "scale": full["scale"], "seed": full["seed"], "exits": dict(exits),
        "runs": int(e_full.size), "disagreements": int(differ.sum()),
        "successes_full": int((e_full < tol).sum()), "successes_early": int((e_early < tol).sum()),
        "max_rel_error_difference": float(rel.max()) if "plateau_exit" in exits else None,
        "iterations_full": float(n_full.sum()), "iterations_early": float(n_early.sum()),
        "iteration_ratio": float(n_full.sum() / max(n_early.sum(), 1.0)),
        "cell_time_full_s": full["cell_time_s"], "cell_time_early_s": early["cell_time_s"],
    })


def estimate_run_time(
    name: str,
    scale: str = "paper",
    *,
    sample_iterations: int = 10,
    min_seconds: float = 1.0,
    repeats: int = 2,
    iterations: Mapping[int, int] | None = None,
    shapes: Sequence[int] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Estimate how long :func:`run_figure` would take, from a timed subset of cells.

    Cells of one figure differ in cost only through ``r`` (and ``N`` for Figure 4), and
    all chunks of one ``r`` cost the same, so one cell per *shape* is timed:

    * set-up: the cell run for one iteration (drawing the data, gathering the inputs and,
      for ``eta="auto"``, the Lanczos estimate of ``lambda_max``);
    * per iteration: the cell run with a tiny fixed step (``eta = 1e-6``: no run stops or
      diverges) for ``m`` and ``2m, 4m, ...`` iterations (``m = sample_iterations``) until
      the longer run takes ``min_seconds`` more than the shorter; the difference over the
      extra iterations is the time per iteration.

    Every timing is the fastest of ``repeats`` runs.

    A cell is predicted to cost ``setup + per_iteration * n`` with ``n = iterations[r]``
    when given and the iteration cap ``max_iter`` otherwise: an upper bound, reached in
    Figures 2 and 5 and at the boundary of Figure 4 (a failed or a noisy run never meets
    the 1e-8 stopping rule, and a batch runs until its last run stops).

    ``shapes`` selects which shapes (indices into the list of distinct shapes) to time;
    the others are predicted by least-squares lines of the measured set-up and
    per-iteration times against the cell's cost (``N r K`` times the batch size). Returns
    per-shape rows and the total in seconds and hours.
    """
    experiment = _agd_experiment(name)
    m = check_int("sample_iterations", sample_iterations, 1)
    min_seconds = check_float("min_seconds", min_seconds, 0.0, low_inclusive=False)
    repeats = check_int("repeats", repeats, 1)
    settings = figure_settings(name, scale, overrides)
    dev = resolve_device(device)
    cells = experiment.cells(settings)
    shape_of = lambda c: tuple(c[k] for k in experiment.shape_keys)  # noqa: E731
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        groups.setdefault(shape_of(cell), []).append(cell)
    keys = list(groups)
    chosen = range(len(keys)) if shapes is None else [check_int("shapes[i]", i, 0, len(keys) - 1) for i in shapes]

    def timed(cfg: Mapping[str, Any], n: int, **extra: Any) -> float:
        best = math.inf
        for _ in range(repeats):  # the fastest of a few repeats: load spikes on a shared machine only add time
            start = time.perf_counter()
            experiment.compute({**cfg, "max_iter": n, "tol": 1e-300, "early_exit": False, "plateau_exit": None, **extra},
                           str(dev), threads)
            best = min(best, time.perf_counter() - start)
        return best

    if threads is not None:
        threads = check_int("threads", threads, 1)
    measured: dict[tuple, tuple[float, float]] = {}
    for i in chosen:
        cfg = cell_config(name, groups[keys[i]][0], seed, dev.type)
        setup = timed(cfg, 1)
        t1 = timed(cfg, m, eta=1e-6)
        n2 = 2 * m
        while True:
            t2 = timed(cfg, n2, eta=1e-6)
            if t2 - t1 >= min_seconds or n2 >= 64 * m:
                break
            n2 *= 2
        measured[keys[i]] = (setup, max((t2 - t1) / (n2 - m), 0.0))
    cost = {key: float(groups[key][0]["cost"]) for key in keys}
    xs = np.array([cost[key] for key in measured])
    if len(measured) >= 2 and np.ptp(xs) > 0:
        fit_setup = np.polyfit(xs, [v[0] for v in measured.values()], 1)
        fit_iter = np.polyfit(xs, [v[1] for v in measured.values()], 1)
    else:
        only = next(iter(measured.values()))
        fit_setup, fit_iter = [0.0, only[0]], [0.0, only[1]]
    rows, total = [], 0.0
    for key in keys:
        setup, per_it = measured.get(key, (max(float(np.polyval(fit_setup, cost[key])), 0.0),
                                           max(float(np.polyval(fit_iter, cost[key])), 0.0)))
        n_iter = settings["max_iter"] if iterations is None else int(iterations.get(key[0], settings["max_iter"]))
        n_cells = len(groups[key])
        seconds = n_cells * (setup + per_it * n_iter)
        total += seconds
        rows.append({"shape": list(key), "measured": key in measured, "setup_s": setup, "per_iteration_s": per_it,
                     "iterations": n_iter, "cells": n_cells, "seconds": seconds})
    return to_jsonable({"figure": name, "scale": scale, "sample_iterations": m, "device": str(dev),
                        "threads": threads, "shapes": rows, "total_s": total, "total_h": total / 3600})


__all__ = ["estimate_run_time", "compare_exit_rules"]
