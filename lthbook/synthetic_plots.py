"""Figures 2-5 of the paper (§5.1), drawn from the dictionaries of :func:`lthbook.runner.run_figure`.

* :func:`plot_fig2` -- success-rate map over ``sqrt(r)`` (x) and the relative initial
  distance ``||W(0) - W*||_F / ||W*||_F`` (y), black = every run failed, white =
  every run succeeded, grey levels in between (the paper's Figure 2);
* :func:`plot_fig3` -- (a) relative error against the iteration for several ``r``
  (log scale), (b) the fitted convergence rate ``nu`` against ``sqrt(r)`` for AGD
  (``beta = 0.2``) and GD (``beta = 0``) (Figure 3);
* :func:`plot_fig4` -- success-rate map over ``r`` (x) and the sample size ``N`` (y),
  same grey scale (Figure 4);
* :func:`plot_fig5` -- final relative error against ``sqrt(r)``, one line per noise
  level ``sigma/E_y`` (Figure 5).

Every function returns a :class:`matplotlib.figure.Figure` drawn in the book's style
(:func:`lthbook.style.book_style`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ._validation import check_result
from .claims import sample_threshold, success_radius
from .style import book_style as _style
from .stats import linear_fit


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges half-way between consecutive grid values (extrapolated at both ends)."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _success_map(ax, x: np.ndarray, y: np.ndarray, rate: np.ndarray, log_y: bool = False):
    """Grey-level map, ``rate`` of shape ``(len(x), len(y))``; 0 = black, 1 = white, NaN (not
    run) left blank in the axes' colour. ``log_y``: cell edges half-way in ``log y``."""
    y_edges = np.exp(_edges(np.log(y))) if log_y else _edges(y)
    mesh = ax.pcolormesh(_edges(x), y_edges, np.ma.masked_invalid(rate.T), cmap="gray", vmin=0.0, vmax=1.0,
                         shading="flat", edgecolors="face", linewidth=0)
    if log_y:
        ax.set_yscale("log")
    ax.grid(False)
    # a full frame: without it the white (all-succeed) cells run into the white page
    for spine in ax.spines.values():
        spine.set_visible(True)
    return mesh


def _success_map_figure(x: np.ndarray, y: np.ndarray, rate: np.ndarray, log_y: bool = False):
    """A new figure with the grey-level success map of ``rate`` (shape ``(len(x), len(y))``)
    over the whole ``y`` grid and its colour bar; returns ``(fig, ax)``."""
    fig, ax = plt.subplots(figsize=(6.2, 4.8), constrained_layout=True)
    mesh = _success_map(ax, x, y, rate, log_y)
    edges = np.exp(_edges(np.log(y))) if log_y else _edges(y)
    ax.set_ylim(edges[0], edges[-1])
    cbar = fig.colorbar(mesh, ax=ax, pad=0.02)
    cbar.set_label("success rate (white: all succeed, black: all fail)")
    return fig, ax


def _points_and_line(ax, x: np.ndarray, y: np.ndarray, x_range: tuple[float, float], point_label: str,
                     line_label: Callable[[Any], str], excluded: np.ndarray | None = None,
                     excluded_label: str = "") -> None:
    """Mark the points ``(x, y)`` and, with 3 or more of them, their least-squares line over
    ``x_range``, labelled ``line_label(fit)``; the legend goes under the axes. Points where
    ``excluded`` is True are drawn hollow (``excluded_label``) and left out of the fit."""
    keep = np.ones(x.shape, dtype=bool) if excluded is None else ~np.asarray(excluded, dtype=bool)
    ax.plot(x[keep], y[keep], "o", color="#c0392b", ms=5, label=point_label)
    if not keep.all():
        ax.plot(x[~keep], y[~keep], "o", mfc="white", mec="#c0392b", ms=5, label=excluded_label)
    x, y = x[keep], y[keep]
    if x.size >= 3:
        fit = linear_fit(x, y)
        xx = np.linspace(x_range[0], x_range[1], 50)
        ax.plot(xx, fit(xx), "--", color="#c0392b", lw=1.4, label=line_label(fit))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)


def _scale_note(results: Mapping[str, Any]) -> str:
    s = results["settings"]
    runs = f"{s['trials']} data sets x {s['inits']} W(0)" if "inits" in s else f"{s['trials']} trials"
    return f"scale {results['scale']}, seed {results['seed']}, {runs} per point"


