"""Figures of §1-§2 and the AGD error curves: the teacher and the student as graphs, the
mask ``M`` and the weights, and relative-error curves of Algorithm 1.

The chapters call these functions (in cells tagged ``hide-input``); they draw in the
book's style (:func:`lthbook.style.book_style`) and are unit-tested
(``tests/test_plotting.py``). Each public function returns the
:class:`matplotlib.figure.Figure` it drew on.

Symbols follow the paper: ``K`` hidden neurons, input dimension ``d``, the
teacher's index sets ``Omega*_j`` (``r*`` inputs each), the student's index
sets ``Omega_j ⊇ Omega*_j`` (``r`` inputs each), the augmented ground truth
``W*`` (shape ``(r, K)``), its zero-padded form ``tilde W*`` and the mask ``M``
(both shape ``(d, K)``, Eq. 4).
"""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .agd import AGDResult
from .style import COLORS, book_style
from .teacher import SparseTeacher, augmented_weights, check_supports, embed, mask_matrix

#: Largest input dimension ``d`` that :func:`plot_teacher_student` draws legibly.
MAX_DRAWN_INPUTS = 40


# --------------------------------------------------------------------------
# Fig. 1: the teacher and the student as bipartite graphs
# --------------------------------------------------------------------------


def _check_student_supports(teacher: SparseTeacher, supports: np.ndarray) -> np.ndarray:
    supports = check_supports("supports", supports, teacher.d)
    if supports.shape[0] != teacher.K:
        raise ValueError(f"supports must have K={teacher.K} rows, got {supports.shape[0]}")
    augmented_weights(teacher, supports)  # raises ValueError unless Omega_j ⊇ Omega*_j
    return supports


def _draw_network(ax: Axes, teacher: SparseTeacher, supports: np.ndarray, title: str) -> None:
    """Inputs at the bottom, the K hidden neurons in the middle, the output on top."""
    d, K = teacher.d, teacher.K
    x_in = np.linspace(0.0, 1.0, d)
    x_hid = 0.5 + (np.arange(K) - (K - 1) / 2) * min(0.8 / max(K - 1, 1), 0.25)
    y_in, y_hid, y_out = 0.0, 1.0, 1.8
    star = [set(map(int, row)) for row in teacher.supports]
    for j in range(K):
        for i in supports[j]:
            is_teacher = int(i) in star[j]
            ax.plot([x_in[i], x_hid[j]], [y_in, y_hid], zorder=1,
                    color=COLORS["teacher"] if is_teacher else COLORS["extra"],
                    linestyle="-" if is_teacher else (0, (3, 2)),
                    linewidth=1.6 if is_teacher else 1.0, alpha=0.9 if is_teacher else 0.75)
        ax.plot([x_hid[j], 0.5], [y_hid, y_out], color=COLORS["neutral"], linewidth=1.2, zorder=1)
    used = np.zeros(d, dtype=bool)
    used[np.unique(supports)] = True
    node = dict(s=190, edgecolors="black", linewidths=0.8, zorder=3)
    ax.scatter(x_in[used], np.full(used.sum(), y_in), c="white", **node)
    ax.scatter(x_in[~used], np.full((~used).sum(), y_in), c="#cfcfcf", **node)
    ax.scatter(x_hid, np.full(K, y_hid), s=520, c="#f4f4f4", edgecolors="black", linewidths=0.9, zorder=3)
    ax.scatter([0.5], [y_out], s=520, c="#f4f4f4", edgecolors="black", linewidths=0.9, zorder=3)
    for i in range(d):
        ax.annotate(f"$x_{{{i + 1}}}$", (x_in[i], y_in), xytext=(0, -15), textcoords="offset points",
                    ha="center", va="top", fontsize=8 if d <= 20 else 6)
    for j in range(K):
        ax.text(x_hid[j], y_hid, r"$\phi$", ha="center", va="center", fontsize=10, zorder=4)
        ax.annotate(f"$j={j + 1}$", (x_hid[j], y_hid), xytext=(0, 13), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    ax.text(0.5, y_out, r"$\Sigma$", ha="center", va="center", fontsize=10, zorder=4)
    ax.annotate(r"$\frac{1}{K}\sum_j$", (0.5, y_out), xytext=(14, 0), textcoords="offset points",
                ha="left", va="center", fontsize=9)
    ax.set_title(title)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.35, 2.05)
    ax.axis("off")


