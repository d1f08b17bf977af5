"""The machine's roofline, measured in the calling benchmark's own run: GEMM GFLOP/s and memory
read bandwidth, on the threads the benchmark uses.

Import from a script in ``bench/`` (``from roofline import roofline``); every benchmark that
reports a rate as a percentage of the machine's peak measures the peak with this, in the same
process and under the same load, instead of quoting a datasheet.
"""

from __future__ import annotations

import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(n: int = 1024, dtype: torch.dtype = torch.float32, device: str = "cpu", repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` by ``n x n`` matrix product (``2 n^3`` flops), the fastest of ``repeats``."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        start = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def read_bandwidth(megabytes: int = 256, device: str = "cpu", repeats: int = 5) -> float:
    """GB/s of reading a float32 tensor of ``megabytes`` once (``tensor.sum()``), the fastest of ``repeats``."""
    dev = torch.device(device)
    x = torch.ones(megabytes * 2**20 // 4, device=dev)
    x.sum()
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        start = time.perf_counter()
        x.sum()
        _sync(dev)
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def roofline(device: str = "cpu") -> dict[str, float]:
    """``{"gemm_fp32_gflops", "gemm_bf16_gflops", "read_gb_s"}`` on ``device`` with torch's current threads."""
    return {"gemm_fp32_gflops": gemm_gflops(device=device), "gemm_bf16_gflops": gemm_gflops(dtype=torch.bfloat16,
                                                                                              device=device),
            "read_gb_s": read_bandwidth(device=device)}
