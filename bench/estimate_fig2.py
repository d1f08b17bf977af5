"""Estimate the CPU time of Figure 2 at the paper's scale from the committed iteration counts
and per-iteration times measured here.

Usage:  .venv/bin/python bench/estimate_fig2.py [--cache reference/paper/cache/fig2] [--threads 1]
            [--iters 10] [--repeats 2] [--kernel auto] [--r 100 150 ... 500] [--workers 1 2]
            [--starts 1 2 ... 12] [--sibling] [--row-multiple 4]

A Figure 2 cell is ``P = 5`` data sets x ``B = 12`` starts, run as one batch; a data set leaves
the batch once all its runs are finished, and (:data:`lthbook.agd.COMPACT_STARTS`) once every
live data set has at most ``b < B`` unfinished starts the batch keeps only ``b`` of them per data
set (both checked every 25 iterations). So a cell costs its set-up (drawing and gathering the
data, the Lanczos estimate of ``lambda_max``) plus, for every 25 iterations, the number of live
data sets times the time of one iteration of one data set with ``b`` starts at that ``r``
(measured for ``b`` in ``--starts`` and interpolated linearly). Printed beside it: the same
without dropping starts (every live data set at all 12 starts until its longest run ends). This
script reads every committed cell's ``n_iter`` (the figure is complete in the cache: the 180
cells of the distance grid computed on CUDA and 94 of them also on this CPU, run for run the
same; the 100 cells of the far block, ``r = 100 ... 300``, on this CPU), measures per ``r`` the set-up
``t(1)`` and the per-iteration time ``(t(iters + 1) - t(1)) / iters`` of a 5-data-set cell with
``b`` starts with :func:`lthbook.agd.run_agd` (``eta="auto"`` for the set-up as in Figure 2; a
fixed tiny step for the iterations), each the fastest of ``--repeats``, and adds it up. ``--workers W`` divides
the total by ``W`` (cells are independent; this assumes ``W`` free cores, which the print says).

``--sibling`` times everything while a second process runs Figure 2 iterations (``r = 500``, one
thread) on another core, as a second worker would: the two share the memory bandwidth and the
last-level cache, so its per-iteration times are the ones ``--workers 2`` should be divided by.

Beside it, the floor: the useful arithmetic of the same batches (``4 N r K b`` operations per
data-set iteration with ``b`` starts, the gathered kernel's count) at the fp64 GEMM rate measured
in the same run (``roofline.gemm_gflops``), and the estimate's share of that rate.
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing
import os
import time
from collections import defaultdict

import numpy as np
import torch

import lthbook.risk as risk
from lthbook.agd import choose_kernel, initial_points, run_agd
from lthbook.teacher import make_problem
from roofline import gemm_gflops


def committed_iterations(cache: str) -> dict[int, list[np.ndarray]]:
    """Per ``r``: each committed cell's ``n_iter`` (data sets x starts; one cell per ``seed_key``,
    the CUDA copy preferred). ``seed_key`` is what the experiment draws a cell's data from, so
    it names a cell on either device; the chunk alone does not (the ``far_distances`` block
    numbers its chunks like the distance grid)."""
    per: dict[int, dict[str, np.ndarray]] = defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(cache, "*.json"))):
        entry = json.load(open(path))
        cfg = entry["config"]
        if cfg["figure"] != "fig2":
            continue
        n = np.asarray(entry["payload"]["n_iter"])
        name = json.dumps(cfg["seed_key"], sort_keys=True)
        if cfg["device"] == "cuda" or name not in per[cfg["r"]]:
            per[cfg["r"]][name] = n
    return {r: list(v.values()) for r, v in sorted(per.items())}


def batch_timeline(n: np.ndarray, every: int = 25) -> list[tuple[int, int]]:
    """``(live data sets, b)`` for each block of ``every`` iterations of a cell whose runs take
    ``n`` iterations (data sets x starts): ``b`` is the largest number of unfinished starts of a
    live data set, the width :data:`lthbook.agd.COMPACT_STARTS` narrows the batch to."""
    out = []
    for t in range(0, int(n.max()), every):
        live = (n > t).sum(axis=1)
        out.append((int((live > 0).sum()), int(live.max())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="reference/paper/cache/fig2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kernel", default="auto")
    parser.add_argument("--r", type=int, nargs="*", default=None, help="r values to time (default: all in the cache)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--starts", type=int, nargs="+", default=list(range(1, 13)),
                        help="numbers of starts b to time (others interpolated; must include 1 and 12)")
    parser.add_argument("--sibling", action="store_true",
                        help="time while a second process runs Figure 2 iterations (r=500, one thread) on "
                             "another core, as a second worker would: the 2-worker condition")
    parser.add_argument("--row-multiple", type=int, default=None,
                        help="set lthbook.risk.GEMM_ROW_MULTIPLE for this run (1: no row padding, the kernel "
                             "before 2026-12-04's padding), to compare")
    args = parser.parse_args()
    if args.row_multiple is not None and args.row_multiple < 1:
        parser.error(f"--row-multiple must be >= 1, got {args.row_multiple}")
    if args.row_multiple is not None:
        risk.GEMM_ROW_MULTIPLE = args.row_multiple
    if min(args.starts) != 1 or max(args.starts) != 12:
        parser.error(f"--starts must include 1 and 12 (a Figure 2 trial has 12 starts), got {args.starts}")
    torch.set_num_threads(args.threads)
    iterations = committed_iterations(args.cache)
    sibling = None
    if args.sibling:
        sibling = multiprocessing.get_context("spawn").Process(target=_sibling_load, daemon=True)
        sibling.start()
        time.sleep(5)  # let it reach its loop
    print(f"threads={args.threads}, kernel={args.kernel}, GEMM_ROW_MULTIPLE={risk.GEMM_ROW_MULTIPLE}, "
          f"sibling load: {'yes' if sibling else 'no'}; "
          f"load average before: {os.getloadavg()}")
    try:
        _estimate(args, iterations)
    finally:
        if sibling is not None:
            sibling.terminate()
            sibling.join()


def _sibling_load() -> None:
    """A second worker's load: Figure 2 iterations at r = 500 (5 data sets, 4 starts), one thread, forever."""
    torch.set_num_threads(1)
    problems = [make_problem(5, 500, 500, 500, 3000, seed=100 + s) for s in range(5)]
    W0 = np.stack([initial_points(p.W_star, [0.5, 1.0, 2.0, 4.0], seed=i) for i, p in enumerate(problems)])
    while True:
        run_agd(problems, W0, eta=1e-6, beta=0.2, max_iter=50, tol=1e-300, threads=1)