def plot_teacher_student(teacher: SparseTeacher, supports: np.ndarray | None = None) -> Figure:
    """Redraw the paper's Fig. 1: the sparse teacher of Eq. (1) and, optionally, a student.

    Parameters
    ----------
    teacher:
        The teacher; neuron ``j`` is joined to the inputs ``Omega*_j`` (``r*`` edges each).
    supports:
        The student's index sets ``Omega`` (shape ``(K, r)``, each ``Omega_j ⊇ Omega*_j``).
        When given, a second panel shows the student: its edges inside ``Omega*_j`` are
        drawn solid (the teacher's), the ``r - r*`` extra edges per neuron dashed.

    Returns
    -------
    The figure: one axes (teacher only) or two (teacher, student).

    Raises
    ------
    ValueError
        If ``d`` exceeds :data:`MAX_DRAWN_INPUTS`, or a student ``Omega_j`` misses an input of
        ``Omega*_j`` (no student weights could then reproduce the teacher).
    """
    if not isinstance(teacher, SparseTeacher):
        raise TypeError(f"teacher must be a SparseTeacher, got {type(teacher).__name__}")
    if teacher.d > MAX_DRAWN_INPUTS:
        raise ValueError(f"d={teacher.d} inputs are too many to draw legibly; use d <= {MAX_DRAWN_INPUTS}")
    if supports is not None:
        supports = _check_student_supports(teacher, supports)
    with book_style():
        ncols = 1 if supports is None else 2
        width = max(4.0, 0.32 * teacher.d + 1.2)
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 3.4), squeeze=False)
        axes = axes[0]
        _draw_network(axes[0], teacher, teacher.supports,
                      rf"Teacher: $|\Omega^*_j| = r^* = {teacher.r_star}$")
        handles = [Line2D([], [], color=COLORS["teacher"], lw=1.6, label=r"teacher edge ($i \in \Omega^*_j$)")]
        if supports is not None:
            _draw_network(axes[1], teacher, supports,
                          rf"Student: $|\Omega_j| = r = {supports.shape[1]}$, $\Omega_j \supseteq \Omega^*_j$")
            if supports.shape[1] > teacher.r_star:
                handles.append(Line2D([], [], color=COLORS["extra"], lw=1.0, ls=(0, (3, 2)),
                                      label=r"extra student edge ($i \in \Omega_j \setminus \Omega^*_j$)"))
        handles.append(Line2D([], [], marker="o", ls="", mfc="#cfcfcf", mec="black", ms=8,
                              label="input no neuron sees"))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# --------------------------------------------------------------------------
# Eq. (4): W*, tilde W* and the mask M as heat maps
# --------------------------------------------------------------------------


