"""Experiments that look into where the data disagree with the paper.

* :func:`fig5_exponent_against_N` -- Figure 5's exponent of the final error in ``r`` is
  about 0.7, not the 1/2 of Eq. (9). A least-squares analogy predicts it: a model with
  ``p = r K`` active weights fitted to ``N`` noisy samples ends at a relative error
  ``∝ sqrt(p / (N - p))`` (for a Gaussian design, ``E||w_hat - w||^2 = sigma^2 p/(N - p - 1)``),
  whose log-log slope in ``r`` is ``1/2 + (1/2) p/(N - p)``: 1/2 only while ``rK << N``.
  The function reruns Figure 5's protocol at several ``N`` and compares the measured
  exponent with the one that curve predicts on the same ``r`` grid.
* :func:`paper_code_side_by_side` -- IMP on MNIST as the book does it, with the paper code's
  two behaviours switched on (:data:`lthbook.paper_code.QUIRKS`: its gradient filter, which
  drops the loss gradient of every negative weight, and its rewind of the biases by
  reference), and with only the second of them: same network, initialization, data and
  batch order, so the differences are those behaviours alone.
* :func:`fig3_step_size_readings` -- Figure 3 under the two readings of the paper's step size
  ``eta = 0.5``: the book's (``0.5 K^2 = 12.5`` in this book's ``1/K``-scaled risk,
  :func:`lthbook.agd.paper_step_size`) and the literal one (``eta = 0.5`` in the scaled risk),
  with ``nu`` per ``r``, the iterations to ``1e-8``, and Figure 3's laws
  (:func:`lthbook.laws.measure_fig3`) for each.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ._validation import check_float, check_int, check_int_list
from .agd import MAX_ITER, paper_step_size
from .imp_experiments import FIG7
from .laws import by_id, loglog_slope, measure_fig3, measure_fig5
from .presets import PRESETS, validate_fig7_settings
from .runner import run_figure
from .scales import get_seed
from .training import torch_threads


def least_squares_error_curve(r: Sequence[float], K: int, N: int) -> np.ndarray:
    """``sqrt(p / (N - p))`` with ``p = r K``: the shape in ``r`` of the relative error of a least-squares
    fit with ``p`` weights to ``N`` noisy samples (NaN where ``p >= N``)."""
    p = np.asarray(r, dtype=float) * check_int("K", K, 1)
    N = check_int("N", N, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p < N, np.sqrt(p / (N - p)), np.nan)


def fig5_exponent_against_N(N_values: Sequence[int], scale: str | None = None, seed: int | None = None,
                            progress: bool = False, **run_kwargs: Any) -> list[dict[str, Any]]:
    """Figure 5 at each sample size ``N`` of ``N_values`` (everything else from the preset of
    ``scale``): the measured exponent of the error in ``r`` with its 95 % interval
    (:func:`lthbook.laws.measure_fig5`), the exponent of the least-squares curve
    :func:`least_squares_error_curve` on the same ``r``, and ``N/(r_max K)``. Cells are cached
    like every figure's (``run_kwargs`` go to :func:`lthbook.runner.run_figure`)."""
    rows = []
    for N in check_int_list("N_values", N_values, 1):
        res = run_figure("fig5", scale, seed, progress=progress, overrides={"N": N}, **run_kwargs)
        s = res["settings"]
        if max(s["r_values"]) * s["K"] >= N:
            raise ValueError(f"N_values: N = {N} is not above r K = {max(s['r_values']) * s['K']} for the largest r")
        law = by_id(measure_fig5(res))["fig5-error-exponent-r"]
        rows.append({"N": N, "measured": law["measured"], "ci95": law["ci95"], "verdict": law["verdict"],
                     "least_squares": loglog_slope(s["r_values"],
                                                   least_squares_error_curve(s["r_values"], s["K"], N)),
                     "N_over_rK": N / (max(s["r_values"]) * s["K"])})
    return rows


#: The variants of :func:`paper_code_side_by_side`: name -> paper-code behaviours switched on.
PAPER_CODE_VARIANTS: dict[str, tuple[str, ...]] = {
    "lthbook": (),
    "paper code": ("sign_mask", "bias_rewind"),
    "paper code, sign mask fixed": ("bias_rewind",),
}