def plot_fig2(results: Mapping[str, Any], *, show_radius: bool = True) -> Figure:
    """Figure 2: success rate of Algorithm 1 against ``sqrt(r)`` and the relative initial distance.

    ``show_radius`` overlays the radius per ``r`` (where the success rate falls through 50 %,
    :func:`lthbook.claims.success_radius`) and its least-squares line in ``sqrt(r)``, the
    quantity Theorem 1 (Eq. 6) predicts to fall linearly. With a ``far_distances`` block the
    distance axis is logarithmic, and distances not run for an ``r`` are left blank.
    """
    check_result(results, "fig2")
    s = results["settings"]
    sqrt_r = np.asarray(results["axes"]["sqrt_r"], dtype=float)
    rad = success_radius(results)
    dist = np.asarray(rad["distance"], dtype=float)
    rate = np.asarray([[np.nan if v is None else v for v in row] for row in rad["success_rate"]], dtype=float)
    log_y = bool(results["raw"].get("far"))
    with _style():
        fig, ax = _success_map_figure(sqrt_r, dist, rate, log_y)
        if log_y:
            ax.set_facecolor("#9ec5e8")
            ax.plot([], [], "s", color="#9ec5e8", ms=8, label="not run (boundary already inside the grid)")
        if show_radius:
            inside = ~np.asarray(rad["censored"], dtype=bool)
            lo = sqrt_r[inside][0] if inside.any() else sqrt_r[0]
            _points_and_line(ax, sqrt_r, np.asarray(rad["radius"]), (lo, sqrt_r[-1]),
                             "radius (50 % success)",
                             lambda fit: f"fit: {fit.slope:.2f}" + r"$\sqrt{r}$"
                             + f" {'+' if fit.intercept >= 0 else '-'} {abs(fit.intercept):.2f} ($R^2$={fit.r2:.2f})",
                             excluded=~inside, excluded_label="boundary outside the grid (a bound; not fitted)")
        elif log_y:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8)
        ax.set_xlabel(r"$\sqrt{r}$ (square root of the inputs per neuron)")
        ax.set_ylabel(r"relative initial distance $\|W^{(0)}-W^*\|_F/\|W^*\|_F$")
        ax.set_xticks(sqrt_r, [f"{v:.1f}" for v in sqrt_r])
        if log_y:
            ax.set_yticks(dist, [f"{v:g}" for v in dist], fontsize=7)
            ax.minorticks_off()
        ax.set_title(f"K={s['K']}, d={s['d']}, N={s['N']} ({_scale_note(results)})", fontsize=9)
    return fig


def plot_fig3(results: Mapping[str, Any], *, max_curves: int = 6) -> Figure:
    """Figure 3: (a) AGD's relative error against the iteration for several ``r`` (mean of
    ``log10`` error over trials); (b) the convergence rate ``nu`` against ``sqrt(r)`` for AGD
    (``beta = 0.2``) and GD (``beta = 0``), mean and spread over trials (Theorem 2)."""
    check_result(results, "fig3")
    if not isinstance(max_curves, int) or max_curves < 1:
        raise ValueError(f"max_curves must be an integer >= 1, got {max_curves!r}")
    s = results["settings"]
    r = np.asarray(results["axes"]["r"])
    sqrt_r = np.asarray(results["axes"]["sqrt_r"], dtype=float)
    idx = np.unique(np.linspace(0, r.size - 1, min(max_curves, r.size)).round().astype(int))
    cmap = plt.get_cmap("viridis")
    with _style():
        # 7.8 in wide: scaled to the page's text width, its labels stay about as large as the
        # one-panel figures' (10.5 in made them about 8 px high in the browser test's screenshots)
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(7.8, 3.8), constrained_layout=True)
        for k, i in enumerate(idx):
            curve = results["raw"]["curves"]["AGD"][i]
            color = cmap(k / max(1, len(idx) - 1) * 0.9)
            ax_a.semilogy(curve["iterations"], 10.0 ** np.asarray(curve["mean_log10_error"], dtype=float),
                          color=color, label=f"r = {r[i]}")
        ax_a.set_xlabel("iteration $t$")
        ax_a.set_ylabel(r"relative error $\|W^{(t)}-W^*\|_F/\|W^*\|_F$")
        ax_a.set_title(f"(a) AGD, beta={s['betas'][0]}, eta={_eta_text(results)}", fontsize=10)
        ax_a.legend(fontsize=8)
        for alg, marker, color in (("AGD", "o", "#1f5fa8"), ("GD", "s", "#c0392b")):
            nu = np.asarray(results["raw"]["nu"][alg], dtype=float)
            mean = np.nanmean(nu, axis=1)
            spread = np.nanstd(nu, axis=1) if nu.shape[1] > 1 else None
            beta = s["betas"][0] if alg == "AGD" else s["betas"][1]
            ax_b.errorbar(sqrt_r, mean, yerr=spread, fmt=marker + "-", color=color, capsize=3,
                          label=f"{alg} (beta = {beta:g})")
        ax_b.set_xlabel(r"$\sqrt{r}$")
        ax_b.set_ylabel(r"convergence rate $\nu$ (error ratio per iteration)")
        ax_b.set_title(f"(b) K={s['K']}, d={s['d']}, N={s['N']}\n({_scale_note(results)})", fontsize=9)
        ax_b.legend(fontsize=8)
    return fig


