"""Figures of the §3 chapter (local geometry of the empirical risk)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .geometry import ConvexRegionSweep, SpectrumSweep
from .style import styled


def _reference_line(ax, x, y0, slope, label, style=":"):
    x = np.asarray(x, dtype=float)
    ax.plot(x, y0 * (x / x[0]) ** slope, style, color="0.5", lw=1, label=label)


@styled
def plot_spectrum_vs_K(orthonormal: SpectrumSweep, random: SpectrumSweep | None = None) -> Figure:
    """Log-log plot of ``lambda_min`` and ``lambda_max`` of the Hessian at ``W*`` against ``K`` (Eq. 7)."""
    if orthonormal.parameter != "K":
        raise ValueError("plot_spectrum_vs_K needs a sweep over K")
    fig, ax = plt.subplots(figsize=(6, 4))
    K = orthonormal.values
    for sweep, marker, name in ((orthonormal, "o", "orthonormal W*"), (random, "s", "random W* (§5)")):
        if sweep is None:
            continue
        ax.loglog(sweep.values, sweep.lam_max.mean(1), marker + "-", color="C3", label=rf"$\lambda_{{\max}}$, {name}",
                  mfc="white" if marker == "s" else None)
        ax.loglog(sweep.values, sweep.lam_min.mean(1), marker + "-", color="C0", label=rf"$\lambda_{{\min}}$, {name}",
                  mfc="white" if marker == "s" else None)
    _reference_line(ax, K, orthonormal.lam_max.mean(1)[0] * 1.4, -1, r"slope $-1$ ($1/K$)", "--")
    _reference_line(ax, K, orthonormal.lam_min.mean(1)[0] * 0.7, -2, r"slope $-2$ ($1/K^2$)", ":")
    ax.set_xlabel("number of neurons $K$")
    ax.set_ylabel(r"eigenvalue of $\nabla^2 \hat f_{\mathcal{D}}(W^*)$")
    ax.set_xticks(K, [str(k) for k in K])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


@styled
def plot_lambda_min_vs_ratio(r_sweep: SpectrumSweep, N_sweep: SpectrumSweep) -> Figure:
    """``K^2 lambda_min`` at ``W*`` against ``sqrt(r/N)``, varying ``r`` at fixed ``N`` and ``N`` at fixed ``r``."""
    if r_sweep.parameter != "r" or N_sweep.parameter != "N":
        raise ValueError("plot_lambda_min_vs_ratio needs an r sweep and an N sweep")
    fig, ax = plt.subplots(figsize=(6, 4))
    K = r_sweep.settings["K"]
    x_r = np.sqrt(r_sweep.values / r_sweep.settings["N"])
    x_N = np.sqrt(N_sweep.settings["r"] / N_sweep.values)
    for x, sweep, marker, label in (
        (x_r, r_sweep, "o", f"vary $r$ (N = {r_sweep.settings['N']})"),
        (x_N, N_sweep, "s", f"vary $N$ (r = {N_sweep.settings['r']})"),
    ):
        y = K**2 * sweep.lam_min
        order = np.argsort(x)
        ax.errorbar(x[order], y.mean(1)[order], yerr=y.std(1)[order] if y.shape[1] > 1 else None,
                    fmt=marker + "-", capsize=3, label=label)
    ax.set_xlabel(r"$\sqrt{r/N}$")
    ax.set_ylabel(r"$K^2\,\lambda_{\min}(\nabla^2 \hat f_{\mathcal{D}}(W^*))$")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


@styled
def plot_convex_region(region: ConvexRegionSweep) -> Figure:
    """Left: Hessian perturbation vs distance from ``W*`` with the ``lambda_min(H*)`` levels.
    Right: the certified radius against ``sqrt(r)``."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.9, region.r_values.size))
    for i, r in enumerate(region.r_values):
        pert = region.perturbation[i].mean(0)
        shown = pert > 0  # no activation flips yet: zero perturbation, off a log axis
        ax.loglog(region.radii[shown], pert[shown], "o-", ms=3, color=colors[i], label=f"r = {r}")
        ax.axhline(region.lam_min[i].mean(), color=colors[i], ls="--", lw=1)
    ax.set_xlabel(r"relative distance $\|W - W^*\|_F / \|W^*\|_F$")
    ax.set_ylabel(r"$\|\nabla^2 \hat f(W) - \nabla^2 \hat f(W^*)\|_2$")
    ax.set_title(r"dashed: $\lambda_{\min}(\nabla^2 \hat f(W^*))$", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    x = np.sqrt(region.r_values)
    bx.errorbar(x, region.radius.mean(1), yerr=region.radius.std(1) if region.radius.shape[1] > 1 else None,
                fmt="o-", color="k", capsize=3)
    bx.set_xlabel(r"$\sqrt{r}$")
    bx.set_ylabel("certified convex radius (relative)")
    bx.set_ylim(bottom=0)
    bx.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
