"""Figures of the §4 chapter (convergence of Algorithm 1, momentum, initialization, pruning)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .convergence import InitSweep, PruningSweep, RateSweep
from .style import styled


@styled
def plot_rate_vs_r(agd: RateSweep, gd: RateSweep) -> Figure:
    """Fitted contraction factor ``nu`` (Eq. 9) against ``sqrt(r)`` for AGD and GD."""
    if agd.parameter != "r" or gd.parameter != "r":
        raise ValueError("plot_rate_vs_r needs two sweeps over r")
    fig, ax = plt.subplots(figsize=(6, 4))
    for sweep, label, marker in ((gd, r"GD ($\beta = 0$)", "s"), (agd, rf"AGD ($\beta = {agd.settings['beta']}$)", "o")):
        x = np.sqrt(sweep.values)
        ax.errorbar(x, np.nanmean(sweep.nu, 1), yerr=np.nanstd(sweep.nu, 1) if sweep.nu.shape[1] > 1 else None,
                    fmt=marker + "-", capsize=3, label=label)
    ax.set_xlabel(r"$\sqrt{r}$")
    ax.set_ylabel(r"contraction factor $\nu$ per iteration")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def heavy_ball_rate(beta: np.ndarray, mu_over_L: float) -> np.ndarray:
    """Worst-mode contraction factor of heavy-ball momentum with ``eta = 1/L`` on a quadratic
    with Hessian eigenvalues in ``[mu, L]``: the largest root modulus of
    ``z^2 - (1 + beta - eta*lambda) z + beta`` over ``lambda in {mu, L}``."""
    beta = np.asarray(beta, dtype=float)
    b = 1 + beta - mu_over_L
    disc = b * b - 4 * beta
    slow = np.where(disc >= 0, (b + np.sqrt(np.maximum(disc, 0))) / 2, np.sqrt(beta))
    return np.maximum(slow, np.sqrt(beta))


@styled
def plot_rate_vs_beta(sweep: RateSweep) -> Figure:
    """``nu`` against the momentum ``beta`` at fixed ``eta``, with the quadratic-model optimum marked."""
    if sweep.parameter != "beta":
        raise ValueError("plot_rate_vs_beta needs a sweep over beta")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(sweep.values, np.nanmean(sweep.nu, 1), yerr=np.nanstd(sweep.nu, 1) if sweep.nu.shape[1] > 1 else None,
                fmt="o-", color="k", capsize=3, label="measured")
    beta_star = sweep.settings["beta_star_theory"]
    ax.axvline(beta_star, color="C3", ls="--", label=rf"$\beta^* = (1-\sqrt{{\mu/L}})^2 = {beta_star:.2f}$")
    beta_grid = np.linspace(0, sweep.values.max(), 200)
    ax.plot(beta_grid, heavy_ball_rate(beta_grid, float(np.mean(sweep.settings["mu_over_L"]))), color="C0",
            lw=1, label=r"quadratic model with the Hessian's $\mu/L$")
    ax.set_xlabel(r"momentum $\beta$ (step $\eta = 1/\lambda_{\max}$ fixed)")
    ax.set_ylabel(r"contraction factor $\nu$ per iteration")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


@styled
def plot_init_quality(sweep: InitSweep) -> Figure:
    """Relative distance of the tensor initialization from ``W*`` against ``N``, one line per ``r`` and method."""
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.85, sweep.r_values.size))
    styles = {"exact": ("o-", "exact (union of masks)"), "paper": ("s:", r"paper ($\tilde x$)")}
    for method, dist in sweep.distance.items():
        marker, name = styles.get(method, ("^-", method))
        for i, r in enumerate(sweep.r_values):
            ax.loglog(sweep.N_values, dist[i].mean(-1), marker, color=colors[i], label=f"{name}, r = {r}")
    ax.set_xlabel("number of samples $N$")
    ax.set_ylabel(r"$\|W^{(0)} - W^*\|_F / \|W^*\|_F$")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


@styled
def plot_pruning(sweep: PruningSweep) -> Figure:
    """Fraction of trials whose magnitude-pruned mask contains the teacher's, against ``N``, per prune fraction."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, fraction in enumerate(sweep.fractions):
        ax.plot(sweep.N_values, sweep.proper[:, k].mean(-1), "o-", label=f"prune {fraction:.0%}: proper")
    exact_k = int(np.argmax(sweep.fractions))
    ax.plot(sweep.N_values, sweep.exact[:, exact_k].mean(-1), "k--",
            label=f"prune {sweep.fractions[exact_k]:.0%}: exactly the teacher's mask")
    ax.axvline(sweep.settings["d"] * sweep.settings["K"], color="0.5", ls=":", lw=1, label="N = dK")
    ax.set_xscale("log")
    ax.set_xlabel("number of samples $N$")
    ax.set_ylabel("fraction of trials")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
