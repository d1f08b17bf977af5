"""One runner for every figure of §5: settings -> cells -> cache -> assembled result.

:func:`run_figure` looks the figure up in the registry (:mod:`lthbook.registry`),
validates its settings, asks its experiment for the cells, reads the finished ones
from the on-disk cache (:mod:`lthbook.cache`), computes the others (each stored by
this process as soon as it finishes, so an interrupted run resumes where it stopped)
and returns a plain, JSON-serialisable dictionary. Independent cells (Figures 2-5) are
computed by worker processes -- a local pool or a Dask cluster (:mod:`lthbook.executors`,
:func:`compute_cell`); the cells of a chain (the IMP levels of Figures 6-7) in order in
this process. :func:`check_figure` and
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
import functools
import json
import platform
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from . import __version__, registry
from ._validation import check_choice, check_int, resolve_device
from .cache import ResultCache, resolve_cache, to_jsonable
from .cells import Cell
from .executors import check_executor, for_each_result, is_executor, open_executor, resolve_workers, worker_threads
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
    workers: int | None = None,
    executor: Any = None,
    scheduler: str | None = None,
    reuse_cells_from: Sequence[str] = (),
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
    workers:
        Worker processes for the uncached independent cells (those with ``chain=None``: the
        Algorithm 1 cells of Figures 2-5). ``None``: one per CPU core on ``"cpu"``
        (:func:`lthbook.executors.available_cores`), 1 on CUDA. ``1`` (or a single uncached
        cell) with the local executor computes in this process, in order, exactly as a
        serial run. Each worker runs torch on ``threads // workers`` threads (1 when
        ``threads`` is ``None``). The cells of a chain (the IMP levels of Figures 6-7) are
        always computed in order in this process; with the setting ``batched`` (Figures 6 and 7) the
        runs advance together, one level of every run per round, trained as one batched
        model (:mod:`lthbook.batched`).
    executor:
        ``None``/``"local"``: a local process pool (``spawn``; a script calling this must do so
        under ``if __name__ == "__main__":``); ``"dask"``: a ``dask.distributed`` cluster
        (``pip install 'lthbook[dask]'``), the one at ``scheduler`` or a new ``LocalCluster`` of
        ``workers`` single-threaded processes; or an executor object owned by the caller (a
        :class:`concurrent.futures.Executor` or a dask ``Client``), used even for one cell and
        left open. Whatever the executor and the worker count, results are written to the
        cache by this process as they arrive and assembled in cell order, so the numbers are
        those of a serial run.
    scheduler:
        With ``executor="dask"``: the scheduler's address (``"tcp://host:8786"``).
    reuse_cells_from:
        Device types (``"cpu"``, ``"cuda"``) whose cached cells may stand in for a cell that is
        not cached for ``device``: the device type is part of a cell's cache key, so by default
        a result made on a GPU is not reused on the CPU. Use it only where the devices were shown
        to agree (``bench/gpu_check.py``; §5.1's paper-scale figures: identical outcomes and
        iteration counts on 91 Figure 2 cells). The result counts its cells per device under
        ``"cells_by_device"``.

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
    check_executor(executor, scheduler)
    if workers is None and executor is None and dev.type != "cpu":
        workers = 1  # one GPU: cells in processes of their own would only compete for it
    workers = resolve_workers(workers)
    settings = spec.settings(scale, overrides)
    store = resolve_cache(cache, cache_dir)
    cells = spec.experiment.plan(spec.name, settings, seed, dev.type)
    payloads: list[dict | None] = [store.get(c.config) if store is not None else None for c in cells]
    devices = [dev.type] * len(cells)
    for other in _device_types(reuse_cells_from, dev.type):
        if store is None:
            break
        for i, alt in enumerate(spec.experiment.plan(spec.name, settings, seed, other)):
            if payloads[i] is None:
                payloads[i] = store.get(alt.config)
                devices[i] = other if payloads[i] is not None else devices[i]
    from_cache = sum(p is not None for p in payloads)

    independent = [i for i, c in enumerate(cells) if payloads[i] is None and c.chain is None]
    pool_size = min(workers, max(1, len(independent)))
    use_pool = bool(independent) and (executor not in (None, "local") or pool_size > 1)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = float(sum(c.cost for c in cells))
        done = float(sum(c.cost for c, p in zip(cells, payloads) if p is not None))
        bar = tqdm(total=total, initial=done, desc=f"{spec.name} ({scale})", unit="cost",
                   bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]")
        bar.set_postfix_str(f"{from_cache}/{len(cells)} cells cached")

    def record(i: int, payload: dict[str, Any]) -> None:
        """Keep the payload of cell ``i`` and store it in the cache at once."""
        payloads[i] = payload
        if store is not None:
            store.put(cells[i].config, payload)
        if bar is not None:
            bar.update(cells[i].cost)
            bar.set_postfix_str(f"{sum(p is not None for p in payloads)}/{len(cells)} cells done")

    previous: dict[Any, dict] = {}
    try:
        with spec.experiment.session(spec.name, settings, seed, str(dev), threads, data_dir) as session:
            if use_pool:
                task = functools.partial(compute_cell, spec.name, settings=settings, seed=seed, device=str(dev),
                                         threads=worker_threads(threads, pool_size), data_dir=data_dir)
                if bar is not None:
                    where = "" if is_executor(executor) else f" on {pool_size} {executor or 'local'} workers"
                    bar.set_postfix_str(f"{len(independent)} cells{where}")
                with open_executor(executor, scheduler, pool_size) as pool:
                    for_each_result(pool, task, [cells[i] for i in independent],
                                    lambda k, payload: record(independent[k], payload))
            if getattr(session, "batched", False):
                _chains_in_rounds(session, cells, payloads, record, bar)
            for i, cell in enumerate(cells):
                if payloads[i] is None:
                    if bar is not None:
                        bar.set_postfix_str(f"cell {i + 1}/{len(cells)}: {cell.label}")
                    before = previous.get(cell.chain) if cell.chain is not None else None
                    record(i, session.compute(cell, before))
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
        **({"cells_by_device": {d: devices.count(d) for d in sorted(set(devices))}}
           if set(devices) != {dev.type} else {}),
        "cell_time_s": float(sum(p["wall_s"] for p in payloads)),
        "wall_time_s": time.perf_counter() - start,
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    return to_jsonable(result)


def _device_types(names: Sequence[str], own: str) -> list[str]:
    """The validated device types of ``reuse_cells_from``, without ``own``."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"reuse_cells_from must be a list of device types, got {names!r}")
    for name in names:
        check_choice("reuse_cells_from", name, ("cpu", "cuda"))
    return [n for n in dict.fromkeys(names) if n != own]