def plot_masked_weights(teacher: SparseTeacher, supports: np.ndarray) -> Figure:
    """Show the three matrices of §2 side by side.

    Left: the augmented ``W*`` (shape ``(r, K)``, student coordinates; row ``k`` of column
    ``j`` belongs to the ``k``-th input of ``Omega_j``). Middle: its zero-padded form
    ``tilde W*`` (shape ``(d, K)``); for ``d <= 24`` the exact zeros are marked "0". Right: the student's mask ``M``
    (``M_ij = 1`` iff ``i in Omega_j``), with the teacher's mask ``M*`` marked, so that
    ``Supp(M) ⊇ Supp(M*)`` can be read off.

    Returns
    -------
    The figure, with three image axes (plus one colour-bar axes).

    Raises
    ------
    ValueError
        If ``supports`` is not a valid ``(K, r)`` index array with ``Omega_j ⊇ Omega*_j``.
    """
    if not isinstance(teacher, SparseTeacher):
        raise TypeError(f"teacher must be a SparseTeacher, got {type(teacher).__name__}")
    supports = _check_student_supports(teacher, supports)
    d, K, r = teacher.d, teacher.K, supports.shape[1]
    W_star = augmented_weights(teacher, supports)
    W_tilde = embed(W_star, supports, d)
    M = mask_matrix(supports, d)
    M_star = teacher.mask()
    vmax = float(np.abs(W_tilde).max()) or 1.0
    with book_style():
        height = max(3.2, 0.22 * d + 1.4)
        fig, axes = plt.subplots(1, 3, figsize=(8.8, height),
                                 gridspec_kw={"width_ratios": [1, 1, 1]}, constrained_layout=True)
        kw = dict(cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
        axes[0].imshow(W_star, **kw)
        im = axes[1].imshow(W_tilde, **kw)
        mask_img = np.where(M_star > 0, 2.0, M)  # 0: pruned, 1: extra student weight, 2: teacher weight
        cmap = matplotlib.colors.ListedColormap(["#f2f2f2", COLORS["extra"], COLORS["teacher"]])
        axes[2].imshow(mask_img, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto", interpolation="nearest")
        titles = [rf"$W^*$  ($r \times K$ = {r}$\times${K})",
                  rf"$\widetilde W^*$  ($d \times K$ = {d}$\times${K})",
                  r"mask $M$ (and $M^*$)"]
        ylabels = [r"position $k$ in $\Omega_j$", r"input index $i$", ""]
        for ax, title, ylabel, rows in zip(axes, titles, ylabels, (r, d, d)):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(r"neuron $j$")
            ax.set_ylabel(ylabel)
            ax.set_xticks(range(K), [str(j + 1) for j in range(K)])
            step = 1 if rows <= 16 else int(np.ceil(rows / 12))
            ax.set_yticks(range(0, rows, step), [str(i + 1) for i in range(0, rows, step)])
            ax.grid(False)
        if d <= 24:  # mark the structural zeros, which small weights would otherwise resemble
            for ax, mat in ((axes[0], W_star), (axes[1], W_tilde)):
                for (row, col) in zip(*np.nonzero(mat == 0)):
                    ax.text(col, row, "0", ha="center", va="center", fontsize=7, color="#9a9a9a")
        fig.colorbar(im, ax=axes[:2], shrink=0.8, pad=0.04, label="weight value")
        handles = [matplotlib.patches.Patch(color=COLORS["teacher"], label=r"$M^*_{ij}=1$ (teacher)"),
                   matplotlib.patches.Patch(color=COLORS["extra"], label=r"$M_{ij}=1$, $M^*_{ij}=0$"),
                   matplotlib.patches.Patch(facecolor="#f2f2f2", edgecolor="#999999", label=r"$M_{ij}=0$ (pruned)")]
        axes[2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig


# --------------------------------------------------------------------------
# relative error against iterations
# --------------------------------------------------------------------------


def _as_curve(label: str, curve: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(iterations (T,), errors (T, runs))`` from an :class:`AGDResult` or a pair of arrays."""
    if isinstance(curve, AGDResult):
        if curve.history is None or curve.history_iters is None:
            raise ValueError(f"curve {label!r}: the AGDResult has no history; run run_agd with record_every=...")
        iterations, values = curve.history_iters, curve.history.reshape(curve.history.shape[0], -1)
    elif isinstance(curve, tuple) and len(curve) == 2:
        iterations, values = curve
    else:
        raise TypeError(f"curve {label!r} must be an AGDResult or a pair (iterations, errors)")
    iterations = np.asarray(iterations, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if iterations.ndim != 1 or iterations.size == 0:
        raise ValueError(f"curve {label!r}: iterations must be a non-empty 1-D array, got shape {iterations.shape}")
    if values.ndim != 2 or values.shape[0] != iterations.size:
        raise ValueError(
            f"curve {label!r}: errors must have shape ({iterations.size},) or ({iterations.size}, runs), "
            f"got {values.shape}"
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"curve {label!r} must hold positive finite relative errors (log axis)")
    return iterations, values


def plot_error_curves(
    curves: Mapping[str, AGDResult | tuple[np.ndarray, np.ndarray]],
    *,
    success_tol: float | None = None,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Relative error ``||W(t) - W*||_F / ||W*||_F`` against the iteration ``t`` (log scale).

    Parameters
    ----------
    curves:
        Label -> either an :class:`~lthbook.agd.AGDResult` run with ``record_every`` (its
        ``history`` over all ``P x B`` runs is used) or a pair ``(iterations, errors)`` with
        ``iterations`` of shape ``(T,)`` and ``errors`` of shape ``(T,)`` or ``(T, runs)``.
        Several runs are drawn as their median (one line) and a shaded min-max band. A
        history ends early when every run's stopping rule fired; a dot marks that end.
    success_tol:
        If given, a dashed horizontal line at this relative error (the paper's ``1e-4``).
    colors:
        Optional label -> colour.
    title:
        Optional axes title.

    Returns
    -------
    The figure: one axes, one line per curve (plus one for ``success_tol``).

    Raises
    ------
    ValueError
        If ``curves`` is empty, an ``AGDResult`` has no history, shapes disagree, or an error
        is not positive and finite (a log axis cannot show it).
    """
    if not curves:
        raise ValueError("curves must contain at least one labelled curve")
    prepared = {label: _as_curve(label, curve) for label, curve in curves.items()}
    if success_tol is not None and not (np.isfinite(success_tol) and success_tol > 0):
        raise ValueError(f"success_tol must be positive and finite, got {success_tol!r}")
    t_max = max(float(it[-1]) for it, _ in prepared.values())
    t_min = min(float(it[0]) for it, _ in prepared.values())
    palette = [COLORS["pruned"], COLORS["dense"], "#2e8b57", "#8e44ad", "#7f7f7f"]
    with book_style():
        fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
        for k, (label, (iterations, values)) in enumerate(prepared.items()):
            color = (colors or {}).get(label, palette[k % len(palette)])
            runs = values.shape[1]
            median = np.median(values, axis=1)
            ax.plot(iterations, median, color=color,
                    label=label if runs == 1 else f"{label} (median of {runs} runs)")
            if runs > 1:
                ax.fill_between(iterations, values.min(axis=1), values.max(axis=1), color=color, alpha=0.18,
                                linewidth=0)
            if iterations[-1] < t_max:
                ax.scatter([iterations[-1]], [median[-1]], color=color, s=22, zorder=3)
        if success_tol is not None:
            ax.axhline(success_tol, color=COLORS["threshold"], linestyle="--", linewidth=1.0,
                       label=f"success threshold {success_tol:g}")
        ax.set_yscale("log")
        ax.set_xlabel(r"iteration $t$ (number of AGD steps)")
        ax.set_ylabel(r"relative error $\|W^{(t)} - W^*\|_F \,/\, \|W^*\|_F$")
        ax.set_xlim(t_min, t_max)
        if title:
            ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(len(prepared) + (success_tol is not None), 2))
    return fig
