"""Figures 6 and 7 of the paper (§5.2), drawn from the dictionaries of
:func:`lthbook.runner.run_figure`.

* :func:`plot_fig6` -- test error (log scale) against the percentage of remaining
  weights (log scale, decreasing to the right as pruning proceeds), one line per ``N``
  (mean over trials, the band spans the trials), with the teacher's ``r*/d`` marked;
* :func:`plot_fig7` -- best test accuracy against the percentage of remaining weights,
  one line per ``N``;
* :func:`plot_paper_code_side_by_side` -- the same axes for one ``N``, one line per IMP
  variant of :func:`lthbook.investigations.paper_code_side_by_side`.

All return a :class:`matplotlib.figure.Figure` drawn in the book's style.
"""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from ._validation import check_result
from .style import book_style as _style

_NETWORK_LABELS = {"lenet5": "classic LeNet-5", "lenet5-paper-code": "the paper code's 'LeNet5'"}


def _remaining_axis(ax, percent: np.ndarray) -> None:
    """Log x axis of remaining weights in %, from 100 on the left down to the smallest level."""
    ax.set_xscale("log")
    ticks = [t for t in (100, 80, 60, 40, 20, 10, 5, 2, 1, 0.5) if percent.min() * 0.95 <= t <= 100]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlim(100 * 1.08, percent.min() / 1.08)
    ax.set_xlabel("remaining weights (%)")


def plot_fig6(results: Mapping[str, Any]) -> Figure:
    """Figure 6: test error of the IMP-pruned student against the percentage of remaining weights."""
    check_result(results, "fig6")
    s = results["settings"]
    percent = 100 * np.asarray(results["axes"]["remaining"], dtype=float)
    err = np.asarray(results["raw"]["test_error"], dtype=float)  # (N, trial, level)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(s["N_values"])))
    with _style():
        fig, ax = plt.subplots(figsize=(6.2, 4.2), constrained_layout=True)
        for i, N in enumerate(s["N_values"]):
            ax.plot(percent, err[i].mean(axis=0), "o-", ms=3.5, color=colors[i], label=f"N = {N}")
            if err.shape[1] > 1:
                ax.fill_between(percent, err[i].min(axis=0), err[i].max(axis=0), color=colors[i], alpha=0.15, lw=0)
        ax.axvline(100 * s["r_star"] / s["d"], color="#444444", ls="--", lw=1)
        ax.annotate(r"$r^*/d$", (100 * s["r_star"] / s["d"], 0.98), xycoords=("data", "axes fraction"),
                    ha="right", va="top", fontsize=9, xytext=(-3, 0), textcoords="offset points")
        ax.set_yscale("log")
        _remaining_axis(ax, percent)
        ax.set_ylabel(r"test error $\|g(x;W)-g(x;W^*)\| / \|g(x;W^*)\|$")
        ax.set_title(f"K={s['K']}, d={s['d']}, r*/d={s['r_star'] / s['d']:.0%}, sigma/E_y={s['noise_level']:g} "
                     f"(scale {results['scale']}, {s['trials']} trial{'s' if s['trials'] > 1 else ''})", fontsize=9)
        ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_fig7(results: Mapping[str, Any]) -> Figure:
    """Figure 7: best test accuracy on MNIST against the percentage of remaining weights."""
    check_result(results, "fig7")
    s = results["settings"]
    percent = 100 * np.asarray(results["axes"]["remaining"], dtype=float)
    acc = 100 * np.asarray(results["raw"]["best_test_accuracy"], dtype=float)  # (N, level)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(s["N_values"])))
    with _style():
        fig, ax = plt.subplots(figsize=(6.2, 4.2), constrained_layout=True)
        for i, N in enumerate(s["N_values"]):
            ax.plot(percent, acc[i], "o-", ms=3.5, color=colors[i], label=f"N = {N}")
        _remaining_axis(ax, percent)
        ax.set_ylabel("test accuracy (%)")
        net = _NETWORK_LABELS.get(s["network"], s["network"])
        epochs = f"{s['epochs']} epoch{'s' if s['epochs'] > 1 else ''}"
        ax.set_title(f"MNIST, {net}, {epochs} per level (scale {results['scale']})", fontsize=9)
        ax.legend(fontsize=8, loc="best")
    return fig


def plot_paper_code_side_by_side(result: Mapping[str, Any]) -> Figure:
    """Best test accuracy against the percentage of remaining weights, one line per IMP variant
    (the book's, the paper code's, the paper code with its sign mask fixed), from
    :func:`lthbook.investigations.paper_code_side_by_side`."""
    if not isinstance(result, Mapping) or "variants" not in result or "remaining" not in result:
        raise ValueError("result must be the dictionary returned by paper_code_side_by_side")
    s = result["settings"]
    percent = 100 * np.asarray(result["remaining"], dtype=float)
    styles = ["o-", "s--", "^:"]
    with _style():
        fig, ax = plt.subplots(figsize=(6.2, 3.6), constrained_layout=True)
        for i, (name, v) in enumerate(result["variants"].items()):
            ax.plot(percent, 100 * np.asarray(v["best_test_accuracy"]), styles[i % 3], ms=4, label=name)
        _remaining_axis(ax, percent)
        ax.set_ylabel("test accuracy (%)")
        net = _NETWORK_LABELS.get(s["network"], s["network"])
        ax.set_title(f"MNIST, {net}, N = {s['N_values'][0]}, {s['epochs']} epoch(s) per level, "
                     f"{s['test_size']} test images", fontsize=9)
        ax.legend(fontsize=8, loc="best")
    return fig


__all__ = ["plot_fig6", "plot_fig7", "plot_paper_code_side_by_side"]
