"""Benchmark: training throughput (images/s) of the §5.2 MNIST networks, in one run.

Usage:  .venv/bin/python bench/bench_imp.py [--seconds 5] [--repeats 3] [--threads 1] [--batch 60]

On the network the paper's code calls LeNet5 (``lenet5-paper-code``, 3.3 M weights,
batch 60, Adam) it times, one after the other on the same data:

* ``reference``: a re-implementation of the paper code's training step
  (:func:`lthbook.paper_code.reference_train_step`: every weight gradient goes to numpy
  and back at every step to apply its gradient mask), float32;
* ``plain``: a plain torch loop (forward, backward, Adam step), float32, no masks;
* ``lthbook``: :func:`lthbook.training.train_classifier` as IMP runs it -- masks attached
  with ``torch.nn.utils.prune``, data in one tensor, fused Adam, ``precision="bfloat16"``
  (autocast, channels-last) -- and the same with ``precision="float32"``.

Then the classic LeNet-5 (``lenet5``) with ``train_classifier`` in both precisions, and
the estimated duration of Figure 7 at each scale from the measured throughputs (and the
cost of the per-epoch evaluation on the 10 000 test images). Every timing is the
best of ``--repeats`` rounds of about ``--seconds`` seconds; each round runs every variant
once, one after the other, so load from other processes hits all variants alike and a
load spike only costs a round. Data: MNIST if :func:`lthbook.mnist.load_mnist`
finds it, else random images (the throughput does not depend on the pixels).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from lthbook.imp import attach_masks
from lthbook.presets import PRESETS
from lthbook.networks import build_network
from lthbook.paper_code import reference_train_step
from lthbook.training import prepare_images, train_classifier


def images(n: int):
    try:
        from lthbook.mnist import load_mnist

        data = load_mnist()
        return data.train_images[:n], data.train_labels[:n], "MNIST"
    except Exception:  # noqa: BLE001 - any failure: fall back to random images
        gen = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen), "random images"


def throughput_loop(step, X, y, batch: int, seconds: float) -> float:
    """Images per second of ``step(xb, yb)`` run over consecutive batches for ``seconds``."""
    n_batches = X.shape[0] // batch
    for i in range(2):  # warm-up
        step(X[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = done % n_batches
        step(X[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
        done += 1
    return done * batch / (time.perf_counter() - start)


def reference(network: str, X, y, batch: int, seconds: float) -> float:
    torch.manual_seed(0)
    model = build_network(network)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    return throughput_loop(lambda xb, yb: reference_train_step(model, opt, loss_fn, xb, yb), X, y, batch, seconds)


def plain(network: str, X, y, batch: int, seconds: float) -> float:
    torch.manual_seed(0)
    model = build_network(network)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()

    return throughput_loop(step, X, y, batch, seconds)


def lthbook_loop(network: str, X, y, batch: int, seconds: float, precision: str) -> float:
    """``train_classifier`` (one epoch over as many images as fit in ``seconds``, tiny test set)."""
    torch.manual_seed(0)
    model = attach_masks(build_network(network))
    Xp = prepare_images(X, precision, torch.device("cpu"))
    # size the epoch from a short probe so that it lasts about `seconds`
    probe = train_classifier(model, Xp[:4 * batch], y[:4 * batch], Xp[:batch], y[:batch], epochs=1, batch_size=batch,
                             precision=precision)
    n = max(4 * batch, min(X.shape[0], int(seconds / probe["seconds"] * 4 * batch) // batch * batch))
    out = train_classifier(model, Xp[:n], y[:n], Xp[:batch], y[:batch], epochs=1, batch_size=batch,
                           precision=precision)
    return n / out["seconds"]


def eval_rate(network: str, X, precision: str) -> float:
    from lthbook.training import accuracy

    model = attach_masks(build_network(network))
    if precision == "bfloat16":
        model.to(memory_format=torch.channels_last)
    Xp = prepare_images(X[:2000], precision, torch.device("cpu"))
    labels = torch.zeros(Xp.shape[0], dtype=torch.long)
    accuracy(model, Xp[:200], labels[:200], precision)
    start = time.perf_counter()
    accuracy(model, Xp, labels, precision)
    return Xp.shape[0] / (time.perf_counter() - start)


def interleaved_best(variants: dict, repeats: int) -> dict:
    """Best throughput of each variant over ``repeats`` rounds; every round runs all variants one
    after the other, so load from other processes hits them alike."""
    rates = {k: 0.0 for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            rates[k] = max(rates[k], fn())
    return rates


def fig7_estimates(rates: dict, eval_rates: dict) -> list[str]:
    lines = []
    for scale, s in PRESETS["fig7"].items():
        key = (s["network"], s["precision"])
        train_images = sum(s["N_values"]) * s["epochs"] * s["levels"]
        evals = len(s["N_values"]) * s["epochs"] * s["levels"] * 10000
        seconds = train_images / rates[key] + evals / eval_rates[key]
        lines.append(f"  {scale:5s}: {s['network']} ({s['precision']}), N={s['N_values']}, {s['epochs']} epoch(s) x "
                     f"{s['levels']} levels = {train_images / 1e6:.2f} M training images -> "
                     f"{seconds / 60:.1f} min = {seconds / 3600:.2f} h = {seconds / 86400:.2f} days")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per variant and round (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all variants; the best counts (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two threads wait for each other)")
    parser.add_argument("--batch", type=int, default=60, help="mini-batch size (default 60, the paper code's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y, source = images(6000)
    Xn = prepare_images(X, "float32", torch.device("cpu"))  # the reference loops get standardised images too
    b, t, r = args.batch, args.seconds, args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"batch {b}, data: {source}")
    ref = "lenet5-paper-code"
    rates = interleaved_best({
        "reference (numpy mask round trip)": lambda: reference(ref, Xn, y, b, t),
        "plain torch loop, float32": lambda: plain(ref, Xn, y, b, t),
        "lthbook, float32": lambda: lthbook_loop(ref, X, y, b, t, "float32"),
        "lthbook, bfloat16": lambda: lthbook_loop(ref, X, y, b, t, "bfloat16"),
    }, r)
    print(f"\n{ref} (the paper code's 'LeNet5', 3.3 M weights), training images/s:")
    for k, v in rates.items():
        print(f"  {k:36s} {v:8.0f}")
    base = rates["plain torch loop, float32"]
    print(f"  ratio lthbook (bfloat16) / plain loop:  {rates['lthbook, bfloat16'] / base:.2f}x")
    print(f"  ratio lthbook (bfloat16) / reference:   {rates['lthbook, bfloat16'] / rates['reference (numpy mask round trip)']:.2f}x")
    flop = 3 * 2 * (28 * 28 * 64 * 9 + 28 * 28 * 64 * 64 * 9 + 12544 * 256 + 256 * 256 + 256 * 10)  # fwd + bwd
    print(f"  (about {flop / 1e6:.0f} MFLOP per training image: lthbook bfloat16 = "
          f"{rates['lthbook, bfloat16'] * flop / 1e9:.0f} GFLOP/s)")
    classic = interleaved_best({p: (lambda p=p: lthbook_loop("lenet5", X, y, b, t, p)) for p in ("float32", "bfloat16")},
                               r)
    print("\nlenet5 (classic LeNet-5, 61.7 k weights), lthbook training images/s:")
    for p, v in classic.items():
        print(f"  {p:36s} {v:8.0f}")
    all_rates = {(ref, "float32"): rates["lthbook, float32"], (ref, "bfloat16"): rates["lthbook, bfloat16"],
                 ("lenet5", "float32"): classic["float32"], ("lenet5", "bfloat16"): classic["bfloat16"]}
    evals = {k: eval_rate(k[0], X, k[1]) for k in all_rates}
    print("\nEstimated duration of Figure 7 on this machine (training + per-epoch test evaluation):")
    for line in fig7_estimates(all_rates, evals):
        print(line)


if __name__ == "__main__":
    main()
