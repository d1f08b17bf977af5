"""Training loops used inside IMP (§5.2): the MNIST classifiers and the synthetic student.

Data live in tensors: a mini-batch is one ``index_select`` of the image tensor with a
shuffled index vector, never a per-image Python transform. The convolutions and products
can run under ``torch.autocast(dtype=torch.bfloat16)`` (``precision="bfloat16"``; master
weights, optimizer state and the loss stay float32), with the network and the images in
the channels-last layout; ``precision="float32"`` is plain float32.

``precision="auto"`` (:func:`resolve_precision`) picks bfloat16 only where it is faster:
a device without bfloat16 arithmetic gets float32; on one that has it, a short timed
probe of both precisions on the network decides, once, and the choice is kept in
``precision.json`` in the cell cache folder, keyed by the device, the torch version and
the network. A flag is not enough: on this book's AMD EPYC, which reports ``avx512_bf16``,
bfloat16 is slower than float32 for the classic LeNet-5 (its small layers pay the casts)
while it is faster for the paper code's 3.3-million-weight network, and an earlier
measurement on the same machine found the opposite for the latter (``bench/bench_imp.py``
prints the current rates).
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ._validation import check_choice, check_float, check_int
from .cache import default_cache_dir, write_text_atomically

#: The floating-point formats a training run can use.
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
#: What a preset's ``precision`` may say: one of :data:`PRECISIONS` or ``"auto"`` (:func:`resolve_precision`).
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)


def _precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 for ``precision="bfloat16"``, a no-op for ``"float32"``."""
    if _precision(precision) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


