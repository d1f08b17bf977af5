"""Benchmark: wall time of one figure from an empty cache with 1 and with N worker processes.

Usage:  .venv/bin/python bench/bench_workers.py [--figure fig4] [--scale ci] [--workers 1 2] [--rounds 3]

Runs ``python -m lthbook reproduce FIGURE --scale SCALE --no-cache --no-progress --workers K``
as a subprocess for every ``K`` of ``--workers``, one after the other in each round (so load
from other processes hits every variant alike), and prints the min and median wall time per
``K`` -- the whole command, as a user sees it: interpreter start, worker start, cells, claim
check and plots -- with the load average before and after, and whether the ``raw`` numbers
of every run are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(figure: str, scale: str, workers: int, out: Path) -> tuple[float, dict]:
    """Wall time of one ``reproduce`` command, and the ``raw`` numbers it wrote."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lthbook", "reproduce", figure, "--scale", scale, "--seed", "0",
                    "--no-cache", "--no-progress", "--workers", str(workers), "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, json.loads((out / f"{figure}.json").read_text())["raw"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", default="fig4")
    parser.add_argument("--scale", default="ci")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.figure} --scale {args.scale} --no-cache; cores: {os.cpu_count()}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    times: dict[int, list[float]] = {k: [] for k in args.workers}
    raws = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for k in args.workers:
                seconds, raw = run_once(args.figure, args.scale, k, Path(tmp) / f"w{k}")
                times[k].append(seconds)
                raws.append(raw)
                print(f"  round {r + 1}, --workers {k}: {seconds:.1f} s", flush=True)
    base = min(times[args.workers[0]])
    for k in args.workers:
        print(f"--workers {k}: min {min(times[k]):.1f} s, median {statistics.median(times[k]):.1f} s "
              f"(x{base / min(times[k]):.2f} against --workers {args.workers[0]}, best of {args.rounds})")
    print(f"load average after: {os.getloadavg()[0]:.2f}; raw numbers identical in every run: "
          f"{all(raw == raws[0] for raw in raws)}")


if __name__ == "__main__":
    main()
