"""How the paper's code trains and rewinds, re-implemented for comparison only.

The paper's Figure 7 was produced with a public IMP implementation (its footnote 4).
Two of its steps are reproduced here, in our own code, because this book needs them as
*references* and for one side-by-side experiment (§5.2), never for its figures:

* :func:`reference_train_step` -- one training step as that code does it: after the
  backward pass every weight tensor and its gradient are copied to numpy, the gradient
  is set to zero wherever the weight is below a small positive ``eps``, and copied back
  to the device before the optimizer step. The benchmark (``bench/bench_imp.py``) times
  it against :func:`lthbook.training.train_classifier`. Note the test ``w < eps``: it is
  meant to freeze the pruned (zero) weights but also drops the loss gradient of every
  *negative* weight. With the code's optimizer (Adam, weight decay ``1e-4``, which Adam
  adds to the gradient *after* the filter) such a weight is not frozen: it moves towards
  zero at Adam's step size whatever the data say, and may cross it.
* :func:`reference_rewind` -- that code's rewind: weights are rebuilt from the saved
  initial values times the mask, but each bias parameter is made to *share storage*
  with the saved initial bias, so the next training round overwrites the saved
  initialization: from the second rewind on, the biases start where the previous round
  ended.

The same two behaviours as switches of the book's IMP (:data:`QUIRKS`, used by
:mod:`lthbook.imp_experiments` through :func:`sign_gradient_mask` and
:func:`write_biases_into_snapshot`) let §5.2 measure what each costs, with the same
initialization and batch order as the book's IMP.

The tests run :func:`lthbook.imp.check_training_invariants` and
:func:`lthbook.imp.check_rewind` on these functions to show what the checks catch, and on
:mod:`lthbook.imp` to show that the book's IMP has neither behaviour.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .imp import prunable_layers

#: The threshold of the reference gradient mask.
EPS = 1e-6


def reference_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                         images: torch.Tensor, labels: torch.Tensor, eps: float = EPS) -> float:
    """One step of the reference training loop (numpy round trip of every weight gradient).

    ``model`` is a plain network (no ``torch.nn.utils.prune`` masks): pruned weights are
    stored as zeros, as in the reference code. Returns the loss.
    """
    device = images.device
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    for name, p in model.named_parameters():
        if "weight" in name:
            weight = p.data.cpu().numpy()
            grad = p.grad.data.cpu().numpy()
            grad = np.where(weight < eps, 0, grad)
            p.grad.data = torch.from_numpy(grad).to(device)
    optimizer.step()
    return float(loss.item())


def reference_rewind(model: nn.Module, mask: Mapping[str, np.ndarray], initial_state: Mapping[str, torch.Tensor]
                     ) -> None:
    """The reference rewind: ``weight <- mask * initial``; ``bias <- initial`` *by reference*.

    ``initial_state`` is the saved ``state_dict`` copy; ``mask`` maps parameter names of the
    weights to 0/1 numpy arrays.
    """
    for name, p in model.named_parameters():
        if "weight" in name:
            p.data = torch.from_numpy(mask[name] * initial_state[name].cpu().numpy()).to(p.device)
        if "bias" in name:
            p.data = initial_state[name]


#: The paper code's two behaviours that the book's IMP can switch on (``quirks``):
#: ``"sign_mask"`` -- the gradient filter ``w < eps`` (:func:`sign_gradient_mask`);
#: ``"bias_rewind"`` -- biases rewound by reference (:func:`write_biases_into_snapshot`).
QUIRKS: tuple[str, ...] = ("sign_mask", "bias_rewind")


def check_quirks(quirks: Any) -> tuple[str, ...]:
    """``quirks`` as a tuple of distinct names from :data:`QUIRKS` (``ValueError`` otherwise;
    ``TypeError`` when it is not a list or tuple of strings)."""
    if isinstance(quirks, str) or not isinstance(quirks, (list, tuple)):
        raise TypeError(f"quirks must be a list or tuple of names from {QUIRKS}, got {quirks!r}")
    for q in quirks:
        if q not in QUIRKS:
            raise ValueError(f"quirks: unknown behaviour {q!r}; allowed: {', '.join(QUIRKS)}")
    if len(set(quirks)) != len(quirks):
        raise ValueError(f"quirks: each behaviour at most once, got {list(quirks)}")
    return tuple(q for q in QUIRKS if q in quirks)


@contextlib.contextmanager
def sign_gradient_mask(model: nn.Module, eps: float = EPS) -> Iterator[None]:
    """Inside the block, the paper code's gradient filter on a model with ``torch.nn.utils.prune``
    masks (:func:`lthbook.imp.attach_masks`): the gradient reaching ``weight_orig`` is set to zero
    wherever the effective weight ``M * weight_orig`` is below ``eps`` -- every pruned and every
    negative weight -- as :func:`reference_train_step` does on the plain network.

    It is a gradient hook, so it acts before the optimizer: an optimizer with weight decay still
    adds ``weight_decay * w`` afterwards, as in the paper's code. The hooks are removed on exit.
    """
    handles = []
    for _, module in prunable_layers(model):
        if not hasattr(module, "weight_mask"):
            raise ValueError("model has no pruning masks yet: call lthbook.imp.attach_masks(model) first")
        weight = module.weight_orig

        def hook(grad: torch.Tensor, weight: torch.Tensor = weight, module: nn.Module = module) -> torch.Tensor:
            effective = weight.detach() * module.weight_mask
            return torch.where(effective < eps, torch.zeros_like(grad), grad)

        handles.append(weight.register_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def write_biases_into_snapshot(model: nn.Module, snapshot: Mapping[str, torch.Tensor]) -> None:
    """What :func:`reference_rewind`'s shared storage amounts to after a round of training: every
    bias of ``snapshot`` (the saved initialization, keyed like ``model.named_parameters()``) now
    holds the model's trained bias, so the next rewind starts the biases there. Call it after each
    round that followed a rewind (round 1 on); the weights of ``snapshot`` are left alone."""
    for name, p in model.named_parameters():
        if "bias" in name:
            snapshot[name].copy_(p.detach())


__all__ = ["EPS", "QUIRKS", "check_quirks", "reference_train_step", "reference_rewind", "sign_gradient_mask",
           "write_biases_into_snapshot"]
