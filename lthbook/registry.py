"""The figure registry: one record per figure of §5, naming every step of its data path.

A :class:`FigureSpec` holds, for one figure, its title and the paper's claim, its
presets per scale (:mod:`lthbook.presets`) and their validator, the experiment that
turns settings into cells and assembles their results (:mod:`lthbook.cells`), the
claim check (:mod:`lthbook.claims`) and the plot. The runner, the command line, the
chapters and the tests find a figure only through :data:`FIGURES` (or :func:`get`):
adding a figure is one record here and one experiment module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from matplotlib.figure import Figure

from . import claims, imp_experiments, imp_plots, laws, presets, synthetic_experiments, synthetic_plots
from .cells import Experiment
from .scales import get_scale


@dataclass(frozen=True)
class FigureSpec:
    """Everything the package knows about one figure.

    ``section`` is the paper's section, ``presets`` maps each scale to its settings,
    ``validate`` normalises a settings dictionary (raising ``TypeError``/``ValueError``
    naming the parameter), ``experiment`` computes and assembles the cells, ``check``
    asserts the claim on the assembled result, ``plot`` draws it, ``measure`` fits the paper's
    laws with intervals and verdicts (:mod:`lthbook.laws`). ``default_threads`` is
    the torch CPU thread count used when the caller gives none (``None``: chosen per cell
    by :func:`lthbook.agd.run_agd`), ``needs_mnist`` says whether the figure reads MNIST,
    ``seconds`` the measured run time per scale from an empty cache (``None``: not measured).
    """

    name: str
    section: str
    title: str
    claim: str
    presets: Mapping[str, Mapping[str, Any]]
    validate: Callable[[dict[str, Any]], dict[str, Any]]
    experiment: Experiment
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    plot: Callable[[Mapping[str, Any]], Figure]
    measure: Callable[[Mapping[str, Any]], list[dict[str, Any]]] | None = None
    default_threads: int | None = None
    needs_mnist: bool = False
    seconds: Mapping[str, float | None] | None = None

    def duration(self, scale: str) -> str:
        """How long the figure took from an empty cache at ``scale`` on the book's 2-core CPU
        (measured; the Reproducibility page lists the runs), as a short text."""
        value = (self.seconds or {}).get(scale)
        return "not measured" if value is None else format_duration(value)

    def settings(self, scale: str | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The validated settings at ``scale`` (``None``: ``$LTHBOOK_SCALE``) with ``overrides`` applied."""
        merged = presets.with_overrides(self.presets[get_scale(scale)], overrides)
        return self.validate(presets.check_keys(self.name, merged, set(self.presets["ci"])))


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.8 h`` (one decimal below 10 hours), ``16 h`` or ``16 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 10 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


# Measured run times from an empty cache on the book's 2-core CPU (book/reproducibility.md):
# ci and book with the current code; paper: Figs 2-5 with the default workers (one per core,
# reproduce FIG --scale paper, empty cache, 2026-12-04), Fig 7 estimated by bench/bench_imp.py
# (bfloat16, as "auto" chose).
_SECONDS = {
    # fig2 paper: measured, 2 workers, empty cache, all 280 cells in two segments of one run
    # (reproduce fig2 --scale paper --workers 2, 2026-12-04: 6602 s, then resumed from its cache,
    # 5489 s); bench/estimate_fig2.py --sibling had predicted 6.59 h of one-core compute, 3.30 h
    "fig2": {"ci": 12, "book": 78, "paper": 6602 + 5489},
    "fig3": {"ci": 6, "book": 43, "paper": 157},
    "fig4": {"ci": 11, "book": 105, "paper": 488},
    "fig5": {"ci": 9, "book": 18, "paper": 459},
    "fig6": {"ci": 5, "book": 28, "paper": 4436},  # paper: sum of the levels' times, one core each (cell_time_s)
    "fig7": {"ci": 10, "book": 1546, "paper": 553000},
}

_SPECS = (
    FigureSpec("fig2", "5.1", "Figure 2: success rate of Algorithm 1 against sqrt(r) and the initial distance",
               "the radius of the region from which Algorithm 1 succeeds is linear in -sqrt(r) (Theorem 1, Eq. 6)",
               presets.PRESETS["fig2"], presets.validate_agd_settings, synthetic_experiments.FIG2,
               claims.check_fig2, synthetic_plots.plot_fig2, seconds=_SECONDS["fig2"], measure=laws.measure_fig2),
    FigureSpec("fig3", "5.1", "Figure 3: convergence rate of AGD and GD when r changes",
               "the convergence rate nu grows with r, almost linearly in sqrt(r), and AGD (beta=0.2) has a smaller "
               "nu than GD (beta=0) for every r (Theorem 2)",
               presets.PRESETS["fig3"], presets.validate_agd_settings, synthetic_experiments.FIG3,
               claims.check_fig3, synthetic_plots.plot_fig3, seconds=_SECONDS["fig3"], measure=laws.measure_fig3),
    FigureSpec("fig4", "5.1", "Figure 4: success rate against the sample size N and r (sample complexity)",
               "the number of samples needed for success is linear in r (Eq. 8)",
               presets.PRESETS["fig4"], presets.validate_agd_settings, synthetic_experiments.FIG4,
               claims.check_fig4, synthetic_plots.plot_fig4, seconds=_SECONDS["fig4"], measure=laws.measure_fig4),
    FigureSpec("fig5", "5.1", "Figure 5: relative error against sqrt(r) at several noise levels",
               "the final relative error is linear in sqrt(r) and proportional to the noise level (Eq. 9)",
               presets.PRESETS["fig5"], presets.validate_agd_settings, synthetic_experiments.FIG5,
               claims.check_fig5, synthetic_plots.plot_fig5, seconds=_SECONDS["fig5"], measure=laws.measure_fig5),
    FigureSpec("fig6", "5.2", "Figure 6: IMP on synthetic data, test error against the remaining weights",
               "for N large enough the test error falls as IMP prunes towards the teacher's r*/d = 20 % and rises "
               "sharply below it; the smallest N is bad throughout; a larger N is better at every level",
               presets.PRESETS["fig6"], presets.validate_fig6_settings, imp_experiments.FIG6,
               claims.check_fig6, imp_plots.plot_fig6, default_threads=1, seconds=_SECONDS["fig6"], measure=laws.measure_fig6),
    FigureSpec("fig7", "5.2", "Figure 7: IMP on MNIST, test accuracy against the remaining weights",
               "the test accuracy holds or rises under moderate pruning and drops when the network is over-pruned; "
               "more data is better",
               presets.PRESETS["fig7"], presets.validate_fig7_settings, imp_experiments.FIG7,
               claims.check_fig7, imp_plots.plot_fig7, default_threads=1, needs_mnist=True,
               seconds=_SECONDS["fig7"], measure=laws.measure_fig7),
)

#: Every figure, by name, in the paper's order.
FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in _SPECS}


def get(name: Any) -> FigureSpec:
    """The record of figure ``name`` (``"fig2"`` ... ``"fig7"``); any other name raises ``ValueError``."""
    if not isinstance(name, str) or name not in FIGURES:
        raise ValueError(f"figure name must be one of {', '.join(FIGURES)}; got {name!r}")
    return FIGURES[name]


def figure_settings(name: str, scale: str | None = None, overrides: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The validated settings of figure ``name`` at ``scale``, with ``overrides`` applied."""
    return get(name).settings(scale, overrides)


__all__ = ["FigureSpec", "FIGURES", "get", "figure_settings", "format_duration"]