#: Mean and standard deviation of the MNIST training pixels (the standardisation the paper's code uses).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def prepare_images(images: torch.Tensor, precision: str, device: torch.device) -> torch.Tensor:
    """Standardise images (``(n, 1, 28, 28)``, values in ``[0, 1]``) with :data:`MNIST_MEAN` and
    :data:`MNIST_STD`, once, as float32 on ``device``; channels-last for bfloat16 runs."""
    images = (images.to(device=device, dtype=torch.float32) - MNIST_MEAN) / MNIST_STD
    if _precision(precision) == "bfloat16":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, precision: str = "float32",
             batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose largest class score is the label (the test accuracy of Fig. 7)."""
    batch_size = check_int("batch_size", batch_size, 1)
    device = images.device
    was_training = model.training
    model.eval()
    correct = 0
    with autocast_context(precision, device):
        for start in range(0, images.shape[0], batch_size):
            out = model(images[start:start + batch_size])
            correct += int((out.argmax(dim=1) == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / images.shape[0]


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused implementation (one kernel for the whole update) where this torch
    build has it for the parameters' device, else the default one. On the paper code's
    network the fused step takes about 6 ms on one CPU core instead of about 30 ms."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def train_classifier(
    model: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 60,
    lr: float = 1.2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    precision: str = "float32",
) -> dict[str, Any]:
    """Train an MNIST classifier with Adam (:func:`adam`) and cross-entropy; evaluate after every epoch.

    The defaults are the settings of the paper's code (Adam, ``lr = 1.2e-3``, batch 60,
    weight decay ``1e-4``). Tensors must already be on the training device (images from
    :func:`prepare_images`). The shuffling order is a function of ``seed`` only.

    Returns ``test_accuracy`` (per epoch), ``best_test_accuracy`` (the number the paper's
    code records), ``final_test_accuracy``, ``train_loss`` (mean per epoch) and ``seconds``.
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_float("lr", lr, 0.0, low_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, 0.0)
    seed = check_int("seed", seed, 0)
    _precision(precision)
    n = train_images.shape[0]
    if train_labels.shape != (n,):
        raise ValueError(f"train_labels must have shape ({n},), got {tuple(train_labels.shape)}")
    device = train_images.device
    if precision == "bfloat16":
        model.to(memory_format=torch.channels_last)
    optimizer = adam(model.parameters(), lr, weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = time.perf_counter()
    accs, losses = [], []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for first in range(0, n, batch_size):
            idx = order[first:first + batch_size]
            xb, yb = train_images.index_select(0, idx), train_labels.index_select(0, idx)
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(precision, device):
                out = model(xb)
            loss = loss_fn(out.float(), yb)
            loss.backward()
            optimizer.step()
            total += loss.detach() * idx.numel()
        losses.append(float(total) / n)
        accs.append(accuracy(model, test_images, test_labels, precision))
    return {"test_accuracy": accs, "best_test_accuracy": max(accs), "final_test_accuracy": accs[-1],
            "train_loss": losses, "seconds": time.perf_counter() - start}


def has_bfloat16_arithmetic(device: torch.device) -> bool:
    """Whether ``device`` claims bfloat16 arithmetic: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX tiles (what oneDNN's bfloat16 kernels use)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    flags = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(f()) for f in flags if f is not None)


def device_name(device: torch.device) -> str:
    """The model name of ``device`` (the GPU's name, or the CPU's from ``/proc/cpuinfo``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_training_steps(model: nn.Module, precision: str, device: torch.device, batch_size: int = 60,
                        steps: int = 3) -> float:
    """Seconds per training step of ``model`` (Adam, cross-entropy, random images) at ``precision``:
    the fastest of ``steps`` timed steps after one warm-up step."""
    steps = check_int("steps", steps, 1)
    gen = torch.Generator().manual_seed(0)
    X = prepare_images(torch.rand(batch_size, 1, 28, 28, generator=gen), precision, device)
    y = torch.randint(0, 10, (batch_size,), generator=gen).to(device)
    if precision == "bfloat16":
        model.to(memory_format=torch.channels_last)
    optimizer = adam(model.parameters(), 1e-3)
    best = float("inf")
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(precision, device):
            out = model(X)
        nn.functional.cross_entropy(out.float(), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def resolve_precision(precision: str, device: torch.device, build: Callable[[], nn.Module], name: str,
                      cache_file: str | Path | None = None) -> str:
    """The concrete precision for ``precision`` (one of :data:`PRECISION_CHOICES`) on ``device``.

    ``"float32"`` and ``"bfloat16"`` are returned as they are. ``"auto"`` is ``"float32"`` on a
    device without bfloat16 arithmetic (:func:`has_bfloat16_arithmetic`); otherwise the choice
    stored in ``cache_file`` (default ``precision.json`` in :func:`lthbook.cache.default_cache_dir`)
    under the key ``device name | torch version | name``, or, when there is none yet, the
    faster precision of a probe (:func:`time_training_steps` on a ``build()`` per precision --
    pass the network as it is trained, e.g. with its pruning masks --, three interleaved
    rounds, the fastest of each; bfloat16 must be at least 10 % faster), which is then stored.
    """
    precision = check_choice("precision", precision, PRECISION_CHOICES)
    if precision != "auto":
        return precision
    if not has_bfloat16_arithmetic(device):
        return "float32"
    path = Path(cache_file) if cache_file is not None else default_cache_dir() / "precision.json"
    key = f"{device_name(device)} | torch {torch.__version__} | {name}"
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("choice") in PRECISIONS:
        return entry["choice"]
    with torch_threads(1 if device.type == "cpu" else None), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        models = {p: build().to(device) for p in PRECISIONS}  # one each: bfloat16 turns its model channels-last
        times = {p: float("inf") for p in PRECISIONS}
        for _ in range(3):
            for p in PRECISIONS:
                times[p] = min(times[p], time_training_steps(models[p], p, device))
    choice = "bfloat16" if times["bfloat16"] < 0.9 * times["float32"] else "float32"
    known[key] = {"choice": choice, "seconds_per_step": times,
                  "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(known, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache folder: the probe runs again next time
    return choice


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)`` and restore the previous count
    afterwards (also on an exception); ``None`` leaves the setting alone."""
    if threads is not None:
        threads = check_int("threads", threads, 1)
    previous = torch.get_num_threads()
    change = threads is not None and threads != previous
    if change:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(previous)


def relative_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    """``||pred - target||_2 / ||target||_2``: the test error of Fig. 6 when ``target`` are the
    teacher's noiseless outputs on fresh inputs."""
    return float(torch.linalg.vector_norm(pred - target) / torch.linalg.vector_norm(target))


def train_regression(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-2,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Fit the synthetic student ``g(x; W)`` to ``(x_n, y_n)`` by full-batch Adam on the
    squared loss ``(1/2N) sum_n (g(x_n; W) - y_n)^2`` (the empirical risk of Eq. 2).

    ``threads``: torch CPU threads for the training (the previous setting is restored
    afterwards); ``None`` keeps torch's current setting. The default, 1, makes the result
    independent of the caller's thread count: with 2 threads the weight gradient (a sum
    over the ``N`` samples) is split between the threads and summed in another order, which
    moves Figure 6's test errors by up to about 6e-5 relative (float32). On the student's
    small products (``N <= 2000``, ``d = 100``, ``K = 5``) one thread is also the fastest.

    Returns ``test_error`` (:func:`relative_error` on ``(X_test, y_test)``),
    ``train_error`` (the same on the training set) and ``seconds``.
    """
    steps = check_int("steps", steps, 1)
    lr = check_float("lr", lr, 0.0, low_inclusive=False)
    if threads is not None:
        threads = check_int("threads", threads, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    model.train()
    with torch_threads(threads):
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = 0.5 * torch.mean((model(X) - y) ** 2)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            test_error = relative_error(model(X_test), y_test)
            train_error = relative_error(model(X), y)
    return {"test_error": test_error, "train_error": train_error, "seconds": time.perf_counter() - start}


__all__ = ["PRECISIONS", "PRECISION_CHOICES", "has_bfloat16_arithmetic", "device_name", "time_training_steps",
           "resolve_precision", "MNIST_MEAN", "MNIST_STD", "autocast_context", "prepare_images", "accuracy", "adam",
           "train_classifier", "relative_error", "train_regression", "torch_threads"]
