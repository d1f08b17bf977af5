"""Batched IMP training: several independent runs of one network shape trained in lockstep
as one batched model (§5.2, Figure 7).

The runs of Figure 7 (one per training-set size ``N`` and seed) all train the same network
shape with the same settings. :func:`train_classifiers_batched` trains ``R`` such runs at
once: every step stacks the ``R`` runs' weights along a leading *run* axis and computes all
``R`` forward and backward passes with one call per layer --

* a convolution of the ``R`` runs is one grouped convolution (``groups=R``): the runs' images
  are stacked along the channel axis, ``(B, R*C, H, W)``, in the channels-last layout
  (where oneDNN's grouped convolutions are fastest on a CPU);
* a fully connected layer is one batched product (``torch.baddbmm``) over the run axis;
* ReLU and max pooling act per channel, hence per run; a ReLU followed by a max pooling is
  computed as the pooling followed by the ReLU (the two commute: the values are identical,
  and so are the gradients, except where two positive inputs of one window tie exactly);
* the loss is the sum over runs of each run's mean cross-entropy, so the gradient reaching
  run ``r``'s weights is exactly that of run ``r``'s own loss.

Each run keeps its own parameters (the ``weight_orig`` and bias tensors of its
``torch.nn.utils.prune``-masked model; its masks enter as ``weight_orig * weight_mask``),
its own data, its own shuffling order (a generator seeded with its own ``seed``, as in
:func:`lthbook.training.train_classifier`) and its own Adam state: one
:func:`lthbook.training.adam` holds every run's parameters, and Adam is elementwise with
per-tensor step counts, so this is ``R`` independent Adams. Runs with different
training-set sizes step together while they all have batches left; a run whose epoch
(or whose training) is over simply receives no gradient in that step (its parameters
keep ``grad=None``, which Adam skips), and a step whose runs have different batch sizes
(the last, partial batch of an epoch) is computed as one batched pass per batch size.

The numbers equal those of separate :func:`lthbook.training.train_classifier` runs to
float rounding (the grouped and batched kernels sum in another order); the tests compare
them. On the book's CPU the classic LeNet-5 trains 1.4-1.7x as many images per second this
way (``bench/bench_imp.py``; ``bench/bench_batched_layers.py`` shows where the time goes);
on a GPU, where a small network's step is bound by kernel launches, the gain grows with ``R``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_float, check_int
from .training import _precision, adam, autocast_context

_CL = torch.channels_last


def _layers(model: nn.Module) -> list[nn.Module]:
    """The layers of a ``features`` + ``classifier`` network, in order, with every ReLU that
    directly precedes a max pooling moved after it (they commute)."""
    if not (isinstance(getattr(model, "features", None), nn.Sequential)
            and isinstance(getattr(model, "classifier", None), nn.Sequential)):
        raise ValueError(f"model must have nn.Sequential 'features' and 'classifier' (lthbook.networks' LeNet5 or "
                         f"PaperCodeLeNet5), got {type(model).__name__}")
    layers = list(model.features) + list(model.classifier)
    allowed = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten)
    for layer in layers:
        if not isinstance(layer, allowed) or (isinstance(layer, nn.Conv2d) and layer.groups != 1):
            raise ValueError(f"model has a layer batched training does not support: {layer}")
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], nn.MaxPool2d):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return layers


def _weight(layer: nn.Module) -> torch.Tensor:
    return layer.weight_orig if hasattr(layer, "weight_orig") else layer.weight


class BatchedRuns:
    """``R`` models of one shape seen as one batched model (see the module docstring).

    ``models``: networks of :mod:`lthbook.networks` with images as input (all of one class and
    shape), with or without pruning masks (:func:`lthbook.imp.attach_masks`).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        if not isinstance(models, (list, tuple)) or not models:
            raise ValueError("models must be a non-empty list of networks")
        self.models = list(models)
        self.layers = [_layers(m) for m in self.models]
        shapes = [[tuple(p.shape) for p in m.parameters()] for m in self.models]
        if any(type(m) is not type(self.models[0]) or s != shapes[0] for m, s in zip(self.models, shapes)):
            raise ValueError("models must all be the same network with the same parameter shapes")
        self._mask_cache: dict[tuple[int, ...], list[torch.Tensor | None]] = {}

    def __len__(self) -> int:
        return len(self.models)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable tensor of every run (``weight_orig``/``weight`` and biases)."""
        return [p for m in self.models for p in m.parameters()]

    def refresh_masks(self) -> None:
        """Forget the stacked masks (call after the runs' masks changed)."""
        self._mask_cache.clear()

    def _masks(self, runs: tuple[int, ...]) -> list[torch.Tensor | None]:
        if runs not in self._mask_cache:
            out = []
            for k, layer in enumerate(self.layers[0]):
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and hasattr(layer, "weight_mask"):
                    out.append(torch.stack([self.layers[r][k].weight_mask for r in runs]))
                else:
                    out.append(None)
            self._mask_cache[runs] = out
        return self._mask_cache[runs]

    def forward(self, x: torch.Tensor, runs: Sequence[int]) -> torch.Tensor:
        """Class scores of the runs ``runs`` (indices into ``models``), shape ``(len(runs), B, classes)``,
        for their images ``x`` of shape ``(B, len(runs), C, H, W)`` (``x[:, j]`` goes to run ``runs[j]``)."""
        runs = tuple(runs)
        R, B = len(runs), x.shape[0]
        masks = self._masks(runs)
        h = x.reshape(B, R * x.shape[2], *x.shape[3:]).contiguous(memory_format=_CL)
        for k, layer in enumerate(self.layers[0]):
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                w = torch.stack([_weight(self.layers[r][k]) for r in runs])
                if masks[k] is not None:
                    w = w * masks[k]
                b = torch.stack([self.layers[r][k].bias for r in runs])
                if isinstance(layer, nn.Conv2d):
                    w = w.reshape(R * w.shape[1], *w.shape[2:]).contiguous(memory_format=_CL)
                    h = F.conv2d(h, w, b.reshape(-1), layer.stride, layer.padding, layer.dilation, groups=R)
                else:
                    h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            elif isinstance(layer, nn.ReLU):
                h = F.relu(h)
            elif isinstance(layer, nn.MaxPool2d):
                h = F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                 ceil_mode=layer.ceil_mode)
            else:  # Flatten: (B, R*C, H, W) -> (R, B, C*H*W), each run's features in torch's flatten order
                h = h.contiguous().view(B, R, -1).transpose(0, 1)
        return h

    def sync(self) -> None:
        """Set every masked layer's ``weight`` to ``weight_orig * weight_mask``, as the pruning hook
        does at each forward pass (:func:`lthbook.imp.prune_layerwise` ranks the weights by it)."""
        for layers in self.layers:
            for layer in layers:
                if hasattr(layer, "weight_mask"):
                    layer.weight = layer.weight_mask.to(dtype=layer.weight_orig.dtype) * layer.weight_orig

    @torch.no_grad()
    def accuracies(self, images: torch.Tensor, labels: torch.Tensor, runs: Sequence[int], precision: str = "float32",
                   batch_size: int = 1000) -> list[float]:
        """Test accuracy of each run of ``runs`` on the shared ``images`` (as
        :func:`lthbook.training.accuracy`); a batch holds ``batch_size // len(runs)`` images."""
        runs = tuple(runs)
        step = max(1, check_int("batch_size", batch_size, 1) // len(runs))
        correct = torch.zeros(len(runs), dtype=torch.long, device=images.device)
        with autocast_context(precision, images.device):
            for start in range(0, images.shape[0], step):
                xb = images[start:start + step]
                out = self.forward(xb.unsqueeze(1).expand(-1, len(runs), *xb.shape[1:]), runs)
                correct += (out.argmax(dim=2) == labels[start:start + step].unsqueeze(0)).sum(dim=1)
        return [int(c) / images.shape[0] for c in correct.tolist()]


def train_classifiers_batched(
    models: Sequence[nn.Module],
    data: Sequence[tuple[torch.Tensor, torch.Tensor]],
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    seeds: Sequence[int],
    epochs: int,
    batch_size: int = 60,
    lr: float = 1.2e-3,
    weight_decay: float = 1e-4,
    precision: str = "float32",
) -> list[dict[str, Any]]:
    """Train ``R = len(models)`` MNIST classifiers in lockstep: run ``r`` on ``data[r] = (images,
    labels)`` with shuffling seed ``seeds[r]``; all share ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay``, ``precision`` and the test set.

    Equivalent to ``[train_classifier(models[r], *data[r], test_images, test_labels,
    seed=seeds[r], ...) for r in range(R)]`` (:func:`lthbook.training.train_classifier`, the
    paper code's Adam settings) up to float rounding; returns the same dictionaries. Each
    run's ``seconds`` is the batched wall time divided by ``R``.
    """
    batched = BatchedRuns(models)
    R = len(batched)
    if len(data) != R or len(seeds) != R:
        raise ValueError(f"data and seeds must have one entry per model ({R}); got {len(data)} and {len(seeds)}")
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_float("lr", lr, 0.0, low_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, 0.0)
    seeds = [check_int(f"seeds[{r}]", s, 0) for r, s in enumerate(seeds)]
    _precision(precision)
    sizes = []
    for r, (X, y) in enumerate(data):
        if y.shape != (X.shape[0],):
            raise ValueError(f"data[{r}]: labels must have shape ({X.shape[0]},), got {tuple(y.shape)}")
        sizes.append(X.shape[0])
    device = data[0][0].device
    batched.refresh_masks()
    optimizer = adam(batched.parameters(), lr, weight_decay)
    gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    epoch, pos = [0] * R, [0] * R
    orders: list[torch.Tensor | None] = [None] * R
    totals = [torch.zeros((), device=device) for _ in range(R)]
    accs: list[list[float]] = [[] for _ in range(R)]
    losses: list[list[float]] = [[] for _ in range(R)]
    start = time.perf_counter()
    for m in batched.models:
        m.train()
    while True:
        active = [r for r in range(R) if epoch[r] < epochs]
        if not active:
            break
        groups: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for r in active:
            if pos[r] == 0:
                orders[r] = torch.randperm(sizes[r], generator=gens[r]).to(device)
            idx = orders[r][pos[r]:pos[r] + batch_size]
            groups.setdefault(idx.numel(), []).append((r, idx))
        optimizer.zero_grad(set_to_none=True)
        total_loss = None
        for members in groups.values():
            runs = [r for r, _ in members]
            xb = torch.stack([data[r][0].index_select(0, idx) for r, idx in members], dim=1)
            yb = torch.stack([data[r][1].index_select(0, idx) for r, idx in members])  # (g, B)
            with autocast_context(precision, device):
                out = batched.forward(xb, runs)
            per_run = F.cross_entropy(out.float().reshape(-1, out.shape[-1]), yb.reshape(-1),
                                      reduction="none").view(len(runs), -1).mean(dim=1)
            total_loss = per_run.sum() if total_loss is None else total_loss + per_run.sum()
            detached = per_run.detach()
            for j, (r, idx) in enumerate(members):
                totals[r] += detached[j] * idx.numel()
        total_loss.backward()
        optimizer.step()
        finished = []
        for r in active:
            pos[r] += batch_size
            if pos[r] >= sizes[r]:
                losses[r].append(float(totals[r]) / sizes[r])
                totals[r] = torch.zeros((), device=device)
                pos[r], epoch[r] = 0, epoch[r] + 1
                finished.append(r)
        if finished:
            for r, acc in zip(finished, batched.accuracies(test_images, test_labels, finished, precision)):
                accs[r].append(acc)
    batched.sync()
    seconds = (time.perf_counter() - start) / R
    return [{"test_accuracy": accs[r], "best_test_accuracy": max(accs[r]), "final_test_accuracy": accs[r][-1],
             "train_loss": losses[r], "seconds": seconds} for r in range(R)]


def _student_weight(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The trainable ``W^T`` of a :class:`lthbook.networks.OneHiddenLayerStudent` (``weight_orig``
    when it carries a pruning mask, else ``weight``) and its mask (``None`` when unmasked)."""
    hidden = getattr(model, "hidden", None)
    if not isinstance(hidden, nn.Linear) or hidden.bias is not None:
        raise ValueError(f"models must be OneHiddenLayerStudent networks (lthbook.networks), got {type(model).__name__}")
    if hasattr(hidden, "weight_orig"):
        return hidden.weight_orig, hidden.weight_mask
    return hidden.weight, None


def train_regressions_batched(
    models: Sequence[nn.Module],
    data: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    lr: float = 1e-2,
    threads: int | None = 1,
) -> list[dict[str, Any]]:
    """Train ``R = len(models)`` synthetic students (Figure 6) in lockstep: run ``r`` fits
    ``g(x; W_r)`` of Eq. (3)-(4) to its own ``data[r] = (X, y, X_test, y_test)`` by full-batch
    Adam on the squared loss ``(1/2N) sum_n (g(x_n; W_r) - y_n)^2`` (the empirical risk of
    Eq. 2) for ``steps`` steps with step size ``lr``.

    The runs whose ``X`` (``N x d``) and ``X_test`` have the same shapes train as one batched
    model: their ``W_r^T`` (each ``K x d``, masked by its own pruning mask ``M_r``) are stacked
    into one ``(R, K, d)`` tensor, every product is one ``torch.bmm`` over the run axis (with
    the inputs stored as ``X_r^T``, so that ``N`` is the contiguous axis of every product), and the
    loss is the sum of the runs' own losses, so run ``r``'s gradient is exactly that of its own
    risk. One Adam holds the stacked tensor; Adam is elementwise and every run steps at every
    step, so this is ``R`` independent Adams. Afterwards each model's ``weight_orig`` (or
    ``weight``) holds its trained values, and a masked model's ``weight`` is ``weight_orig *
    weight_mask`` as after a forward pass (:func:`lthbook.imp.prune_layerwise` ranks by it).

    Equivalent to ``[train_regression(models[r], *data[r], steps=steps, lr=lr) for r in
    range(R)]`` (:func:`lthbook.training.train_regression`) up to float rounding (the batched
    products sum in another order; the tests compare them) and returns the same dictionaries;
    each run's ``seconds`` is its group's wall time divided by the group's size. ``threads``:
    torch CPU threads for the training (``None`` keeps the current setting).
    """
    from .training import relative_error, torch_threads

    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of OneHiddenLayerStudent networks")
    if len(data) != len(models):
        raise ValueError(f"data must have one (X, y, X_test, y_test) per model ({len(models)}); got {len(data)}")
    steps = check_int("steps", steps, 1)
    lr = check_float("lr", lr, 0.0, low_inclusive=False)
    params = [_student_weight(m) for m in models]
    groups: dict[tuple, list[int]] = {}
    for r, ((w, _), (X, y, Xt, yt)) in enumerate(zip(params, data)):
        if X.ndim != 2 or X.shape[1] != w.shape[1] or y.shape != (X.shape[0],):
            raise ValueError(f"data[{r}]: X must be (N, {w.shape[1]}) and y (N,); got {tuple(X.shape)} and "
                             f"{tuple(y.shape)}")
        if Xt.ndim != 2 or Xt.shape[1] != w.shape[1] or yt.shape != (Xt.shape[0],):
            raise ValueError(f"data[{r}]: X_test must be (n, {w.shape[1]}) and y_test (n,); got {tuple(Xt.shape)} "
                             f"and {tuple(yt.shape)}")
        groups.setdefault((tuple(w.shape), tuple(X.shape), tuple(Xt.shape), params[r][1] is None), []).append(r)
    out: list[dict[str, Any]] = [{} for _ in models]
    for model in models:
        model.train()
    with torch_threads(threads):
        for members in groups.values():
            start = time.perf_counter()
            # inputs stored transposed, (R, d, N): the products W_r X_r^T then have N as their
            # contiguous axis, which bench/bench_fig6.py measured ~3x faster than X_r W_r^T
            X = torch.stack([data[r][0] for r in members]).transpose(1, 2).contiguous()  # (R, d, N)
            y = torch.stack([data[r][1] for r in members])  # (R, N)
            masks = None if params[members[0]][1] is None else torch.stack([params[r][1] for r in members])
            W = torch.stack([params[r][0].detach() for r in members]).requires_grad_(True)  # (R, K, d)
            optimizer = torch.optim.Adam([W], lr=lr)

            def predict(inputs_t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
                effective = weights if masks is None else weights * masks
                return torch.relu(torch.bmm(effective, inputs_t)).mean(dim=1)  # (R, K, n) -> (R, n)

            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss = (0.5 * ((predict(X, W) - y) ** 2).mean(dim=1)).sum()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                Xt = torch.stack([data[r][2] for r in members]).transpose(1, 2).contiguous()
                test_pred, train_pred = predict(Xt, W), predict(X, W)
                for j, r in enumerate(members):
                    params[r][0].copy_(W[j])
                    if masks is not None:  # as the pruning hook does at a forward pass: IMP ranks by this
                        models[r].hidden.weight = params[r][0] * params[r][1]
                    out[r] = {"test_error": relative_error(test_pred[j], data[r][3]),
                              "train_error": relative_error(train_pred[j], data[r][1])}
            seconds = (time.perf_counter() - start) / len(members)
            for r in members:
                out[r]["seconds"] = seconds
    return out


__all__ = ["BatchedRuns", "train_classifiers_batched", "train_regressions_batched"]
