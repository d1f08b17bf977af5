"""Benchmark: time per trial-iteration of Algorithm 1 (AGD), lthbook against what a competent
numpy user would write, with the machine's roofline measured in the same run.

Usage:  .venv/bin/python bench/bench_agd.py [--N 3000] [--d 500] [--r 500] [--K 5] [--trials 5]
                                           [--batch 12] [--iters 20] [--rounds 5] [--threads 1 2]
        .venv/bin/python bench/bench_agd.py --crossover [--r-values 100 150 200 250 300 400 500] ...
        .venv/bin/python bench/bench_agd.py --layouts [--starts 1 2 4 6 12] ...
        .venv/bin/python bench/bench_agd.py --rows [--row-counts 4 5 ... 64] [--starts 1 2 3 ...] ...

The default cell is the most expensive one of the paper's Fig. 2 (K=5, d=500, N=3000,
r=500): ``--trials`` data sets (5, a Fig 2 cell) with ``--batch`` starting points each (12,
the distances of a Fig 2 trial). Variants, each timed once per round, rounds interleaved
(load from other processes hits every variant alike); min and median over the rounds:

* ``numpy per-trial``: one run at a time, the ``K`` blocks ``X[:, Omega_j]`` gathered once
  before the loop; per step ``K`` matrix-vector products forward and ``K`` back (transposed
  views, no copies), the momentum update and the stopping-rule norm;
* ``numpy masked W~``: one run at a time in the masked form of Eq. (4): ``X @ W~`` with ``W~``
  of shape ``(d, K)``, zero outside the supports, and ``X^T @ (a * e)`` masked again;
* ``numpy starts batched``: one data set at a time, its ``B`` runs as the columns of one
  ``(d, K B)`` masked matrix (the dense kernel of lthbook, written in numpy);
* ``lthbook gathered`` / ``lthbook dense``: :func:`lthbook.agd.run_agd` with ``kernel=`` either,
  on all trials at once (``auto`` picks one: printed). Its time per iteration is
  ``(t(iters + 1) - t(1)) / iters`` (the set-up cancels); every run is forced to do every step
  (``tol = 1e-300``, fixed ``eta``).

Roofline, same process, each round: an fp64 2000x2000 torch GEMM (GFLOP/s) and the read
bandwidth of a 256 MB float64 sum (GB/s), at the same thread count. Reported per variant:
useful GFLOP/s (``4 N r K`` per trial-iteration, the gathered count) in % of the GEMM, and
the data it must read per iteration (gathered: ``Xg`` and ``Xg^T``, ``2 K N r`` doubles per
data set; lthbook dense: ``X_U`` and its transpose, ``2 N u``; numpy masked: ``X`` and its
transposed view, ``2 N d``) in % of the read bandwidth.

``--crossover`` times the two lthbook kernels over ``--r-values`` (other sizes as given) and
prints the ratio gathered/dense against ``u / r`` (``u``: the largest union of the supports),
and where it crosses 1: the constant :data:`lthbook.agd.DENSE_CROSSOVER`.

``--layouts`` times, for ``B`` in ``--starts``, the two products of the dense kernel's gradient
for one data set (``X_U``: ``N x u``, ``u = min(d, K r)``; ``K B`` columns), fp64, per product:
forward ``X_U tilde W`` (the layout before 2026-12-04) against ``tilde W^T X_U^T`` reading the
stored ``X_U`` as the transposed operand (the layout since), and backward ``X_U^T (a e)`` (stored
transpose) against ``(a e)^T X_U`` reading the stored transpose as the transposed operand; then the
whole :func:`lthbook.agd.run_agd` iteration of a cell (``--trials`` data sets) with ``B`` starts,
dense kernel, per data set: the cost of a batch that :data:`lthbook.agd.COMPACT_STARTS` has
narrowed to ``B`` unfinished starts.

``--rows`` times the dense kernel's two products (as the gradient runs them: ``tilde W^T X_U^T`` and
``(a e)^T X_U``) for ``--trials`` data sets at once, for each number of rows (``K B``) in
``--row-counts``, per data set and product, in GFLOP/s and % of the fp64 GEMM measured in the same
run: the measurement behind :data:`lthbook.risk.GEMM_ROW_MULTIPLE`. Then the whole
:func:`lthbook.agd.run_agd` iteration per data set for ``B`` in ``--starts``, rows padded (the
constant as set) against not padded (``GEMM_ROW_MULTIPLE = 1``), interleaved rounds, min/median
and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from lthbook.agd import DENSE_CROSSOVER, choose_kernel, initial_points, run_agd
from lthbook.teacher import make_problem
from roofline import gemm_gflops, numpy_threads, read_bandwidth

ETA, BETA = 5.0, 0.2


def numpy_per_trial(p, W0: np.ndarray, iters: int) -> float:
    """Seconds for ``iters`` AGD steps of one run, gathered blocks prepared once."""
    N, K = p.N, p.K
    blocks = [np.ascontiguousarray(p.X[:, s]) for s in p.supports]
    W, W_prev = W0.copy(), W0.copy()
    start = time.perf_counter()
    for _ in range(iters):
        Z = np.stack([blocks[j] @ W[:, j] for j in range(K)], axis=1)
        e = np.maximum(Z, 0).mean(axis=1) - p.y
        G = np.stack([blocks[j].T @ (e * (Z[:, j] > 0)) for j in range(K)], axis=1) / (N * K)
        W_next = W - ETA * G + BETA * (W - W_prev)
        np.linalg.norm(W_next - W) / np.linalg.norm(W)  # the stopping rule's statistic
        W, W_prev = W_next, W
    return time.perf_counter() - start


def numpy_masked(p, W0s: np.ndarray, iters: int) -> float:
    """Seconds for ``iters`` AGD steps of ``B = len(W0s)`` runs on one data set, in the masked
    form ``X @ W~`` with ``W~`` of shape ``(d, K B)`` (B = 1: one run at a time)."""
    N, K, d = p.N, p.K, p.d
    B = len(W0s)
    rows, cols = p.supports.reshape(-1), np.repeat(np.arange(K), p.r)
    M = np.zeros((d, K, 1))
    M[rows, cols] = 1.0
    Wt = np.zeros((d, K, B))
    Wt[rows, cols] = W0s.transpose(2, 1, 0).reshape(K * p.r, B)  # W0s: (B, r, K)
    Wt_prev = Wt.copy()
    X, XT = p.X, p.X.T
    start = time.perf_counter()
    for _ in range(iters):
        Z = (X @ Wt.reshape(d, K * B)).reshape(N, K, B)
        e = np.maximum(Z, 0).mean(axis=1) - p.y[:, None]
        G = (XT @ ((Z > 0) * e[:, None, :]).reshape(N, K * B)).reshape(d, K, B) * M / (N * K)
        W_next = Wt - ETA * G + BETA * (Wt - Wt_prev)
        np.linalg.norm(W_next - Wt, axis=(0, 1)) / np.linalg.norm(Wt, axis=(0, 1))
        Wt, Wt_prev = W_next, Wt
    return time.perf_counter() - start


def lthbook_run(problems, W0: np.ndarray, iters: int, kernel: str, threads: int, device: str) -> float:
    start = time.perf_counter()
    run_agd(problems, W0, eta=ETA, beta=BETA, max_iter=iters, tol=1e-300, threads=threads, kernel=kernel,
            device=device)
    return time.perf_counter() - start


def lthbook_per_iteration(problems, W0, iters: int, kernel: str, threads: int, device: str = "cpu") -> float:
    """Seconds per iteration of the whole batch: ``(t(iters + 1) - t(1)) / iters``."""
    return (lthbook_run(problems, W0, iters + 1, kernel, threads, device)
            - lthbook_run(problems, W0, 1, kernel, threads, device)) / iters


def cell(K: int, d: int, r: int, N: int, trials: int, batch: int):
    problems = [make_problem(K, d, min(50, r), r, N, seed=s) for s in range(trials)]
    W0 = np.stack([initial_points(p.W_star, 0.3, n=batch, seed=100 + i) for i, p in enumerate(problems)])
    u = max(int(np.unique(p.supports).size) for p in problems)
    return problems, W0, u


def stats(xs: list[float]) -> tuple[float, float]:
    return min(xs), statistics.median(xs)


def main_compare(args) -> None:
    problems, W0, u = cell(args.K, args.d, args.r, args.N, args.trials, args.batch)
    P, B = len(problems), args.batch
    flops = 4.0 * args.N * args.r * args.K  # per trial-iteration, gathered count
    # bytes of data each variant reads per trial-iteration (both products)
    blocks, full = 2 * 8.0 * args.K * args.N * args.r, 2 * 8.0 * args.N * args.d
    read = {"numpy per-trial": blocks, "numpy masked W~": full, "numpy starts batched": full / B,
            "lthbook gathered": blocks / B, "lthbook dense": 2 * 8.0 * args.N * u / B}
    print(f"cell: K={args.K} d={args.d} N={args.N} r={args.r} (u={u}, u/r={u / args.r:.2f}); {P} data sets x {B} starts; "
          f"kernel='auto' picks {choose_kernel(problems)!r} (DENSE_CROSSOVER={DENSE_CROSSOVER})")
    print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {}
        peak, bw = [], []
        with numpy_threads(threads) as ok:
            for rnd in range(args.rounds):
                per = {
                    "numpy per-trial": lambda: numpy_per_trial(problems[0], W0[0, 0], args.iters) / args.iters,
                    "numpy masked W~": lambda: numpy_masked(problems[0], W0[0, :1], args.iters) / args.iters,
                    "numpy starts batched": lambda: numpy_masked(problems[0], W0[0], args.iters) / (args.iters * B),
                    "lthbook gathered": lambda: lthbook_per_iteration(problems, W0, args.iters, "gathered", threads, args.device) / (P * B),
                    "lthbook dense": lambda: lthbook_per_iteration(problems, W0, args.iters, "dense", threads, args.device) / (P * B),
                }
                for name, f in per.items():
                    times.setdefault(name, []).append(f())
                peak.append(gemm_gflops(threads, n=2000, repeats=3, dtype=torch.float64, device=args.device))
                bw.append(read_bandwidth(threads, repeats=3, device=args.device))
        g, m = max(peak), max(bw)
        print(f"\n{threads} thread(s) (numpy BLAS threads set: {ok}); lthbook on {args.device}; roofline ({args.device}): fp64 GEMM {g:.1f} GFLOP/s "
              f"(median {statistics.median(peak):.1f}), read bandwidth {m:.1f} GB/s (median {statistics.median(bw):.1f}); "
              f"{args.rounds} rounds")
        base = {k: stats(times[k]) for k in ("numpy per-trial", "numpy masked W~", "numpy starts batched")}
        print(f"  {'variant':22s} {'min ms':>8s} {'median':>8s}  {'x per-trial':>11s} {'x masked':>9s} {'x starts':>9s}"
              f"  {'GFLOP/s':>8s} {'%GEMM':>6s} {'%read bw':>8s}")
        for name, xs in times.items():
            lo, med = stats(xs)
            bytes_ = read[name]
            gf = flops / lo / 1e9
            ratios = "  ".join(f"{base[b][0] / lo:9.2f}" for b in base)
            print(f"  {name:22s} {lo * 1e3:8.3f} {med * 1e3:8.3f}  {ratios}  {gf:8.1f} {100 * gf / g:5.0f}% "
                  f"{100 * bytes_ / lo / 1e9 / m:7.0f}%")
    print(f"\nload average after: {os.getloadavg()}")
    print("ratios: min time of the column's baseline / min time of the row (> 1: the row is faster)")


def main_crossover(args) -> None:
    print(f"crossover: K={args.K} d={args.d} N={args.N}, {args.trials} data sets x {args.batch} starts, "
          f"threads={args.threads[0]}; load average before: {os.getloadavg()}")
    torch.set_num_threads(args.threads[0])
    rows = []
    for r in args.r_values:
        problems, W0, u = cell(args.K, args.d, r, args.N, args.trials, args.batch)
        t = {"gathered": [], "dense": []}
        for _ in range(args.rounds):
            for kernel in t:
                t[kernel].append(lthbook_per_iteration(problems, W0, args.iters, kernel, args.threads[0]))
        g, dn = min(t["gathered"]), min(t["dense"])
        rows.append((u / r, g / dn))
        print(f"  r={r:4d} u={u:4d} u/r={u / r:5.2f}: gathered {g * 1e3:7.2f} ms (median {statistics.median(t['gathered']) * 1e3:.2f}), "
              f"dense {dn * 1e3:7.2f} ms (median {statistics.median(t['dense']) * 1e3:.2f}) per iteration; "
              f"gathered/dense {g / dn:5.2f}", flush=True)
    rows.sort()
    cross = None
    for (x0, y0), (x1, y1) in zip(rows, rows[1:]):
        if y0 >= 1.0 > y1:  # dense faster at x0, gathered at x1
            cross = x0 + (y0 - 1.0) * (x1 - x0) / (y0 - y1)
    print(f"dense faster below u/r = {cross:.2f}" if cross is not None else "no crossing in this range")
    print(f"load average after: {os.getloadavg()}")


def main_layouts(args) -> None:
    threads = args.threads[0]
    torch.set_num_threads(threads)
    u = min(args.d, args.K * args.r)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(args.N, u, dtype=torch.float64, generator=gen)
    XT = X.T.contiguous()
    print(f"layouts: N={args.N} u={u} K={args.K}, fp64, threads={threads}; load average before: {os.getloadavg()}")

    def best(f, reps: int = 10) -> list[float]:
        f()
        out = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(reps):
                f()
            out.append((time.perf_counter() - start) / reps)
        return out

    gemm = []
    for B in args.starts:
        w = args.K * B
        W = torch.randn(u, w, dtype=torch.float64, generator=gen)
        WT = W.T.contiguous()
        E = torch.randn(args.N, w, dtype=torch.float64, generator=gen)
        ET = E.T.contiguous()
        gemm.append(gemm_gflops(threads, n=2000, repeats=2, dtype=torch.float64))
        times = {"X W": best(lambda: X @ W), "W^T X^T": best(lambda: WT @ X.T),
                 "X^T E": best(lambda: XT @ E), "E^T X": best(lambda: ET @ XT.T)}
        flops = 2.0 * args.N * u * w
        line = "  ".join(f"{k} {min(v) * 1e3:6.2f}/{statistics.median(v) * 1e3:6.2f} ms "
                         f"({flops / min(v) / 1e9:5.1f} GFLOP/s)" for k, v in times.items())
        fwd = statistics.median(times["X W"]) / statistics.median(times["W^T X^T"])
        bwd = statistics.median(times["X^T E"]) / statistics.median(times["E^T X"])
        problems, W0, _ = cell(args.K, args.d, args.r, args.N, args.trials, B)
        it = [lthbook_per_iteration(problems, W0, args.iters, "dense", threads) / args.trials
              for _ in range(args.rounds)]
        print(f"  B={B:2d} ({w:3d} columns): {line}; forward {fwd:.2f}x, backward {bwd:.2f}x (median, old/new); "
              f"run_agd dense iteration {min(it) * 1e3:.2f}/{statistics.median(it) * 1e3:.2f} ms per data set", flush=True)
    print(f"fp64 GEMM 2000x2000: best {max(gemm):.1f} GFLOP/s; load average after: {os.getloadavg()}")


def main_rows(args) -> None:
    import lthbook.risk as risk

    threads = args.threads[0]
    torch.set_num_threads(threads)
    u = min(args.d, args.K * args.r)
    P = args.trials
    gen = torch.Generator().manual_seed(0)
    Xu = torch.randn(P, args.N, u, dtype=torch.float64, generator=gen)
    XuT = Xu.transpose(1, 2).contiguous()
    print(f"rows: {P} data sets, N={args.N} u={u}, fp64, threads={threads}; load average before: {os.getloadavg()}")
    peak = gemm_gflops(threads, n=2000, repeats=2, dtype=torch.float64)
    print(f"fp64 GEMM 2000x2000: {peak:.1f} GFLOP/s")
    for m in args.row_counts:
        WT = torch.randn(P, m, u, dtype=torch.float64, generator=gen)
        E = torch.randn(P, m, args.N, dtype=torch.float64, generator=gen)
        fwd, bwd = [], []
        for _ in range(args.rounds):  # interleaved
            fwd.append(_best_of(lambda: WT @ Xu.transpose(1, 2)) / P)
            bwd.append(_best_of(lambda: E @ XuT.transpose(1, 2)) / P)
        flops = 2.0 * args.N * u * m
        print(f"  {m:3d} rows: forward {min(fwd) * 1e3:5.2f}/{statistics.median(fwd) * 1e3:5.2f} ms "
              f"({flops / min(fwd) / 1e9:5.1f} GFLOP/s, {100 * flops / min(fwd) / 1e9 / peak:3.0f} %), backward "
              f"{min(bwd) * 1e3:5.2f}/{statistics.median(bwd) * 1e3:5.2f} ms "
              f"({flops / min(bwd) / 1e9:5.1f} GFLOP/s, {100 * flops / min(bwd) / 1e9 / peak:3.0f} %)", flush=True)
    multiple = risk.GEMM_ROW_MULTIPLE
    for B in args.starts:
        problems, W0, _ = cell(args.K, args.d, args.r, args.N, args.trials, B)
        times: dict[int, list[float]] = {1: [], multiple: []}
        try:
            for _ in range(args.rounds):
                for m in times:
                    risk.GEMM_ROW_MULTIPLE = m
                    times[m].append(lthbook_per_iteration(problems, W0, args.iters, "dense", threads) / args.trials)
        finally:
            risk.GEMM_ROW_MULTIPLE = multiple
        plain, padded = times[1], times[multiple]
        print(f"  B={B:2d} ({args.K * B} rows -> {-(-args.K * B // multiple) * multiple}): run_agd dense iteration per data "
              f"set, not padded {min(plain) * 1e3:.2f}/{statistics.median(plain) * 1e3:.2f} ms, padded "
              f"{min(padded) * 1e3:.2f}/{statistics.median(padded) * 1e3:.2f} ms -> "
              f"{statistics.median(plain) / statistics.median(padded):.2f}x (medians)", flush=True)
    print(f"load average after: {os.getloadavg()}")


def _best_of(f, reps: int = 5) -> float:
    """Seconds per call of ``f``: the fastest of ``reps`` calls after one warm-up."""
    f()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--N", type=int, default=3000)
    parser.add_argument("--d", type=int, default=500)
    parser.add_argument("--r", type=int, default=500)
    parser.add_argument("--K", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5, help="data sets in one batch (a Fig 2 cell: 5)")
    parser.add_argument("--batch", type=int, default=12, help="starting points per data set")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--device", default="cpu", help="device of the lthbook runs and the roofline (numpy: CPU)")
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument("--layouts", action="store_true")
    parser.add_argument("--rows", action="store_true")
    parser.add_argument("--row-counts", nargs="+", type=int,
                        default=[4, 5, 8, 10, 12, 15, 16, 20, 25, 28, 30, 32, 35, 36, 55, 56, 60])
    parser.add_argument("--starts", nargs="+", type=int, default=[1, 2, 4, 6, 12])
    parser.add_argument("--r-values", nargs="+", type=int, default=[100, 150, 200, 250, 300, 400, 500])
    args = parser.parse_args()
    if args.rows and min(args.row_counts) < 1:
        parser.error(f"--row-counts must be >= 1, got {args.row_counts}")
    (main_crossover if args.crossover else main_layouts if args.layouts else main_rows if args.rows
     else main_compare)(args)


if __name__ == "__main__":
    main()
