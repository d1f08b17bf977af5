"""Training and test-evaluation throughput of the §5.2 networks on one device, and the
duration of Figure 7 at each scale that follows from it.

Usage: ``python bench/imp_device_rate.py [--device cuda] [--images 30000]``

Unlike ``bench/bench_imp.py`` (CPU, interleaved rounds, the paper code's reference step),
this times :func:`lthbook.training.train_classifier` exactly as IMP calls it (masks
attached, Adam, batch 60) on ``--device``, one epoch over ``--images`` random images
(the throughput does not depend on the pixels), after a warm-up epoch, and
:func:`lthbook.training.accuracy` over the same images. CUDA work is synchronised before
every clock reading.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_imp import fig7_estimates  # same folder: run as python bench/imp_device_rate.py
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=30000)
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
    print("Figure 7 (training + test evaluation of 10 000 images after every epoch):")
    for line in fig7_estimates({k: v[0] for k, v in measured.items()}, {k: v[1] for k, v in measured.items()}):
        print(line)


if __name__ == "__main__":
    main()
