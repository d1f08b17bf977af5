"""One runner for every figure of §5: settings -> cells -> cache -> assembled result.

:func:`run_figure` looks the figure up in the registry (:mod:`lthbook.registry`),
validates its settings, asks its experiment for the cells, reads the finished ones
from the on-disk cache (:mod:`lthbook.cache`), computes the others in order (each
stored as soon as it finishes, so an interrupted run resumes where it stopped) and
returns a plain, JSON-serialisable dictionary. :func:`check_figure` and
:func:`plot_figure` apply the figure's claim check and plot to such a dictionary;
:func:`load_reference` reads a committed paper-scale result.

Result keys (all figures): ``figure``, ``title``, ``claim``, ``scale``, ``seed``,
``device``, ``threads``, ``settings`` (the full parameter set, after overrides),
``axes``, ``raw`` (per-cell statistics; the layout is described under
``raw["layout"]`` and in :mod:`lthbook.synthetic_experiments` /
:mod:`lthbook.imp_experiments`), ``cells``, ``cells_from_cache``, ``cell_time_s``
(summed compute time of all cells, also of those read from the cache),
``wall_time_s`` (this call), ``versions`` (python, numpy, torch, lthbook) and
``created`` (UTC time stamp); Figures 2-5 add ``eta`` (the step size used, per ``r``),
Figure 7 adds ``data_source``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from . import __version__, registry
from ._validation import check_int, resolve_device
from .cache import ResultCache, resolve_cache, to_jsonable
from .scales import get_scale, get_seed
from .style import book_style


def library_versions() -> dict[str, str]:
    """Versions of python, numpy, torch and lthbook, recorded in every result."""
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "lthbook": __version__}


def run_figure(
    name: str,
    scale: str | None = None,
    seed: int | None = None,
    device: str = "cpu",
    cache_dir: str | None = None,
    progress: bool = True,
    *,
    cache: bool | None | ResultCache = True,
    overrides: Mapping[str, Any] | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Run (or read back from the cache) every cell of one figure of §5.

    Parameters
    ----------
    name:
        ``"fig2"`` (success region against ``sqrt(r)`` and the initial distance, Theorem 1),
        ``"fig3"`` (convergence rate ``nu`` of AGD and GD against ``r``, Theorem 2),
        ``"fig4"`` (success against the sample size ``N`` and ``r``, Eq. 8),
        ``"fig5"`` (final error against ``sqrt(r)`` per noise level, Eq. 9),
        ``"fig6"`` (IMP on the synthetic teacher) or ``"fig7"`` (IMP on MNIST); see
        :data:`lthbook.registry.FIGURES`.
    scale:
        ``"ci"``, ``"book"`` or ``"paper"``; ``None`` reads ``$LTHBOOK_SCALE`` (:mod:`lthbook.scales`).
    seed:
        Base seed (non-negative integer); ``None`` reads ``$LTHBOOK_SEED`` (default 0). Equal
        seeds and settings give equal numbers, whether cells are computed or read from the cache.
    device:
        ``"cpu"`` or ``"cuda[:i]"``.
    cache_dir:
        Cache directory; ``None`` means ``$LTHBOOK_CACHE_DIR`` or ``~/.cache/lthbook``.
    progress:
        Show a tqdm progress bar over the cells (weighted by their cost, with an ETA).
    cache:
        ``True`` (default) reads and writes the cache; ``False``/``None`` disables it.
    overrides:
        Settings replacing entries of the preset (same keys as :data:`lthbook.presets.PRESETS`).
    threads:
        torch CPU threads (the previous setting is restored afterwards). ``None`` is the
        figure's default: for Figures 2-5 automatic per cell (one thread for cells whose
        iterations are small, :func:`lthbook.agd.run_agd`), for Figures 6-7 one thread
        (the fastest on a shared 2-core machine).
    data_dir:
        Figure 7: where to look for MNIST first (:func:`lthbook.mnist.load_mnist`).

    Returns
    -------
    dict
        JSON-serialisable; keys listed in the module docstring.
    """
    start = time.perf_counter()
    spec = registry.get(name)
    scale = get_scale(scale)
    seed = get_seed(seed)
    dev = resolve_device(device)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if threads is not None:
        threads = check_int("threads", threads, 1)
    threads = spec.default_threads if threads is None else threads
    settings = spec.settings(scale, overrides)
    store = resolve_cache(cache, cache_dir)
    cells = spec.experiment.plan(spec.name, settings, seed, dev.type)
    payloads: list[dict | None] = [store.get(c.config) if store is not None else None for c in cells]
    from_cache = sum(p is not None for p in payloads)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = float(sum(c.cost for c in cells))
        done = float(sum(c.cost for c, p in zip(cells, payloads) if p is not None))
        bar = tqdm(total=total, initial=done, desc=f"{spec.name} ({scale})", unit="cost",
                   bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]")
        bar.set_postfix_str(f"{from_cache}/{len(cells)} cells cached")
    previous: dict[Any, dict] = {}
    try:
        with spec.experiment.session(spec.name, settings, seed, str(dev), threads, data_dir) as session:
            for i, cell in enumerate(cells):
                if payloads[i] is None:
                    if bar is not None:
                        bar.set_postfix_str(f"cell {i + 1}/{len(cells)}: {cell.label}")
                    before = previous.get(cell.chain) if cell.chain is not None else None
                    payloads[i] = session.compute(cell, before)
                    if store is not None:
                        store.put(cell.config, payloads[i])
                    if bar is not None:
                        bar.update(cell.cost)
                if cell.chain is not None:
                    previous[cell.chain] = payloads[i]
            extra = session.extra()
    finally:
        if bar is not None:
            bar.close()

    assembled = spec.experiment.assemble(settings, cells, payloads)
    result = {
        "figure": spec.name,
        "title": spec.title,
        "claim": spec.claim,
        "scale": scale,
        "seed": seed,
        "device": str(dev),
        "threads": "auto" if threads is None else threads,
        "settings": settings,
        **assembled,
        "cells": len(cells),
        "cells_from_cache": from_cache,
        "cell_time_s": float(sum(p["wall_s"] for p in payloads)),
        "wall_time_s": time.perf_counter() - start,
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    return to_jsonable(result)


def _spec_of(results: Any) -> registry.FigureSpec:
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a dictionary returned by run_figure, got {type(results).__name__}")
    return registry.get(results.get("figure"))


def measure_figure(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The paper's laws measured on ``results``: claim records with a 95 % interval and a
    verdict (:mod:`lthbook.laws`)."""
    spec = _spec_of(results)
    return [] if spec.measure is None else spec.measure(results)


def check_figure(results: Mapping[str, Any]) -> dict[str, Any]:
    """Run the claim check of the figure that ``results`` holds (:mod:`lthbook.claims`): it
    asserts the effects every scale must show and returns the fitted numbers, with the
    measured laws (:func:`measure_figure`) under ``"claims"``."""
    spec = _spec_of(results)
    fitted = spec.check(results)
    return {**fitted, "claims": measure_figure(results)}


def plot_figure(results: Mapping[str, Any]) -> Figure:
    """Draw the figure that ``results`` holds."""
    return _spec_of(results).plot(results)


#: Where ``python -m lthbook reproduce ... --scale paper --out reference/paper`` leaves the
#: reference results that the book shows beside its own figures (repository root).
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference" / "paper"


def load_reference(name: str, directory: str | Path | None = None) -> dict[str, Any] | None:
    """The committed paper-scale result of figure ``name`` (the JSON written by the command
    line), or ``None`` when it is not there (e.g. in an installed copy without the repository).

    ``directory`` defaults to :data:`REFERENCE_DIR`. A file that is not such a result raises
    ``ValueError``.
    """
    name = registry.get(name).name
    path = Path(REFERENCE_DIR if directory is None else directory) / f"{name}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rerun python -m lthbook reproduce {name}") from None
    if not isinstance(data, dict) or data.get("figure") != name or "raw" not in data:
        raise ValueError(f"{path} is not a result of figure {name}")
    return data


def plot_reference(name: str, directory: str | Path | None = None) -> Figure:
    """Draw the committed paper-scale result of figure ``name`` (:func:`load_reference`), or,
    when there is none yet, a small panel that says so and gives the command that computes it."""
    results = load_reference(name, directory)
    if results is not None:
        return plot_figure(results)
    import matplotlib.pyplot as plt

    with book_style():
        fig, ax = plt.subplots(figsize=(6.0, 1.4))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{name}: no paper-scale result committed yet.\nCompute it with\n"
                          f"python -m lthbook reproduce {name} --scale paper --out reference/paper",
                ha="center", va="center", family="monospace", fontsize=9)
    return fig


__all__ = ["run_figure", "check_figure", "measure_figure", "plot_figure", "load_reference", "plot_reference", "REFERENCE_DIR",
           "library_versions"]
