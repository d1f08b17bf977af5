"""Benchmark: one IMP level of Figure 6 (§5.2) for ``R`` runs, one at a time against in lockstep,
with the machine's roofline measured in the same run.

Usage:  .venv/bin/python bench/bench_fig6.py [--runs 20] [--N 100 500 2000] [--steps 300]
                                             [--repeats 5] [--threads 1]

For each ``N``, ``R`` masked students (``K = 5``, ``d = 100``, 20 % of the weights pruned, as at
level 1) are trained for ``--steps`` full-batch Adam steps on their own data, float32:

* ``one at a time``: :func:`lthbook.training.train_regression`, as Figure 6 runs a level
  without ``batched`` (an ``nn.Linear`` masked by ``torch.nn.utils.prune``, autograd, Adam) --
  a plain, competent torch loop;
* ``lockstep``: :func:`lthbook.batched.train_regressions_batched`, the ``R`` runs as one
  batched model (``batched: true``).

Rounds are interleaved (each round times both variants and the float32 GEMM rate, so load from
other processes hits all alike); the table gives the best and the median time per run and step,
the speed-up of the medians, and the achieved GFLOP/s (forward and weight gradient: ``4 N d K``
flops per run and step) as a percentage of the GEMM rate of the same rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from roofline import gemm_gflops  # same folder: run as python bench/bench_fig6.py
from lthbook.batched import train_regressions_batched
from lthbook.imp import attach_masks, prune_layerwise
from lthbook.networks import OneHiddenLayerStudent
from lthbook.training import train_regression

K, D = 5, 100


def make(runs: int, N: int):
    torch.manual_seed(0)
    models = [attach_masks(OneHiddenLayerStudent(D, K)) for _ in range(runs)]
    for m in models:
        prune_layerwise(m, 0.2)
    gen = torch.Generator().manual_seed(1)
    data = []
    for _ in range(runs):
        X, Xt = torch.randn(N, D, generator=gen), torch.randn(1000, D, generator=gen)
        data.append((X, torch.relu(X[:, :K]).mean(1), Xt, torch.relu(Xt[:, :K]).mean(1)))
    return models, data


def one_at_a_time(runs: int, N: int, steps: int) -> float:
    models, data = make(runs, N)
    start = time.perf_counter()
    for m, d in zip(models, data):
        train_regression(m, *d, steps=steps, threads=None)
    return (time.perf_counter() - start) / (runs * steps)


def lockstep(runs: int, N: int, steps: int) -> float:
    models, data = make(runs, N)
    start = time.perf_counter()
    train_regressions_batched(models, data, steps=steps, threads=None)
    return (time.perf_counter() - start) / (runs * steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="runs per level (Figure 6 paper scale: 20 trials per N)")
    p.add_argument("--N", type=int, nargs="+", default=[100, 500, 2000])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{a.threads} thread(s), load {os.getloadavg()[0]:.1f}; R = {a.runs} runs, {a.steps} steps, K={K}, d={D}")
    print("| N | one at a time, us/run-step min (median) | lockstep min (median) | speed-up (medians) "
          "| lockstep GFLOP/s | % of fp32 GEMM |")
    print("| --- | --- | --- | --- | --- | --- |")
    for N in a.N:
        one_at_a_time(2, N, 20), lockstep(2, N, 20)  # warm-up
        t1, t2, peaks = [], [], []
        for _ in range(a.repeats):
            peaks.append(gemm_gflops(a.threads))
            t1.append(one_at_a_time(a.runs, N, a.steps))
            t2.append(lockstep(a.runs, N, a.steps))
        flops = 4.0 * N * D * K
        gflops = flops / min(t2) / 1e9
        print(f"| {N} | {1e6 * min(t1):.1f} ({1e6 * statistics.median(t1):.1f}) | {1e6 * min(t2):.1f} "
              f"({1e6 * statistics.median(t2):.1f}) | {statistics.median(t1) / statistics.median(t2):.2f}x "
              f"| {gflops:.2f} | {100 * gflops / max(peaks):.1f} % of {max(peaks):.0f} |")


if __name__ == "__main__":
    main()
