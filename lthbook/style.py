"""The book's figure style, shared by every plot module (``*_plots``).

Every public plotting function of ``lthbook`` draws inside :func:`book_style`, so the
figures of all chapters share one look, and saves through :func:`save_figure`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import matplotlib
from matplotlib.figure import Figure

#: rcParams of the book's figures (applied inside every plotting function).
BOOK_STYLE: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "font.family": "DejaVu Sans",
}

#: Colours used consistently across chapters.
COLORS: dict[str, str] = {
    "teacher": "#1f5fa8",  # edges / weights of the teacher (Omega*)
    "extra": "#e08a1e",  # edges the student has in addition (Omega minus Omega*)
    "pruned": "#1f5fa8",  # the pruned student (r = r*)
    "dense": "#c0392b",  # the dense student (r = d)
    "neutral": "#7f7f7f",
    "threshold": "#444444",
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` globally (every plotting function also applies it locally)."""
    matplotlib.rcParams.update(BOOK_STYLE)


@contextmanager
def book_style() -> Iterator[None]:
    """Apply :data:`BOOK_STYLE` for the duration of a plot and restore *only those* keys.

    ``matplotlib.rc_context`` would restore every rcParam, including ``interactive``;
    when the first figure of a Jupyter session resolves the inline backend inside the
    context, that would switch interactive mode back off and later figures would not be
    displayed.
    """
    old = {key: matplotlib.rcParams[key] for key in BOOK_STYLE}
    matplotlib.rcParams.update(BOOK_STYLE)
    try:
        yield
    finally:
        matplotlib.rcParams.update(old)


F = TypeVar("F", bound=Callable[..., Any])


def styled(function: F) -> F:
    """Decorator: run a plotting function inside :func:`book_style`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with book_style():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def save_figure(fig: Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (or the given ``formats``); returns the paths."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    allowed = ("png", "pdf", "svg")
    if not formats or any(f not in allowed for f in formats):
        raise ValueError(f"formats must be a non-empty subset of {allowed}, got {formats!r}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with book_style():
        for fmt in formats:
            path = stem.with_name(stem.name + "." + fmt)
            fig.savefig(path, bbox_inches="tight")
            paths.append(path)
    return paths


__all__ = ["BOOK_STYLE", "COLORS", "use_book_style", "book_style", "styled", "save_figure"]
