"""Benchmark: time per trial-iteration of Algorithm 1 (AGD), lthbook's batched torch
implementation against a naive per-trial numpy loop, in the same run.

Usage:  .venv/bin/python bench/bench_agd.py [--N 3000] [--d 500] [--r 500] [--K 5]
                                           [--batch 20] [--iters 30] [--device cpu]
                                           [--precision float64 float32] [--threads 1 2]

The default cell is the most expensive one of the paper's Fig. 2 (K=5, d=500,
N=3000, r=500). The naive reference gathers X[:, Omega_j] at every step, as a
direct transcription of Eq. (2) would. Also reports the GFLOP/s achieved by the
batched run and the machine's matmul GFLOP/s (same precision) for comparison, for
every combination of ``--precision`` and ``--threads``, and the time of the
``eta="auto"`` set-up (the Lanczos estimate of ``lambda_max`` for every run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lthbook.agd import initial_points, run_agd
from lthbook.teacher import make_problem


def naive_agd_step(W, W_prev, X, y, supports, eta, beta):
    """One AGD step for one trial, written the obvious way in numpy."""
    N, K = X.shape[0], W.shape[1]
    Z = np.stack([X[:, supports[j]] @ W[:, j] for j in range(K)], axis=1)
    e = np.maximum(Z, 0).mean(axis=1) - y
    G = np.stack([X[:, supports[j]].T @ (e * (Z[:, j] > 0)) for j in range(K)], axis=1) / (N * K)
    return W - eta * G + beta * (W - W_prev), W


def matmul_gflops(n: int = 2000, repeats: int = 5, device: str = "cpu", dtype=torch.float64) -> float:
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--N", type=int, default=3000)
    parser.add_argument("--d", type=int, default=500)
    parser.add_argument("--r", type=int, default=500)
    parser.add_argument("--K", type=int, default=5)
    parser.add_argument("--batch", type=int, default=20, help="initial points sharing one data set")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()

    p = make_problem(args.K, args.d, min(50, args.r), args.r, args.N, seed=0)
    W0 = initial_points(p.W_star, 0.3, n=args.batch, seed=1)
    eta, beta = 5.0, 0.2

    # naive reference: one trial, numpy, gathering X[:, Omega_j] each step
    W, W_prev = W0[0].copy(), W0[0].copy()
    naive_iters = max(3, args.iters // 3)
    t = time.perf_counter()
    for _ in range(naive_iters):
        W, W_prev = naive_agd_step(W, W_prev, p.X, p.y, p.supports, eta, beta)
    naive = (time.perf_counter() - t) / naive_iters

    print(f"cell: K={args.K} d={args.d} N={args.N} r={args.r}; batch={args.batch}; device={args.device}")
    print(f"naive numpy, one trial      : {naive * 1e3:8.2f} ms per iteration")
    flops = 4 * args.N * args.r * args.K * args.batch * args.iters  # forward + gradient matmuls
    for threads in args.threads:
        torch.set_num_threads(threads)
        t = time.perf_counter()
        run_agd(p, W0, eta="auto", beta=beta, max_iter=1, device=args.device, threads=threads)
        setup = time.perf_counter() - t
        print(f"threads={threads}: eta='auto' set-up (Lanczos lambda_max, {args.batch} runs): {setup:.2f} s")
        for precision in args.precision:
            # tol tiny so that every run does exactly --iters steps
            run_agd(p, W0, eta=eta, beta=beta, max_iter=2, tol=1e-300, device=args.device, precision=precision,
                    threads=threads)  # warm-up
            t = time.perf_counter()
            run_agd(p, W0, eta=eta, beta=beta, max_iter=args.iters, tol=1e-300, device=args.device,
                    precision=precision, threads=threads)
            batched_total = time.perf_counter() - t
            per_trial_iter = batched_total / (args.iters * args.batch)
            dtype = torch.float64 if precision == "float64" else torch.float32
            peak = matmul_gflops(device=args.device, dtype=dtype)
            print(f"  {precision:8s} lthbook batched: {per_trial_iter * 1e3:7.3f} ms per trial-iteration, "
                  f"speed-up {naive / per_trial_iter:6.1f} x, {flops / batched_total / 1e9:6.1f} GFLOP/s "
                  f"({precision} matmul peak, {threads} thread(s): {peak:.1f} GFLOP/s)")

if __name__ == "__main__":
    main()
