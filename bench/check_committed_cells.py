"""Recompute committed Figure 2 cells with a chosen AGD kernel and compare them run by run.

Usage:  .venv/bin/python bench/check_committed_cells.py [--cache reference/paper/cache/fig2]
            [--r 100 150 500] [--cells 1] [--device-of-record cpu] [--kernel auto|gathered|dense]
            [--threads 1]

For each ``r`` it takes the first ``--cells`` committed cells (sorted by chunk) computed on
``--device-of-record``, recomputes each with :func:`lthbook.synthetic_experiments.compute_fig2_cell`
on this CPU with the kernel forced through :data:`lthbook.agd.DENSE_CROSSOVER` (``dense``: +inf,
``gathered``: 0, ``auto``: unchanged), and compares every run's success
(``rel_error < success_tol`` and not diverged), ``exit_reason`` and ``n_iter`` with the committed
values. Prints one line per cell (matches, time) and the totals.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

import numpy as np

import lthbook.agd as agd
from lthbook.synthetic_experiments import compute_fig2_cell


def committed(cache: str, r_values: list[int], device: str) -> dict[int, list[dict]]:
    cells: dict[int, list[dict]] = {r: [] for r in r_values}
    for path in glob.glob(os.path.join(cache, "*.json")):
        entry = json.load(open(path))
        cfg = entry["config"]
        if cfg["figure"] == "fig2" and cfg["device"] == device and cfg["r"] in cells:
            cells[cfg["r"]].append(entry)
    for r in cells:
        cells[r].sort(key=lambda e: e["config"]["chunk"])
    return cells


def outcomes(payload: dict, success_tol: float) -> tuple[np.ndarray, ...]:
    err = np.asarray(payload["rel_error"], dtype=float)
    reason = np.asarray(payload["exit_reason"])
    success = (err < success_tol) & (reason != "diverged")
    return success, reason, np.asarray(payload["n_iter"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="reference/paper/cache/fig2")
    parser.add_argument("--r", type=int, nargs="+", default=[100, 150])
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--device-of-record", default="cpu")
    parser.add_argument("--kernel", default="auto", choices=agd.KERNELS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.kernel != "auto":
        agd.DENSE_CROSSOVER = math.inf if args.kernel == "dense" else 0.0
    print(f"kernel={args.kernel} (DENSE_CROSSOVER={agd.DENSE_CROSSOVER}), threads={args.threads}; "
          f"load average before: {os.getloadavg()}", flush=True)
    runs = same = 0
    for r, entries in committed(args.cache, args.r, args.device_of_record).items():
        if not entries:
            print(f"r={r}: no committed {args.device_of_record} cell")
        for entry in entries[: args.cells]:
            cfg = entry["config"]
            start = time.perf_counter()
            new = compute_fig2_cell(cfg, "cpu", args.threads)
            seconds = time.perf_counter() - start
            old_s, old_reason, old_n = outcomes(entry["payload"], cfg["success_tol"])
            new_s, new_reason, new_n = outcomes(new, cfg["success_tol"])
            match = (old_s == new_s) & (old_reason == new_reason) & (old_n == new_n)
            runs += match.size
            same += int(match.sum())
            print(f"r={r} chunk={cfg['chunk']}: {int(match.sum())}/{match.size} runs identical (success, exit_reason, "
                  f"n_iter); successes {int(old_s.sum())} committed / {int(new_s.sum())} now; total iterations "
                  f"{int(old_n.sum())} / {int(new_n.sum())}; {seconds:.0f} s", flush=True)
            for i in zip(*np.nonzero(~match)):
                print(f"    run {tuple(int(v) for v in i)}: committed {old_s[i]}, {old_reason[i]}, {old_n[i]}; "
                      f"now {new_s[i]}, {new_reason[i]}, {new_n[i]}")
    print(f"total: {same}/{runs} runs identical; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
