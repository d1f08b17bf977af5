"""Cells: the unit of work of every figure, and what an experiment family provides.

A figure of §5 is a grid of *cells*. A cell is the smallest piece of work whose result
is stored in the on-disk cache (:mod:`lthbook.cache`): one call of Algorithm 1 on a
chunk of trials (Figures 2-5, :mod:`lthbook.synthetic_experiments`) or one level of an
IMP run (Figures 6-7, :mod:`lthbook.imp_experiments`). The runner
(:func:`lthbook.runner.run_figure`) only sees this interface:

* :class:`Cell` -- the cache key (``config``), a relative ``cost`` for the progress
  bar, a ``label`` for it, and a ``chain``: cells of one chain are computed in order
  and each receives the payload of the one before (an IMP level needs the previous
  level's mask); ``chain=None`` means independent;
* :class:`Experiment` -- turns validated settings into cells, opens a
  :class:`Session` that computes them, and assembles the payloads into the figure's
  arrays.

The data path is therefore: settings (:mod:`lthbook.presets`) -> cells -> cache ->
assembled result -> claim check (:mod:`lthbook.claims`) -> plot, with one record per
figure in :mod:`lthbook.registry` naming each step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Protocol, Sequence

import numpy as np

from .cache import canonical_json


@dataclass(frozen=True)
class Cell:
    """One cached unit of work: ``config`` is exactly what its result depends on (the cache
    key), ``params`` the grid coordinates the assembly groups by."""

    config: Mapping[str, Any]
    cost: float
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)
    chain: Hashable | None = None


class Session(Protocol):
    """Computes the cells of one run of a figure (opened by :meth:`Experiment.session`)."""

    def __enter__(self) -> "Session": ...

    def __exit__(self, *exc: Any) -> None: ...

    def compute(self, cell: Cell, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        """The JSON-ready payload of ``cell`` (with ``wall_s``); ``previous`` is the payload of
        the cell before it in its chain (``None`` for the first or an independent cell)."""

    def extra(self) -> dict[str, Any]:
        """Keys added to the figure's result (e.g. where the data came from)."""


class Experiment(Protocol):
    """How one figure is computed (the ``experiment`` of a :class:`lthbook.registry.FigureSpec`)."""

    def plan(self, name: str, settings: Mapping[str, Any], seed: int, device_type: str) -> list[Cell]:
        """Every cell of the figure, in the order the runner computes them."""

    def session(self, name: str, settings: Mapping[str, Any], seed: int, device: str, threads: int | None,
                data_dir: str | None) -> Session:
        """A context that computes cells (shared data is prepared on entry)."""

    def assemble(self, settings: Mapping[str, Any], cells: Sequence[Cell],
                 payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The figure's arrays: ``{"axes": ..., "raw": ...}`` (and ``"eta"`` for Figures 2-5)."""


def cell_rng(config: Mapping[str, Any]) -> np.random.Generator:
    """The random generator of a cell: a function of the base seed, the figure and the
    cell's ``seed_key`` only (never of the process, the order of cells or the cache)."""
    digest = hashlib.sha256(canonical_json({"figure": config["figure"], **config["seed_key"]}).encode()).digest()
    return np.random.default_rng(np.random.SeedSequence([int(config["seed"]), int.from_bytes(digest[:8], "little")]))


__all__ = ["Cell", "Session", "Experiment", "cell_rng"]
