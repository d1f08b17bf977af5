"""Training loops used inside IMP (§5.2): the MNIST classifiers and the synthetic student.

Data live in tensors: a mini-batch is one ``index_select`` of the image tensor with a
shuffled index vector, never a per-image Python transform. On a CPU with bfloat16
matrix units the convolutions and products can run under
``torch.autocast(dtype=torch.bfloat16)`` (``precision="bfloat16"``; master weights,
optimizer state and the loss stay float32), with the network and the images in the
channels-last layout; ``precision="float32"`` is plain float32.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

import torch
from torch import nn

from ._validation import check_float, check_int

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


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


__all__ = ["PRECISIONS", "MNIST_MEAN", "MNIST_STD", "autocast_context", "prepare_images", "accuracy", "adam",
           "train_classifier", "relative_error", "train_regression", "torch_threads"]