def _chains_in_rounds(session: Any, cells: list[Cell], payloads: list[dict | None], record, bar) -> None:
    """Compute the missing cells of every chain in rounds: each round takes the first missing cell
    of every chain and hands them to ``session.compute_round`` together (with each chain's previous
    payload), so independent IMP runs train in lockstep (:mod:`lthbook.batched`)."""
    chains: dict[Any, list[int]] = {}
    for i, cell in enumerate(cells):
        if cell.chain is not None:
            chains.setdefault(cell.chain, []).append(i)
    while True:
        batch, before = [], []
        for members in chains.values():
            missing = [k for k, i in enumerate(members) if payloads[i] is None]
            if missing:
                k = missing[0]
                batch.append(members[k])
                before.append(payloads[members[k - 1]] if k else None)
        if not batch:
            return
        if bar is not None:
            bar.set_postfix_str(f"{len(batch)} runs in lockstep: {cells[batch[0]].label}, ...")
        for i, payload in zip(batch, session.compute_round([cells[i] for i in batch], before)):
            record(i, payload)


def compute_cell(figure: str, cell: Cell, *, settings: Mapping[str, Any], seed: int, device: str,
                 threads: int | None, data_dir: str | None = None) -> dict[str, Any]:
    """The payload of one independent cell of figure ``figure``, computed in a session of
    its own: the task that :func:`run_figure` sends to worker processes (a top-level
    function, so that it pickles; the sessions of Figures 2-5 hold no state)."""
    spec = registry.get(figure)
    if cell.chain is not None:
        raise ValueError(f"compute_cell computes independent cells only; cell {cell.label!r} is in chain "
                         f"{cell.chain!r}")
    with spec.experiment.session(spec.name, settings, seed, device, threads, data_dir) as session:
        return session.compute(cell, None)


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


__all__ = ["run_figure", "compute_cell", "check_figure", "measure_figure", "plot_figure", "load_reference",
           "plot_reference", "REFERENCE_DIR", "library_versions"]
