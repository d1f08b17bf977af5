"""Benchmark: where a batched IMP step of the classic LeNet-5 spends its time, layer by layer,
and how each layer's alternative formulations compare (the measurements behind the
"Batched IMP" part of the Reproducibility page).

Usage:  .venv/bin/python bench/bench_batched_layers.py [--runs 3 12] [--rounds 5] [--reps 10]
                                                      [--threads 1] [--no-compile]

For ``R`` runs at batch 60 (float32, one thread by default) it times, forward and backward
together (``backward`` of a sum of the outputs), in ``--rounds`` interleaved rounds of
``--reps`` calls each, min and median per call:

* each convolution of the network (conv1: 1 -> 6 channels, 5x5, padding 2, 28x28, no input
  gradient; conv2: 6 -> 16, 5x5, 14x14, with input gradient) as

  - ``separate``: ``R`` plain convolutions, one per run (what ``R`` separate runs do);
  - ``grouped, channels-last`` (what :class:`lthbook.batched.BatchedRuns` does) and
    ``grouped, NCHW``: one convolution with ``groups=R``;
  - ``unfold + matmul``: im2col (``F.unfold``) and one broadcast product per layer, the layout
    that made Figure 6's lockstep pay;

* the 2x2 max pooling followed by ReLU of conv1's output: ``max_pool2d`` on the channels-last
  tensor (what BatchedRuns does), on an NCHW tensor (what a separate run does), and as a
  reshape + ``amax``;

* one whole training step (forward, cross-entropy, backward, fused Adam) of ``R`` separate
  runs (``R`` steps of :func:`lthbook.training.adam`-trained masked models) and of the ``R``
  runs in lockstep (:class:`lthbook.batched.BatchedRuns`), eager and, unless ``--no-compile``,
  with the loss compiled by ``torch.compile`` (compile time printed).

From these it prints the share of the lockstep step spent in the two convolutions and the
largest speed-up lockstep could reach if everything but its convolutions were free (the
separate step time over the lockstep convolutions' time per run). The float32 GEMM rate is
measured in every round (``roofline.py``) and the best round is printed, so the numbers can
be read against the machine's peak under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from roofline import gemm_gflops  # same folder: run as python bench/bench_batched_layers.py
from lthbook.batched import BatchedRuns
from lthbook.imp import attach_masks
from lthbook.networks import build_network
from lthbook.training import adam

CL = torch.channels_last
B = 60
CONVS = {"conv1": dict(cin=1, cout=6, size=28, pad=2, input_grad=False),
         "conv2": dict(cin=6, cout=16, size=14, pad=0, input_grad=True)}


def conv_variants(R: int, cin: int, cout: int, size: int, pad: int, input_grad: bool) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, R * cin, size, size, generator=gen)
    w = torch.randn(R * cout, cin, 5, 5, generator=gen, requires_grad=True)
    out = size + 2 * pad - 4
    xs = [x[:, r * cin:(r + 1) * cin].clone().requires_grad_(input_grad) for r in range(R)]
    ws = [w.detach()[r * cout:(r + 1) * cout].clone().requires_grad_(True) for r in range(R)]
    x_cl = x.contiguous(memory_format=CL).requires_grad_(input_grad)
    x_nchw = x.clone().requires_grad_(input_grad)

    def separate():
        for xi, wi in zip(xs, ws):
            F.conv2d(xi, wi, padding=pad).sum().backward()

    def grouped_cl():
        F.conv2d(x_cl, w.contiguous(memory_format=CL), padding=pad, groups=R).sum().backward()

    def grouped_nchw():
        F.conv2d(x_nchw, w, padding=pad, groups=R).sum().backward()

    def unfold_matmul():
        cols = F.unfold(x_nchw, 5, padding=pad).view(B, R, cin * 25, out * out)
        torch.matmul(w.view(R, cout, cin * 25), cols).sum().backward()

    return {"separate": separate, "grouped, channels-last": grouped_cl, "grouped, NCHW": grouped_nchw,
            "unfold + matmul": unfold_matmul}


def pool_variants(R: int) -> dict:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, R * 6, 28, 28, generator=gen)
    x_cl = x.contiguous(memory_format=CL).requires_grad_(True)
    xs = [x[:, r * 6:(r + 1) * 6].clone().requires_grad_(True) for r in range(R)]

    def cl():
        F.relu(F.max_pool2d(x_cl, 2)).sum().backward()

    def separate_nchw():
        for xi in xs:
            F.relu(F.max_pool2d(xi, 2)).sum().backward()

    def amax():
        v = x_cl.permute(0, 2, 3, 1).reshape(B, 14, 2, 14, 2, R * 6)
        F.relu(v.amax(dim=(2, 4))).sum().backward()

    return {"max_pool2d, channels-last": cl, "separate max_pool2d, NCHW": separate_nchw, "reshape + amax": amax}


def step_variants(R: int, compile_step: bool) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(B, R, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (R, B), generator=gen)
    separate = [attach_masks(build_network("lenet5")) for _ in range(R)]
    opts = [adam(m.parameters(), 1.2e-3, 1e-4) for m in separate]
    batched = BatchedRuns([attach_masks(build_network("lenet5")) for _ in range(R)])
    opt_b = adam(batched.parameters(), 1.2e-3, 1e-4)
    runs = list(range(R))

    def separate_step():
        for r, (m, opt) in enumerate(zip(separate, opts)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(x[:, r]), y[r]).backward()
            opt.step()

    def lockstep_loss(xb, yb):
        out = batched.forward(xb, runs)
        return F.cross_entropy(out.reshape(-1, 10), yb.reshape(-1), reduction="none").view(R, -1).mean(1).sum()

    def make(loss):
        def step():
            opt_b.zero_grad(set_to_none=True)
            loss(x, y).backward()
            opt_b.step()
        return step

    variants = {"separate runs": separate_step, "lockstep, eager": make(lockstep_loss)}
    info = {}
    if compile_step:
        compiled = make(torch.compile(lockstep_loss))
        start = time.perf_counter()
        compiled()
        info["compile seconds"] = time.perf_counter() - start
        variants["lockstep, torch.compile"] = compiled
    return variants, info


def measure(variants: dict, rounds: int, reps: int, gemm: list[float]) -> dict[str, list[float]]:
    """Milliseconds per call of each variant in each round (interleaved); a GEMM rate per round."""
    for f in variants.values():
        f()
        f()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        gemm.append(gemm_gflops(torch.get_num_threads(), n=512, repeats=3))
        for k, f in variants.items():
            start = time.perf_counter()
            for _ in range(reps):
                f()
            times[k].append((time.perf_counter() - start) / reps * 1e3)
    return times


def show(title: str, times: dict[str, list[float]], base: str) -> None:
    ref = statistics.median(times[base])
    print(f"  {title}")
    for k, v in times.items():
        med = statistics.median(v)
        print(f"    {k:<28s} {min(v):8.2f} ms min  {med:8.2f} ms median  {ref / med:5.2f}x of {base!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[3, 12], help="R values (default 3 12)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    for name in ("runs", "rounds", "reps", "threads"):
        values = getattr(args, name) if isinstance(getattr(args, name), list) else [getattr(args, name)]
        if any(v < 1 for v in values):
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, threads={args.threads}, "
          f"batch {B}, float32; load average before: {os.getloadavg()}")
    gemm: list[float] = []
    for R in args.runs:
        print(f"R = {R} runs (forward + backward per call, for all R runs)")
        conv_time = {}
        for name, shape in CONVS.items():
            t = measure(conv_variants(R, **shape), args.rounds, args.reps, gemm)
            show(f"{name} ({shape['cin']} -> {shape['cout']} channels, {shape['size']}x{shape['size']})", t,
                 "separate")
            conv_time[name] = statistics.median(t["grouped, channels-last"])
        show("2x2 max pooling + ReLU of conv1's output", measure(pool_variants(R), args.rounds, args.reps, gemm),
             "separate max_pool2d, NCHW")
        variants, info = step_variants(R, not args.no_compile)
        if info:
            print(f"  torch.compile of the lockstep loss: {info['compile seconds']:.1f} s for the first step")
        t = measure(variants, args.rounds, max(1, args.reps // 2), gemm)
        show("one training step (forward, cross-entropy, backward, fused Adam)", t, "separate runs")
        step, sep = statistics.median(t["lockstep, eager"]), statistics.median(t["separate runs"])
        convs = sum(conv_time.values())
        print(f"  the two grouped convolutions: {convs:.2f} ms = {100 * convs / step:.0f} % of the lockstep step; "
              f"if all else were free, lockstep would be at most {sep / convs:.2f}x the separate runs")
    print(f"float32 GEMM (512x512, 1 thread per torch setting): best round {max(gemm):.1f} GFLOP/s, "
          f"median {statistics.median(gemm):.1f}; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