def paper_code_side_by_side(N: int = 2000, epochs: int = 2, levels: int = 6, test_size: int = 10000,
                            seed: int | None = None, network: str = "lenet5", data_dir: str | None = None,
                            threads: int = 1) -> dict[str, Any]:
    """IMP on MNIST (Figure 7's run, :data:`lthbook.imp_experiments.FIG7`) for each variant of
    :data:`PAPER_CODE_VARIANTS`, with the paper code's settings (Adam, ``lr = 1.2e-3``, batch 60,
    weight decay ``1e-4``, 20 % pruned per level): ``N`` training images, ``epochs`` per level,
    ``levels`` levels (``0.8^(levels - 1)`` of the weights left at the last one), the first
    ``test_size`` test images. Every variant starts from the same initialization and sees the
    same batches (both are functions of ``seed``).

    Returns ``settings``, ``remaining`` (fraction of weights left per level) and, per variant,
    ``quirks``, ``best_test_accuracy`` (per level), ``negative_moves`` (per level and weight
    tensor: ``[negative, crossed, deeper]``, :func:`lthbook.imp.negative_weight_moves`),
    ``crossed_fraction`` / ``deeper_fraction`` (per level and tensor: ``crossed / negative`` and
    ``deeper / negative``), ``rewind_mismatch`` (per level, the parameters whose rewind was not
    exact) and ``seconds``.
    """
    settings = validate_fig7_settings({**PRESETS["fig7"]["book"], "network": network, "N_values": [N],
                                       "levels": levels, "epochs": epochs})
    test_size = check_int("test_size", test_size, 1, 10000)
    seed = get_seed(seed)
    shared = FIG7.prepare(settings, seed, data_dir)
    data = shared["data"]
    shared["data"] = dataclasses.replace(data, test_images=data.test_images[:test_size],
                                         test_labels=data.test_labels[:test_size])
    out: dict[str, Any] = {"settings": {**settings, "test_size": test_size, "seed": seed}, "variants": {}}
    with torch_threads(check_int("threads", threads, 1)):
        for name, quirks in PAPER_CODE_VARIANTS.items():
            start = time.perf_counter()
            run = FIG7.build_run({**settings, "quirks": quirks}, shared, {"N": N}, seed, torch.device("cpu"))
            rows = [run.level(None, settings["prune_fraction"], level) for level in range(levels)]
            moves = [row["negative_moves"] for row in rows]
            out["remaining"] = [row["remaining"] for row in rows]
            out["variants"][name] = {
                "quirks": list(quirks), "best_test_accuracy": [row["best_test_accuracy"] for row in rows],
                "negative_moves": moves,
                "crossed_fraction": [{k: c / max(n, 1) for k, (n, c, _) in m.items()} for m in moves],
                "deeper_fraction": [{k: dp / max(n, 1) for k, (n, _, dp) in m.items()} for m in moves],
                "rewind_mismatch": [row["invariants"]["rewind_mismatch"] for row in rows],
                "seconds": time.perf_counter() - start}
    return out


