"""Benchmark: what the early exits of Algorithm 1 save, and whether they change any outcome.

Usage:  .venv/bin/python bench/bench_early_exit.py [fig2|fig4|fig5 ...] [--scale book] [--seed 0]
                                                   [--set KEY=VALUE ...] [--threads T]

For each figure it runs every cell twice on the same draws (same seed): with the
paper's protocol (stop at a relative step below 1e-8 or after max_iter
iterations) and with the early exits (``early_exit: true`` for Figures 2 and 4,
``plateau_exit: 1e-3`` for Figure 5; see :mod:`lthbook.agd`), then prints the runs
whose success differs, the iterations saved and the compute time of both
(:func:`lthbook.timing.compare_exit_rules`). Results are not cached, so both
protocols are timed.
"""

from __future__ import annotations

import argparse
import json

from lthbook.__main__ import _setting
from lthbook.timing import compare_exit_rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", default=["fig2", "fig4", "fig5"], choices=["fig2", "fig4", "fig5"])
    parser.add_argument("--scale", default="book", choices=["ci", "book", "paper"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", dest="overrides", type=_setting, action="append", default=[],
                        metavar="KEY=VALUE", help="override a preset setting (JSON value)")
    args = parser.parse_args()
    for name in args.figures:
        out = compare_exit_rules(name, args.scale, args.seed, overrides=dict(args.overrides), cache=False,
                                 threads=args.threads, progress=True)
        print(f"{name} ({args.scale}, seed {args.seed}, exits {out['exits']}): {out['runs']} runs, "
              f"{out['disagreements']} with a different outcome "
              f"(successes {out['successes_full']} -> {out['successes_early']}); "
              f"iterations {out['iterations_full']:.3g} -> {out['iterations_early']:.3g} "
              f"({out['iteration_ratio']:.2f}x fewer); compute {out['cell_time_full_s']:.0f} s -> "
              f"{out['cell_time_early_s']:.0f} s"
              + ("" if out["max_rel_error_difference"] is None
                 else f"; largest relative change of a final error {out['max_rel_error_difference']:.2e}"))
        print(json.dumps(out))


if __name__ == "__main__":
    main()