def _eta_text(results: Mapping[str, Any]) -> str:
    eta = results["settings"]["eta"]
    if eta == "paper":
        return f"0.5 K^2 = {0.5 * results['settings']['K'] ** 2:g}"
    return str(eta)


def plot_fig4(results: Mapping[str, Any], *, show_threshold: bool = True) -> Figure:
    """Figure 4: success rate over the student width ``r`` (x) and the sample size ``N`` (y).

    ``show_threshold`` overlays ``N_50(r)`` (the interpolated ``N`` at which half the runs
    succeed, :func:`lthbook.claims.sample_threshold`) and its least-squares line, the
    linear sample complexity of Eq. (8).
    """
    check_result(results, "fig4")
    s = results["settings"]
    r = np.asarray(results["axes"]["r"], dtype=float)
    N = np.asarray(results["axes"]["N"], dtype=float)
    th = sample_threshold(results)
    with _style():
        fig, ax = _success_map_figure(r, N, np.asarray(th["success_rate"]))
        if show_threshold:
            ok = np.array([st == "ok" for st in th["status"]])
            _points_and_line(ax, r[ok], np.asarray(th["N50"])[ok], (r[0], r[-1]), r"$N_{50}(r)$ (half the runs succeed)",
                             lambda fit: f"fit: {fit.slope:.2f} r {'+' if fit.intercept >= 0 else '-'} "
                                         f"{abs(fit.intercept):.1f} ($R^2$={fit.r2:.2f})")
        ax.set_xlabel("$r$ (inputs per neuron)")
        ax.set_xticks(r, [f"{v:g}" for v in r])
        ax.set_ylabel("number of samples $N$")
        ax.set_title(f"K={s['K']}, d={s['d']}, W(0) at distance {s['distance']:g} ({_scale_note(results)})",
                     fontsize=9)
    return fig


def plot_fig5(results: Mapping[str, Any], *, logy: bool = False) -> Figure:
    """Figure 5: final relative error ``||W(T)-W*||_F/||W*||_F`` against ``sqrt(r)``, one line
    per noise level ``sigma/E_y`` (mean over trials, bars = standard deviation); Eq. (9)
    predicts lines linear in ``sqrt(r)`` with heights proportional to the noise level."""
    check_result(results, "fig5")
    if not isinstance(logy, bool):
        raise ValueError(f"logy must be True or False, got {logy!r}")
    s = results["settings"]
    sqrt_r = np.asarray(results["axes"]["sqrt_r"], dtype=float)
    levels = results["axes"]["noise_levels"]
    cmap = plt.get_cmap("plasma")
    with _style():
        fig, ax = plt.subplots(figsize=(6.2, 4.4), constrained_layout=True)
        for l, level in enumerate(levels):
            err = [np.asarray(e, dtype=float) for e in results["raw"]["rel_error"][l]]
            mean = np.array([e.mean() for e in err])
            std = np.array([e.std() for e in err]) if min(e.size for e in err) > 1 else None
            ax.errorbar(sqrt_r, mean, yerr=std, fmt="o-", capsize=3, color=cmap(0.85 * l / max(1, len(levels) - 1)),
                        label=rf"$\sigma/E_y$ = {level:g}")
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(r"$\sqrt{r}$")
        ax.set_ylabel(r"relative error $\|W^{(T)}-W^*\|_F/\|W^*\|_F$")
        ax.set_title(f"K={s['K']}, d={s['d']}, N={s['N']} ({_scale_note(results)})", fontsize=9)
        ax.legend(fontsize=8)
    return fig


__all__ = ["plot_fig2", "plot_fig3", "plot_fig4", "plot_fig5"]