def paper_code_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers §5.2 quotes from :func:`paper_code_side_by_side`: per variant ``first`` and
    ``last`` (best test accuracy at the first and last level), ``crossed_level0`` (the smallest and
    largest share, over the weight tensors, of the unpruned negative weights that were positive
    after the first level's training), ``crossed`` and ``deeper`` (shares of all negative weights
    of all levels that ended positive / further from zero), and ``steps_per_level``."""
    s = result["settings"]
    out: dict[str, Any] = {"steps_per_level": s["epochs"] * math.ceil(s["N_values"][0] / s["batch_size"]),
                           "variants": {}}
    for name, v in result["variants"].items():
        moves = [m for level in v["negative_moves"] for m in level.values()]
        negative = max(sum(m[0] for m in moves), 1)
        level0 = list(v["crossed_fraction"][0].values())
        out["variants"][name] = {"first": v["best_test_accuracy"][0], "last": v["best_test_accuracy"][-1],
                                 "crossed_level0": (min(level0), max(level0)),
                                 "crossed": sum(m[1] for m in moves) / negative,
                                 "deeper": sum(m[2] for m in moves) / negative}
    return out


#: The two readings of the paper's ``eta = 0.5`` for Figure 3 (the value of the setting ``eta``).
ETA_READINGS: dict[str, Any] = {"book": "paper", "literal": 0.5}


def _iterations_to(curve: Mapping[str, Sequence[float]], target: float, nu: float) -> tuple[float, bool]:
    """First iteration at which the mean ``log10`` error curve reaches ``log10(target)`` (linear
    interpolation), and ``False``; if the curve stops above it, the iteration extrapolated from its
    last point at the rate ``nu``, and ``True``."""
    it = np.asarray(curve["iterations"], dtype=float)
    log_err = np.asarray(curve["mean_log10_error"], dtype=float)
    goal = math.log10(target)
    below = np.flatnonzero(log_err <= goal)
    if below.size:
        k = int(below[0])
        if k == 0:
            return float(it[0]), False
        frac = (log_err[k - 1] - goal) / (log_err[k - 1] - log_err[k])
        return float(it[k - 1] + frac * (it[k] - it[k - 1])), False
    if not (0.0 < nu < 1.0):
        return float("nan"), True
    return float(it[-1] + (goal - log_err[-1]) / math.log10(nu)), True


def fig3_step_size_readings(r_values: Sequence[int] | None = None, trials: int | None = None,
                            literal_max_iter: int = 3000, fit_window: Sequence[float] = (1e-11, 1e-2),
                            target: float = 1e-8, scale: str = "ci", seed: int | None = None,
                            overrides: Mapping[str, Any] | None = None, progress: bool = False,
                            **run_kwargs: Any) -> dict[str, Any]:
    """Figure 3 (Theorem 2's rate ``nu`` of AGD and GD against ``r``) under both readings of the
    paper's ``eta = 0.5`` (:data:`ETA_READINGS`): ``"book"``, the step of the un-normalized model,
    ``eta = 0.5 K^2`` in this book's risk (Eq. 2 with its ``1/K``), and ``"literal"``, ``eta = 0.5``
    in that risk. Everything else is the preset of ``scale`` (``r_values``/``trials`` replace
    its grid, ``overrides`` any other setting, e.g. ``{"d": 20, "N": 200}``); the literal reading runs up to ``literal_max_iter`` iterations, and both fit ``nu``
    on the errors inside ``fit_window`` (:func:`lthbook.stats.fit_rate`).

    Returns, per reading: ``eta`` (the step used), ``nu`` (``{"AGD": [...], "GD": [...]}``, the
    mean over runs per ``r``), ``iterations`` (to ``target``, from the mean ``log10`` error curve;
    ``extrapolated`` per entry marks those extrapolated at the rate ``nu`` beyond the last
    iteration), ``ratio`` (``(1 - nu_AGD)/(1 - nu_GD)`` per ``r``), ``max_iter`` and ``claims``
    (the records of :func:`lthbook.laws.measure_fig3`: the exponent of ``nu = a + b r^alpha``
    and the AGD/GD ratio); and ``r``, ``K``.
    """
    overrides = {**(overrides or {}), "fit_window": [float(v) for v in fit_window]}
    if r_values is not None:
        overrides["r_values"] = check_int_list("r_values", r_values, 1)
    if trials is not None:
        overrides["trials"] = overrides["chunk"] = check_int("trials", trials, 1)
    literal_max_iter = check_int("literal_max_iter", literal_max_iter, 1)
    target = check_float("target", target, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    out: dict[str, Any] = {"readings": {}}
    for name, eta in ETA_READINGS.items():
        extra = {"eta": eta} if eta == "paper" else {"eta": eta, "max_iter": literal_max_iter}
        res = run_figure("fig3", scale, seed, progress=progress, overrides={**overrides, **extra}, **run_kwargs)
        s, raw = res["settings"], res["raw"]
        nu = {alg: [float(np.nanmean(np.asarray(row, dtype=float))) if len(row) else float("nan")
                    for row in raw["nu"][alg]] for alg in ("AGD", "GD")}
        iters = {alg: [_iterations_to(c, target, v) for c, v in zip(raw["curves"][alg], nu[alg])]
                 for alg in ("AGD", "GD")}
        out["r"], out["K"] = s["r_values"], s["K"]
        out["readings"][name] = {
            "eta": paper_step_size(s["K"]) if eta == "paper" else float(eta), "max_iter": s["max_iter"],
            "nu": nu, "iterations": {a: [i for i, _ in v] for a, v in iters.items()},
            "extrapolated": {a: [e for _, e in v] for a, v in iters.items()},
            "ratio": [(1 - a) / (1 - g) for a, g in zip(nu["AGD"], nu["GD"])],
            "claims": measure_fig3(res)}
    return out


def eta_readings_summary(out: Mapping[str, Any], cap: int = MAX_ITER) -> dict[str, Any]:
    """From :func:`fig3_step_size_readings`: a Markdown ``table`` (per reading: ``eta``, ``nu`` of
    AGD and GD over ``r``, iterations to the target, the AGD/GD ratio, the exponent of
    ``nu = a + b r^alpha`` with its verdict) and per reading the ``facts``: the ranges, the
    picture the paper's text describes (``rises``: ``nu`` of AGD grows with ``r``; ``agd_below``:
    below GD at every ``r``), and ``over_cap``, the ``r`` whose AGD runs need more than ``cap``
    iterations (§5's 10 000) to reach the target. ``slowdown`` is the ratio of the literal
    reading's iterations to the book's (median over ``r``), and ``picture`` a sentence on which
    reading shows the text's picture. The paper gives no values of ``nu``, so nothing here
    compares a reading with numbers of the paper's figure."""
    cap = check_int("cap", cap, 1)
    rows = ["| reading | eta | nu, AGD | nu, GD | iterations to 1e-8, AGD | (1-nu_AGD)/(1-nu_GD) | "
            "exponent alpha (verdict) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    facts: dict[str, Any] = {}
    for name, rd in out["readings"].items():
        nu_a, nu_g = np.asarray(rd["nu"]["AGD"]), np.asarray(rd["nu"]["GD"])
        its = np.asarray(rd["iterations"]["AGD"], dtype=float)
        extra = any(rd["extrapolated"]["AGD"])
        law = by_id(rd["claims"])["fig3-nu-exponent"]
        facts[name] = {"nu_AGD": (float(np.nanmin(nu_a)), float(np.nanmax(nu_a))),
                       "nu_GD": (float(np.nanmin(nu_g)), float(np.nanmax(nu_g))),
                       "iterations_AGD": (float(np.nanmin(its)), float(np.nanmax(its))), "extrapolated": extra,
                       "ratio": float(np.nanmean(rd["ratio"])), "alpha": law["measured"], "verdict": law["verdict"],
                       "over_cap": [int(r) for r, i in zip(out["r"], its) if i > cap],
                       "rises": bool(np.all(np.diff(nu_a) > 0)),
                       "agd_below": bool(np.all(nu_a < nu_g)), "eta": rd["eta"], "max_iter": rd["max_iter"]}
        f = facts[name]
        rows.append(f"| {name} | {f['eta']:g} | {f['nu_AGD'][0]:.4f} to {f['nu_AGD'][1]:.4f} | "
                    f"{f['nu_GD'][0]:.4f} to {f['nu_GD'][1]:.4f} | {f['iterations_AGD'][0]:.0f} to "
                    f"{f['iterations_AGD'][1]:.0f}{' (extrapolated)' if extra else ''} | {f['ratio']:.3f} | "
                    f"{f['alpha']:.2f} ({f['verdict']}) |")
    slowdown = float(np.nanmedian(np.asarray(out["readings"]["literal"]["iterations"]["AGD"], dtype=float)
                                  / np.asarray(out["readings"]["book"]["iterations"]["AGD"], dtype=float)))
    shape = {k: [w for w, ok in (("nu rising with r", f["rises"]), ("AGD below GD", f["agd_below"])) if not ok]
             for k, f in facts.items()}
    if not any(shape.values()):
        picture = "Both readings show nu rising with r and AGD below GD"
    else:
        parts = [f"the {k} reading lacks {' and '.join(m)}" if m else
                 f"the {k} reading shows nu rising with r and AGD below GD" for k, m in shape.items()]
        picture = "; ".join(parts)
        picture = picture[0].upper() + picture[1:]
    return {"table": "\n".join(rows), "facts": facts, "slowdown": slowdown, "cap": cap, "picture": picture}


__all__ = ["least_squares_error_curve", "fig5_exponent_against_N", "PAPER_CODE_VARIANTS", "paper_code_side_by_side",
           "paper_code_summary",
           "ETA_READINGS", "fig3_step_size_readings", "eta_readings_summary"]
