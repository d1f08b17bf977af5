"""The machine's roofline, measured in the calling benchmark's own run: GEMM GFLOP/s and memory
read bandwidth on the threads the benchmark uses, plus control of numpy's BLAS threads.

Import from a script in ``bench/`` (``from roofline import roofline``; the script's folder is on
``sys.path``). Every benchmark that reports a rate as a percentage of the machine's peak measures
the peak with this, in the same process and under the same load, instead of quoting a datasheet.
Used by ``bench/bench_agd.py`` (fp64, per thread count) and ``bench/bench_imp.py`` (fp32/bf16).
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
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _best_seconds(op, device: str, repeats: int) -> float:
    op()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        op()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def gemm_gflops(threads: int | None = None, n: int = 1024, repeats: int = 5,
                dtype: torch.dtype = torch.float32, device: str = "cpu") -> float:
    """GFLOP/s of an ``n x n`` by ``n x n`` matrix product (``2 n^3`` flops) in ``dtype`` on
    ``device``, on ``threads`` CPU threads (``None``: torch's current setting), the best of ``repeats``."""
    with _torch_threads(threads):
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        return 2.0 * n**3 / _best_seconds(lambda: a @ b, device, repeats) / 1e9


def read_bandwidth(threads: int | None = None, megabytes: int = 256, repeats: int = 5,
                   device: str = "cpu") -> float:
    """GB/s at which torch sums an array of ``megabytes`` MB (far larger than the caches) on
    ``threads`` CPU threads (or on ``device``): what a kernel that streams its data once can reach."""
    with _torch_threads(threads):
        x = torch.ones(megabytes * 2**20 // 8, dtype=torch.float64, device=device)
        return x.numel() * 8 / _best_seconds(x.sum, device, repeats) / 1e9


def roofline(device: str = "cpu", threads: int | None = None) -> dict[str, float]:
    """``{"gemm_fp32_gflops", "gemm_bf16_gflops", "read_gb_s"}`` on ``device`` and ``threads``."""
    return {"gemm_fp32_gflops": gemm_gflops(threads, device=device),
            "gemm_bf16_gflops": gemm_gflops(threads, dtype=torch.bfloat16, device=device),
            "read_gb_s": read_bandwidth(threads, device=device)}


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