def _estimate(args, iterations) -> None:
    distances = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    total = total_full = useful = 0.0
    for r, cells in iterations.items():
        if args.r and r not in args.r:
            continue
        problems = [make_problem(5, 500, r, r, 3000, seed=s) for s in range(5)]
        kernel = choose_kernel(problems, args.kernel)

        def timed(n: int, eta, b: int) -> float:
            W0 = np.stack([initial_points(p.W_star, distances[:b], seed=10 + i) for i, p in enumerate(problems)])
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                run_agd(problems, W0, eta=eta, beta=0.2, max_iter=n, tol=1e-300, threads=args.threads, kernel=kernel)
                best = min(best, time.perf_counter() - start)
            return best

        setup = timed(1, "auto", 12)
        starts = sorted(set(args.starts))
        per_b = [max(timed(args.iters + 1, 1e-6, b) - timed(1, 1e-6, b), 0.0) / args.iters / 5 for b in starts]
        cost = dict(zip(range(1, 13), np.interp(range(1, 13), starts, per_b)))  # s per data-set iteration
        blocks = [blk for n in cells for blk in batch_timeline(n)]
        seconds = len(cells) * setup + 25 * sum(a * cost[b] for a, b in blocks)
        full = len(cells) * setup + sum(float(n.max(axis=1).sum()) for n in cells) * cost[12]
        total, total_full = total + seconds, total_full + full
        useful += 4.0 * 3000 * r * 5 * 25 * sum(a * b for a, b in blocks)
        print(f"  r={r}: {kernel}, set-up {setup:.2f} s, ms per data-set iteration with b starts: "
              + ", ".join(f"{b}: {c * 1e3:.1f}" for b, c in zip(starts, per_b))
              + f"; {len(cells)} cells -> {seconds / 60:.1f} min (without dropping starts {full / 60:.1f} min)",
              flush=True)
    for w in args.workers:
        print(f"total: {total / 3600:.2f} h of {args.threads}-thread compute (without dropping starts "
              f"{total_full / 3600:.2f} h); with {w} worker(s) on {w} free core(s): {total / w / 3600:.2f} h "
              f"({total_full / w / 3600:.2f} h)")
    peak = gemm_gflops(args.threads, n=2000, repeats=3, dtype=torch.float64)
    floor = useful / (peak * 1e9)
    print(f"floor: {useful / 1e12:.1f} TFLOP of useful fp64 arithmetic at the {peak:.1f} GFLOP/s of a 2000x2000 GEMM "
          f"on {args.threads} thread(s) = {floor / 3600:.2f} h ({floor / 3600 / max(args.workers):.2f} h on "
          f"{max(args.workers)} cores); the estimate runs at {100 * floor / total:.0f} % of that rate")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
