"""The machine's roofline, measured in the benchmark's own process: fp64 GEMM GFLOP/s and
memory read bandwidth at a given thread count, plus control of numpy's BLAS threads.

Used by ``bench/bench_agd.py``; import it from a script in ``bench/`` (the script's folder
is on ``sys.path``).
"""

from __future__ import annotations

import ctypes
import glob
import os
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gemm_gflops(threads: int, n: int = 2000, repeats: int = 3, dtype: torch.dtype = torch.float64,
                device: str = "cpu") -> float:
    """GFLOP/s of an ``n x n`` torch matrix product on ``threads`` CPU threads (or on ``device``),
    the best of ``repeats``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, dtype=dtype, generator=gen).to(device)
        b = torch.randn(n, n, dtype=dtype, generator=gen).to(device)
        a @ b
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            _sync(device)
            best = min(best, time.perf_counter() - start)
        return 2.0 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def read_bandwidth(threads: int, megabytes: int = 256, repeats: int = 3, device: str = "cpu") -> float:
    """GB/s at which torch sums a float64 array of ``megabytes`` MB (far larger than the caches)
    on ``threads`` CPU threads (or on ``device``): what a kernel that streams its data once can reach."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.ones(megabytes * 2**20 // 8, dtype=torch.float64, device=device)
        a.sum()
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a.sum()
            _sync(device)
            best = min(best, time.perf_counter() - start)
        return a.numel() * 8 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def _openblas():
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*.so*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getter = name.replace("set_num", "get_num")
                return getattr(lib, name), getattr(lib, getter, None)
    return None, None


@contextmanager
def numpy_threads(threads: int) -> Iterator[bool]:
    """Run numpy's bundled OpenBLAS on ``threads`` threads; yields whether that could be set."""
    setter, getter = _openblas()
    if setter is None:
        yield False
        return
    previous = getter() if getter is not None else os.cpu_count()
    setter(ctypes.c_int(threads))
    try:
        yield True
    finally:
        setter(ctypes.c_int(previous))
