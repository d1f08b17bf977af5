"""Estimate the CPU time of Figure 2 at the paper's scale from the committed iteration counts
and per-iteration times measured here.

Usage:  .venv/bin/python bench/estimate_fig2.py [--cache reference/paper/cache/fig2] [--threads 1]
            [--iters 10] [--repeats 2] [--kernel auto] [--r 100 150 ... 500] [--workers 1 2]

A Figure 2 cell is ``P = 5`` data sets x ``B = 12`` starts, run as one batch; a data set leaves
the batch once all its runs are finished (checked every 25 iterations), so a cell costs its
set-up (drawing and gathering the data, the Lanczos estimate of ``lambda_max``) plus, per
data set, its longest run times the time of one iteration of one data set at that ``r``. This
script reads every committed cell's ``n_iter`` (the figure is complete in the cache, computed
on CUDA and, for 91 cells, also on this CPU, run for run the same), measures per ``r`` the set-up
``t(1)`` and the per-iteration time ``(t(iters + 1) - t(1)) / iters`` of a 5-data-set cell with
:func:`lthbook.agd.run_agd` (``eta="auto"`` for the set-up as in Figure 2; a fixed tiny step
for the iterations), each the fastest of ``--repeats``, and adds it up. ``--workers W`` divides
the total by ``W`` (cells are independent; this assumes ``W`` free cores, which the print says).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from collections import defaultdict

import numpy as np
import torch

from lthbook.agd import choose_kernel, initial_points, run_agd
from lthbook.teacher import make_problem


def committed_iterations(cache: str) -> dict[int, list[float]]:
    """Per ``r``: for each committed cell (one per chunk; CUDA copy preferred), the sum over its
    data sets of their longest run."""
    per: dict[int, dict[int, float]] = defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(cache, "*.json"))):
        entry = json.load(open(path))
        cfg = entry["config"]
        if cfg["figure"] != "fig2":
            continue
        n = np.asarray(entry["payload"]["n_iter"])
        if cfg["device"] == "cuda" or cfg["chunk"] not in per[cfg["r"]]:
            per[cfg["r"]][cfg["chunk"]] = float(n.max(axis=1).sum())
    return {r: list(v.values()) for r, v in sorted(per.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="reference/paper/cache/fig2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kernel", default="auto")
    parser.add_argument("--r", type=int, nargs="*", default=None, help="r values to time (default: all in the cache)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    iterations = committed_iterations(args.cache)
    print(f"threads={args.threads}, kernel={args.kernel}; load average before: {os.getloadavg()}")
    total = 0.0
    for r, cells in iterations.items():
        if args.r and r not in args.r:
            continue
        problems = [make_problem(5, 500, r, r, 3000, seed=s) for s in range(5)]
        W0 = np.stack([initial_points(p.W_star, [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0],
                                      seed=10 + i) for i, p in enumerate(problems)])
        kernel = choose_kernel(problems, args.kernel)

        def timed(n: int, eta) -> float:
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                run_agd(problems, W0, eta=eta, beta=0.2, max_iter=n, tol=1e-300, threads=args.threads, kernel=kernel)
                best = min(best, time.perf_counter() - start)
            return best

        setup = timed(1, "auto")
        per_iter = max(timed(args.iters + 1, 1e-6) - timed(1, 1e-6), 0.0) / args.iters  # 5 data sets
        seconds = len(cells) * setup + sum(cells) * per_iter / 5
        total += seconds
        print(f"  r={r}: {kernel}, set-up {setup:.2f} s, {per_iter * 1e3:.1f} ms per iteration of 5 data sets; "
              f"{len(cells)} cells, {sum(cells):.0f} data-set iterations -> {seconds / 60:.1f} min", flush=True)
    for w in args.workers:
        print(f"total: {total / 3600:.2f} h of {args.threads}-thread compute; with {w} worker(s) on {w} free core(s): "
              f"{total / w / 3600:.2f} h")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
