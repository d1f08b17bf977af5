"""Benchmark: time per trial-iteration of :func:`lthbook.agd.run_agd` in two checkouts of lthbook
(before / after a change), interleaved, at one cell.

Usage:  .venv/bin/python bench/bench_versions.py --old /path/to/old/checkout [--new .]
            [--N 3000] [--d 500] [--r 500] [--K 5] [--trials 5] [--batch 12] [--iters 20]
            [--rounds 5] [--threads 1] [--kernel auto]

Each round runs one subprocess per checkout (``PYTHONPATH`` set to it), old then new, so load
from other processes hits both alike; each subprocess draws the same problems and starting
points, times ``run_agd`` with ``max_iter = iters + 1`` and ``1`` (fixed ``eta``, ``tol = 1e-300``:
every run takes every step) and prints ``(t(iters + 1) - t(1)) / iters`` per trial-iteration, and
the final iterates, which are compared between the checkouts. ``--kernel`` is passed to the
checkouts whose ``run_agd`` takes it. Prints min and median per checkout and the ratio old/new.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SNIPPET = r"""
import inspect, sys, time
import numpy as np, torch
from lthbook.agd import initial_points, run_agd
from lthbook.teacher import make_problem
K, d, r, N, trials, batch, iters, threads, kernel, out = sys.argv[1:]
K, d, r, N, trials, batch, iters, threads = map(int, (K, d, r, N, trials, batch, iters, threads))
torch.set_num_threads(threads)
ps = [make_problem(K, d, min(50, r), r, N, seed=s) for s in range(trials)]
W0 = np.stack([initial_points(p.W_star, 0.3, n=batch, seed=100 + i) for i, p in enumerate(ps)])
extra = {"kernel": kernel} if "kernel" in inspect.signature(run_agd).parameters else {}
def run(n):
    t = time.perf_counter()
    res = run_agd(ps, W0, eta=5.0, beta=0.2, max_iter=n, tol=1e-300, threads=threads, **extra)
    return time.perf_counter() - t, res
run(1)  # warm-up: first-touch of the allocations
t1a, _ = run(1)
t2, res = run(iters + 1)
t1b, _ = run(1)
t1 = min(t1a, t1b)
np.save(out, res.W)
import lthbook; print(lthbook.__file__)
print((t2 - t1) / (iters * trials * batch))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="checkout (repository root) of the version before")
    parser.add_argument("--new", default=str(Path(__file__).resolve().parents[1]))
    for name, default in (("N", 3000), ("d", 500), ("r", 500), ("K", 5), ("trials", 5), ("batch", 12), ("iters", 20),
                          ("rounds", 5), ("threads", 1)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--kernel", default="auto")
    args = parser.parse_args()
    trees = {"old": args.old, "new": args.new}
    print(f"cell: K={args.K} d={args.d} N={args.N} r={args.r}, {args.trials} data sets x {args.batch} starts, "
          f"{args.threads} thread(s), kernel={args.kernel!r} where supported; load average before: {os.getloadavg()}")
    times: dict[str, list[float]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name, tree in trees.items():
                out = os.path.join(tmp, f"{name}.npy")
                cmd = [sys.executable, "-c", SNIPPET] + [str(v) for v in (args.K, args.d, args.r, args.N, args.trials,
                                                                          args.batch, args.iters, args.threads)]
                # cwd outside both trees: python -c puts the working directory first on sys.path
                proc = subprocess.run(cmd + [args.kernel, out], capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONPATH": tree}, cwd=tmp)
                where, seconds = proc.stdout.split()[-2:]
                if not where.startswith(os.path.abspath(tree)):
                    raise RuntimeError(f"{name}: imported lthbook from {where}, not from {tree}")
                times[name].append(float(seconds))
            print(f"  round {rnd + 1}: old {times['old'][-1] * 1e3:.3f} ms, new {times['new'][-1] * 1e3:.3f} ms",
                  flush=True)
        W_old, W_new = np.load(os.path.join(tmp, "old.npy")), np.load(os.path.join(tmp, "new.npy"))
    for name in trees:
        print(f"{name} ({trees[name]}): min {min(times[name]) * 1e3:.3f} ms, median "
              f"{statistics.median(times[name]) * 1e3:.3f} ms per trial-iteration")
    print(f"old/new: {min(times['old']) / min(times['new']):.2f} (min), "
          f"{statistics.median(times['old']) / statistics.median(times['new']):.2f} (median); final iterates after "
          f"{args.iters + 1} steps differ by {np.abs(W_old - W_new).max() / np.abs(W_old).max():.1e} (relative, max)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
