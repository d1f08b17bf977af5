"""CPU vs CUDA on identical draws: the same cells of Figures 2-5 run on both devices.

Usage: ``python bench/gpu_check.py [--scale ci] [--device cuda]``

Every cell's random draws (teachers, data, ``W(0)``) come from numpy with a seed that
depends on the cell only (:func:`lthbook.cells.cell_rng`), so the two devices
solve exactly the same problems and may differ only by floating-point rounding
(float64 on both). The script prints, per figure, how many runs changed their
success/failure outcome and the largest relative difference of the final errors of
runs that converged on both devices, and exits 1 if any cell cannot be run on the
device. It is the correctness step of the GPU run (``bench/gpu_paper_run.sh``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lthbook.registry import get
from lthbook.synthetic_experiments import cell_config


def compare(name: str, scale: str, device: str, max_cells: int) -> dict:
    experiment = get(name).experiment
    cells = experiment.cells(get(name).settings(scale))[:max_cells]
    changed = runs = 0
    worst = 0.0
    times = {"cpu": 0.0, "device": 0.0}
    for cell in cells:
        out = {}
        for side, dev in (("cpu", "cpu"), ("device", device)):
            t0 = time.perf_counter()
            out[side] = experiment.compute(cell_config(name, cell, 0, dev), dev)
            times[side] += time.perf_counter() - t0
        a, b = out["cpu"], out["device"]
        if "success" in a:
            sa, sb = np.asarray(a["success"]), np.asarray(b["success"])
            changed += int(np.abs(sa - sb).sum())
            runs += int(np.asarray(a["trials"]).sum()) * (sa.size if sa.ndim else 1)
        key = "nu" if "nu" in a else "rel_error"  # Fig 3: the fitted rate; else the final errors
        ea, eb = (np.asarray(x[key], dtype=float) for x in (a, b))
        if ea.shape == eb.shape and ea.size:
            # compare runs that ended well above the rounding floor; a converged run's last
            # digits are rounding noise on either device
            ok = np.isfinite(ea) & np.isfinite(eb) & (ea > 1e-6)
            if ok.any():
                worst = max(worst, float(np.max(np.abs(ea[ok] - eb[ok]) / ea[ok])))
    return {"figure": name, "cells": len(cells), "runs_compared": runs, "outcomes_changed": changed,
            "max_rel_diff_final_error": worst, "cpu_s": times["cpu"], "device_s": times["device"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="ci", choices=["ci", "book"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-cells", type=int, default=3)
    args = parser.parse_args()
    print(f"{'figure':8} {'cells':>5} {'runs':>5} {'changed':>8} {'max rel diff':>13} {'cpu s':>7} {'dev s':>7}")
    for name in ("fig2", "fig3", "fig4", "fig5"):
        row = compare(name, args.scale, args.device, args.max_cells)
        print(f"{name:8} {row['cells']:5d} {row['runs_compared']:5d} {row['outcomes_changed']:8d} "
              f"{row['max_rel_diff_final_error']:13.2e} {row['cpu_s']:7.1f} {row['device_s']:7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
