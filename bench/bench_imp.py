"""Benchmark: training throughput (images/s) of the §5.2 MNIST networks against competent
baselines, with the machine's roofline measured in the same run.

Usage:  .venv/bin/python bench/bench_imp.py [--seconds 3] [--repeats 5] [--threads 1] [--batch 60]
                                           [--quick]

Every variant trains on the same data (MNIST if :func:`lthbook.mnist.load_mnist` finds it,
else random images) at batch ``--batch`` with Adam (lr 1.2e-3, weight decay 1e-4):

* ``paper code step``: :func:`lthbook.paper_code.reference_train_step`, the training step of
  the code behind the paper's Figure 7 (every weight gradient through numpy, to mask it);
* ``plain torch loop``: what a competent user writes -- forward, cross-entropy, backward,
  ``torch.optim.Adam`` -- float32, no masks;
* ``lthbook``: :func:`lthbook.training.train_classifier` as IMP runs it (masks attached with
  ``torch.nn.utils.prune``, data in one tensor, fused Adam), float32 and bfloat16;
* ``lthbook batched xR``: :func:`lthbook.batched.train_classifiers_batched`, ``R`` IMP runs
  in lockstep (images/s summed over the runs); its baseline is ``R`` separate ``lthbook`` runs,
  whose summed rate is the rate of one.

Rounds are interleaved: each round runs every variant once for about ``--seconds``, so load
from other processes hits all alike; the table gives the best and the median rate over
``--repeats`` rounds, the ratios of the medians, and the achieved GFLOP/s (training = 3x the
forward flops, counted from the layers) as a percentage of the float32 GEMM GFLOP/s measured
in every round (``roofline.py``; the best round; bfloat16 variants against the bfloat16 GEMM). Finally the
duration of Figure 7 at each scale, from the measured rates of the way each preset runs
(batched runs, the precision ``"auto"`` would choose here).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch
from torch import nn

from roofline import roofline  # same folder: run as python bench/bench_imp.py
from lthbook.batched import BatchedRuns, train_classifiers_batched
from lthbook.imp import attach_masks
from lthbook.networks import build_network
from lthbook.paper_code import reference_train_step
from lthbook.presets import PRESETS
from lthbook.training import accuracy, device_name, prepare_images, train_classifier

NAMES = {"lenet5-paper-code": "the paper code's 'LeNet5' (3.3 M weights)",
         "lenet5": "the classic LeNet-5 (61.7 k weights)"}


def images(n: int):
    try:
        from lthbook.mnist import load_mnist

        data = load_mnist()
        return data.train_images[:n], data.train_labels[:n], "MNIST"
    except Exception:  # noqa: BLE001 - any failure: fall back to random images
        gen = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen), "random images"


def training_flops(network: str) -> float:
    """About 3x the multiply-adds x 2 of one image's forward pass through the Conv2d and Linear layers."""
    model, flops = build_network(network), []

    def hook(module, inputs, output):
        per_output = module.in_features if isinstance(module, nn.Linear) else (
            module.in_channels // module.groups * math.prod(module.kernel_size))
        flops.append(2 * per_output * output[0].numel())

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    return 3.0 * sum(flops)


def step_loop(step, X, y, batch: int, seconds: float) -> float:
    """Images per second of ``step(xb, yb)`` over consecutive batches for about ``seconds``."""
    n_batches = X.shape[0] // batch
    for i in range(2):  # warm-up
        step(X[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = done % n_batches
        step(X[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
        done += 1
    return done * batch / (time.perf_counter() - start)


def paper_code(network, X, y, batch, seconds):
    torch.manual_seed(0)
    model = build_network(network)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    return step_loop(lambda xb, yb: reference_train_step(model, opt, loss_fn, xb, yb), X, y, batch, seconds)


def plain(network, X, y, batch, seconds):
    torch.manual_seed(0)
    model = build_network(network)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()

    return step_loop(step, X, y, batch, seconds)


def _epoch_size(rate_guess: float, seconds: float, batch: int, limit: int) -> int:
    return max(4 * batch, min(limit, int(seconds * rate_guess) // batch * batch))


def lthbook_loop(network, X, y, batch, seconds, precision, guess):
    """``train_classifier`` for one epoch sized to last about ``seconds`` (tiny test set)."""
    torch.manual_seed(0)
    model = attach_masks(build_network(network))
    Xp = prepare_images(X, precision, torch.device("cpu"))
    n = _epoch_size(guess.get("rate", 100.0), seconds, batch, X.shape[0])
    out = train_classifier(model, Xp[:n], y[:n], Xp[:batch], y[:batch], epochs=1, batch_size=batch,
                           precision=precision)
    guess["rate"] = n / out["seconds"]
    return guess["rate"]


def batched_loop(network, X, y, batch, seconds, runs, guess):
    """``train_classifiers_batched`` of ``runs`` IMP runs, each on its own slice of the images."""
    torch.manual_seed(0)
    models = [attach_masks(build_network(network)) for _ in range(runs)]
    Xp = prepare_images(X, "float32", torch.device("cpu"))
    n = _epoch_size(guess.get("rate", 100.0) / runs, seconds, batch, X.shape[0] // runs)
    data = [(Xp[r * n:(r + 1) * n], y[r * n:(r + 1) * n]) for r in range(runs)]
    start = time.perf_counter()
    train_classifiers_batched(models, data, Xp[:batch], y[:batch], seeds=list(range(runs)), epochs=1,
                              batch_size=batch)
    guess["rate"] = runs * n / (time.perf_counter() - start)
    return guess["rate"]


def eval_rate(network, X, runs: int = 1) -> float:
    """Test images evaluated per second and run (``accuracy``, or ``BatchedRuns.accuracies`` for ``runs > 1``)."""
    models = [attach_masks(build_network(network)) for _ in range(runs)]
    Xp = prepare_images(X[:2000], "float32", torch.device("cpu"))
    labels = torch.zeros(Xp.shape[0], dtype=torch.long)
    evaluate = ((lambda xs, ls: accuracy(models[0], xs, ls)) if runs == 1
                else (lambda xs, ls: BatchedRuns(models).accuracies(xs, ls, list(range(runs)))))
    evaluate(Xp[:200], labels[:200])
    start = time.perf_counter()
    evaluate(Xp, labels)
    return runs * Xp.shape[0] / (time.perf_counter() - start)


def interleaved(variants: dict, repeats: int, peaks: dict[str, list[float]]) -> dict[str, list[float]]:
    """Every variant's rate in each of ``repeats`` rounds; a round runs all variants one after the other
    and measures the roofline (appended to ``peaks``), so that it sees the same load."""
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, v in roofline().items():
            peaks.setdefault(k, []).append(v)
        for k, fn in variants.items():
            rates[k].append(fn())
    return rates


def lockstep_seconds(sizes: list[int], epochs: int, batch: int, tick: dict[int, float]) -> float:
    """Training time of runs with training-set ``sizes`` in lockstep, from the measured time per
    lockstep step with ``R`` active runs (``tick[R]``, linearly interpolated in ``R``)."""
    known = sorted(tick)

    def t(r):
        if r in tick:
            return tick[r]
        lo = max(k for k in known if k < r) if any(k < r for k in known) else known[0]
        hi = min(k for k in known if k > r) if any(k > r for k in known) else known[-1]
        return tick[lo] if lo == hi else tick[lo] + (tick[hi] - tick[lo]) * (r - lo) / (hi - lo)

    steps = sorted(math.ceil(n / batch) * epochs for n in sizes)
    total, done = 0.0, 0
    for i, s in enumerate(steps):
        total += (s - done) * t(len(steps) - i)
        done = s
    return total


def fig7_estimates(per_run_rate: dict, batched_rate: dict, eval_rates: dict, batch: int) -> list[str]:
    """Figure 7 per scale: ``per_run_rate[(network, precision)]`` (images/s of one run), ``batched_rate[
    (network, R)]`` (images/s summed over R runs in lockstep, float32), ``eval_rates[network]``."""
    lines = []
    for scale, s in PRESETS["fig7"].items():
        net, trials = s["network"], s.get("trials", 1)
        if (net, "float32") not in per_run_rate:
            continue
        precision = s["precision"]
        if precision == "auto":  # resolve_precision's rule: bfloat16 if its step takes < 0.9 of float32's
            faster = per_run_rate.get((net, "bfloat16"), 0.0) * 0.9 > per_run_rate[(net, "float32")]
            precision = "bfloat16" if faster else "float32"
        sizes = [n for n in s["N_values"] for _ in range(trials)]
        if s.get("batched") and precision == "float32":
            tick = {1: batch / per_run_rate[(net, precision)],
                    **{r: r * batch / v for (n, r), v in batched_rate.items() if n == net}}
            train = lockstep_seconds(sizes, s["epochs"], batch, tick) * s["levels"]
            how = f"{len(sizes)} runs batched"
        else:
            train = sum(sizes) * s["epochs"] * s["levels"] / per_run_rate[(net, precision)]
            how = f"{len(sizes)} separate runs" + (" (the preset batches them; batched rate measured at float32 "
                                                   "only)" if s.get("batched") else "")
        evals = len(sizes) * s["epochs"] * s["levels"] * 10000 / eval_rates[net]
        total = train + evals
        lines.append(f"  {scale:5s}: {net}, {precision}, {how}, N={s['N_values']} x {trials} trial(s), "
                     f"{s['epochs']} epoch(s) x {s['levels']} levels: {total / 60:.1f} min = {total / 3600:.2f} h "
                     f"= {total / 86400:.2f} days (evaluation {100 * evals / total:.0f} %)")
    return lines


def table(title: str, rates: dict[str, list[float]], flops: float, rounds: dict[str, list[float]], base: str) -> None:
    peaks = {k: max(v) for k, v in rounds.items()}  # the machine's best, as the percentages' denominator
    print(f"\n{title}: training images/s over {len(next(iter(rates.values())))} rounds")
    print("  roofline, best/median of the rounds: " + ", ".join(
        f"{k} {max(v):.1f}/{statistics.median(v):.1f}" for k, v in rounds.items()))
    print(f"  {'variant':34s} {'best':>8s} {'median':>8s}  {'vs ' + base:>16s}  {'GFLOP/s':>8s} {'% of GEMM':>9s}")
    med_base = statistics.median(rates[base])
    for k, v in rates.items():
        med = statistics.median(v)
        peak = peaks["gemm_bf16_gflops"] if "bfloat16" in k else peaks["gemm_fp32_gflops"]
        print(f"  {k:34s} {max(v):8.0f} {med:8.0f}  {med / med_base:15.2f}x  {med * flops / 1e9:8.1f} "
              f"{100 * med * flops / 1e9 / peak:8.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per variant and round (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as Figure 7 runs)")
    parser.add_argument("--batch", type=int, default=60, help="mini-batch size (default 60, the paper code's)")
    parser.add_argument("--quick", action="store_true", help="skip the paper code's network")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y, source = images(24000)
    Xn = prepare_images(X, "float32", torch.device("cpu"))  # the baselines get standardised images too
    b, t, r = args.batch, args.seconds, args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {device_name(torch.device('cpu'))} "
          f"({platform.machine()}), batch {b}, data: {source}, load average {os.getloadavg()}")
    per_run, batched, evals = {}, {}, {}
    nets = ["lenet5"] if args.quick else ["lenet5-paper-code", "lenet5"]
    for net in nets:
        g = {k: {} for k in ("f32", "bf16", "b3", "b4", "b12")}
        variants = {"plain torch loop, float32": lambda net=net: plain(net, Xn, y, b, t),
                    "lthbook, float32": lambda net=net: lthbook_loop(net, X, y, b, t, "float32", g["f32"]),
                    "lthbook, bfloat16": lambda net=net: lthbook_loop(net, X, y, b, t, "bfloat16", g["bf16"])}
        if net == "lenet5-paper-code":
            variants = {"paper code step, float32": lambda net=net: paper_code(net, Xn, y, b, t), **variants,
                        "lthbook batched x4, float32": lambda net=net: batched_loop(net, X, y, b, t, 4, g["b4"])}
        else:
            variants.update({"lthbook batched x3, float32": lambda net=net: batched_loop(net, X, y, b, t, 3, g["b3"]),
                             "lthbook batched x12, float32": lambda net=net: batched_loop(net, X, y, b, t, 12,
                                                                                          g["b12"])})
        peaks: dict[str, list[float]] = {}
        rates = interleaved(variants, r, peaks)
        flops = training_flops(net)
        table(f"{net}, {NAMES[net]}, {flops / 1e6:.2f} MFLOP per training image", rates, flops, peaks,
              "paper code step, float32" if "paper code step, float32" in rates else "plain torch loop, float32")
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in med.items():
            if k.startswith("lthbook batched"):
                runs = int(k.split("x")[1].split(",")[0])
                batched[(net, runs)] = v
                print(f"  batched x{runs} / {runs} separate lthbook runs: {v / med['lthbook, float32']:.2f}x "
                      f"(best rounds: {max(rates[k]) / max(rates['lthbook, float32']):.2f}x)")
        print(f"  lthbook float32 / plain loop: {med['lthbook, float32'] / med['plain torch loop, float32']:.2f}x; "
              f"bfloat16 / float32: {med['lthbook, bfloat16'] / med['lthbook, float32']:.2f}x"
              + (f"; lthbook float32 / paper code step: {med['lthbook, float32'] / med['paper code step, float32']:.2f}x"
                 if "paper code step, float32" in med else ""))
        per_run[(net, "float32")], per_run[(net, "bfloat16")] = med["lthbook, float32"], med["lthbook, bfloat16"]
        evals[net] = eval_rate(net, X)
        print(f"  test evaluation: {evals[net]:.0f} images/s (one model)")
    print("\nEstimated duration of Figure 7 on this machine (training + test evaluation after every epoch):")
    for line in fig7_estimates(per_run, batched, evals, b):
        print(line)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
