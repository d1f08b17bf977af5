"""Training and test-evaluation throughput of the §5.2 networks on one device, and the
duration of Figure 7 at each scale that follows from it.

Usage: ``python bench/imp_device_rate.py [--device cuda] [--images 30000] [--runs 4 12]``

Unlike ``bench/bench_imp.py`` (CPU, interleaved rounds, the paper code's reference step),
this times :func:`lthbook.training.train_classifier` exactly as IMP calls it (masks
attached, Adam, batch 60) on ``--device``, one epoch over ``--images`` random images
(the throughput does not depend on the pixels), after a warm-up epoch, and
:func:`lthbook.training.accuracy` over the same images; then
:func:`lthbook.batched.train_classifiers_batched` with ``R`` runs in lockstep for each
``R`` of ``--runs`` (float32; images/s summed over the runs), and what
``precision="auto"`` chooses on the device. CUDA work is synchronised before every clock
reading.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_imp import fig7_estimates  # same folder: run as python bench/imp_device_rate.py
from lthbook.batched import train_classifiers_batched
from lthbook.imp import attach_masks
from lthbook.networks import build_network
from lthbook.training import accuracy, prepare_images, train_classifier


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rates(network: str, precision: str, n: int, device: torch.device) -> tuple[float, float]:
    """(training images/s, evaluated images/s) of ``network`` at ``precision``."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    X = prepare_images(torch.rand(n, 1, 28, 28, generator=gen), precision, device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    model = attach_masks(build_network(network)).to(device)
    small = slice(0, 60)
    train_classifier(model, X[:600], y[:600], X[small], y[small], epochs=1, precision=precision)  # warm-up
    _sync(device)
    start = time.perf_counter()
    train_classifier(model, X, y, X[small], y[small], epochs=1, precision=precision)
    _sync(device)
    train = n / (time.perf_counter() - start)
    accuracy(model, X[:1000], y[:1000], precision)  # warm-up
    _sync(device)
    start = time.perf_counter()
    accuracy(model, X, y, precision)
    _sync(device)
    return train, n / (time.perf_counter() - start)


def batched_rate(network: str, runs: int, n: int, device: torch.device) -> float:
    """Training images/s summed over ``runs`` IMP runs in lockstep, each on ``n // runs`` images."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = max(60, n // runs)
    X = prepare_images(torch.rand(m, 1, 28, 28, generator=gen), "float32", device)
    y = torch.randint(0, 10, (m,), generator=gen).to(device)
    models = [attach_masks(build_network(network)).to(device) for _ in range(runs)]
    small = slice(0, 60)
    train_classifiers_batched(models, [(X[:600], y[:600])] * runs, X[small], y[small], seeds=list(range(runs)),
                              epochs=1)  # warm-up
    _sync(device)
    start = time.perf_counter()
    train_classifiers_batched(models, [(X, y)] * runs, X[small], y[small], seeds=list(range(runs)), epochs=1)
    _sync(device)
    return runs * m / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=30000)
    parser.add_argument("--runs", type=int, nargs="*", default=[4, 12], help="runs in lockstep to time")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {name}, {args.images} random images, batch 60")
    measured = {}
    for network, precision in (("lenet5-paper-code", "bfloat16"), ("lenet5-paper-code", "float32"),
                               ("lenet5", "float32")):
        measured[(network, precision)] = rates(network, precision, args.images, device)
        tr, ev = measured[(network, precision)]
        print(f"  {network:18s} {precision:9s} train {tr:9.0f} img/s   evaluate {ev:9.0f} img/s", flush=True)
    batched = {}
    for network in ("lenet5-paper-code", "lenet5"):
        for runs in args.runs:
            batched[(network, runs)] = batched_rate(network, runs, args.images, device)
            print(f"  {network:18s} float32   batched x{runs:<3d} {batched[(network, runs)]:9.0f} img/s "
                  f"({batched[(network, runs)] / measured[(network, 'float32')][0]:.2f}x one run)", flush=True)
    from lthbook.training import resolve_precision

    for network in ("lenet5-paper-code", "lenet5"):
        chosen = resolve_precision("auto", device, lambda: attach_masks(build_network(network)), network)
        print(f"  precision='auto' chooses {chosen} for {network} here")
    print("Figure 7 (training + test evaluation of 10 000 images after every epoch):")
    for line in fig7_estimates({k: v[0] for k, v in measured.items()}, batched,
                               {k[0]: v[1] for k, v in measured.items() if k[1] == "float32"}, 60):
        print(line)


if __name__ == "__main__":
    main()
