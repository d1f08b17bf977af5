"""Iterative magnitude pruning (IMP) of Frankle & Carbin (2019), the mechanics of §5.2.

One IMP *level* trains the network from its initialization with the current mask
``M``, then removes a fraction ``p`` (the paper: 20 %) of the *remaining* weights of
every weight tensor, those of smallest magnitude (layer-wise pruning), and rewinds the
surviving weights to their values at initialization. After ``k`` levels a fraction
``(1 - p)^k`` of each tensor remains.

Masks use ``torch.nn.utils.prune``: :func:`attach_masks` re-parametrises every
weight tensor of a ``torch.nn.Linear`` or ``torch.nn.Conv2d`` as
``weight = weight_orig * weight_mask`` (a forward pre-hook), so

* a pruned entry of ``weight`` is exactly zero in every forward pass, whatever the
  optimizer does to ``weight_orig``;
* the gradient reaching ``weight_orig`` is the loss gradient times the mask: every
  unpruned entry -- positive or negative -- is trained, no entry is frozen by its sign;
* :func:`prune_layerwise` calls ``torch.nn.utils.prune.l1_unstructured``, which
  ranks only the still-unpruned entries, so each call removes a fraction of what is left.

Rewinding (:func:`rewind`) *copies* the saved initial values into the parameters
(``torch.Tensor.copy_``); the snapshot (:func:`snapshot_parameters`) holds clones,
never views of live parameters, so training cannot alter it.

:func:`check_training_invariants` and :func:`check_rewind` verify both properties
after the fact; the tests run them against the paper code's step
(:mod:`lthbook.paper_code`) to show that they catch its two bugs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from ._validation import check_float, check_int

#: Fraction of the remaining weights removed per IMP level in the paper (§5.2).
PAPER_PRUNE_FRACTION = 0.2


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs whose ``weight`` IMP prunes: every Linear and Conv2d layer."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to prune")
    return layers


def attach_masks(model: nn.Module) -> nn.Module:
    """Give every prunable weight an all-ones mask (``torch.nn.utils.prune.identity``).

    Afterwards the parameters are ``<layer>.weight_orig`` (and the biases), the masks the
    buffers ``<layer>.weight_mask``. Calling it again is a no-op. Returns ``model``.
    """
    for _, module in prunable_layers(model):
        if not prune.is_pruned(module) or not hasattr(module, "weight_mask"):
            prune.identity(module, "weight")
    return model


def _require_masks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    layers = prunable_layers(model)
    if not all(hasattr(m, "weight_mask") for _, m in layers):
        raise ValueError("model has no pruning masks yet: call attach_masks(model) first")
    return layers


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The current masks ``M`` (clones), keyed ``"<layer>.weight"``; 1 = kept, 0 = pruned."""
    return {f"{n}.weight": m.weight_mask.detach().clone() for n, m in _require_masks(model)}


def set_masks(model: nn.Module, new_masks: Mapping[str, torch.Tensor]) -> None:
    """Load masks (as returned by :func:`masks`) into the model's ``weight_mask`` buffers."""
    layers = _require_masks(model)
    expected = {f"{n}.weight" for n, _ in layers}
    if set(new_masks) != expected:
        raise ValueError(f"masks must have exactly the keys {sorted(expected)}, got {sorted(new_masks)}")
    with torch.no_grad():
        for n, m in layers:
            mask = torch.as_tensor(new_masks[f"{n}.weight"])
            if mask.shape != m.weight_mask.shape:
                raise ValueError(f"mask of {n}.weight must have shape {tuple(m.weight_mask.shape)}, "
                                 f"got {tuple(mask.shape)}")
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError(f"mask of {n}.weight must contain only 0 and 1")
            m.weight_mask.copy_(mask.to(m.weight_mask))
            m.weight = m.weight_orig * m.weight_mask


def effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights the network computes with, ``M ⊙ weight_orig`` (clones), keyed ``"<layer>.weight"``."""
    return {f"{n}.weight": (m.weight_orig * m.weight_mask).detach().clone() for n, m in _require_masks(model)}


def remaining_fraction(model: nn.Module) -> float:
    """Fraction of the prunable weights still unpruned (all layers together)."""
    kept = total = 0
    for _, m in _require_masks(model):
        kept += int(m.weight_mask.sum().item())
        total += m.weight_mask.numel()
    return kept / total


def prune_layerwise(model: nn.Module, fraction: float = PAPER_PRUNE_FRACTION) -> None:
    """One IMP pruning step: in every weight tensor, remove ``round(fraction * n_left)`` of the
    ``n_left`` unpruned entries, those with the smallest ``|weight|`` (``l1_unstructured``)."""
    fraction = check_float("fraction", fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    for _, m in _require_masks(model):
        prune.l1_unstructured(m, "weight", amount=fraction)


def snapshot_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Independent copies (clones) of every parameter, e.g. the initialization ``W(0)`` to rewind to."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def rewind(model: nn.Module, initial: Mapping[str, torch.Tensor]) -> None:
    """Reset every parameter to its value in ``initial`` (from :func:`snapshot_parameters`).

    The values are copied, so the snapshot stays intact however the model trains next;
    pruned entries stay pruned because the masks are not touched.
    """
    params = dict(model.named_parameters())
    if set(params) != set(initial):
        raise ValueError(f"initial must hold exactly the parameters {sorted(params)}, got {sorted(initial)}")
    with torch.no_grad():
        for name, p in params.items():
            if initial[name].shape != p.shape:
                raise ValueError(f"initial[{name!r}] has shape {tuple(initial[name].shape)}, expected {tuple(p.shape)}")
            p.copy_(initial[name])
        for _, m in _require_masks(model):
            m.weight = m.weight_orig * m.weight_mask


@dataclass
class InvariantReport:
    """What :func:`check_training_invariants` found after a round of training.

    Attributes
    ----------
    pruned_nonzero: pruned entries (``M = 0``) whose effective weight is not exactly 0.
    frozen: unpruned entries that did not change at all.
    frozen_negative: the frozen entries whose initial value was negative.
    unpruned: number of unpruned entries.
    """

    pruned_nonzero: int
    frozen: int
    frozen_negative: int
    unpruned: int

    @property
    def ok(self) -> bool:
        """True when no pruned weight is non-zero and no unpruned weight is frozen."""
        return self.pruned_nonzero == 0 and self.frozen == 0


def check_training_invariants(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                              mask: Mapping[str, torch.Tensor]) -> InvariantReport:
    """Compare effective weights before and after training under ``mask``.

    A correct masked training keeps every pruned entry exactly zero and moves every
    unpruned one (given a loss whose gradient reaches every weight, e.g. with weight decay
    or a small network with no dead units). A sign-dependent gradient mask (the paper
    code's first bug) shows up as ``frozen_negative > 0``.
    """
    if set(before) != set(after) or set(before) != set(mask):
        raise ValueError("before, after and mask must have the same keys")
    pruned_nonzero = frozen = frozen_negative = unpruned = 0
    for k in before:
        kept = mask[k] != 0
        same = after[k] == before[k]
        pruned_nonzero += int(((~kept) & (after[k] != 0)).sum())
        frozen += int((kept & same).sum())
        frozen_negative += int((kept & same & (before[k] < 0)).sum())
        unpruned += int(kept.sum())
    return InvariantReport(pruned_nonzero, frozen, frozen_negative, unpruned)


def negative_weight_moves(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                          mask: Mapping[str, torch.Tensor]) -> dict[str, list[int]]:
    """Per weight tensor, ``[negative, crossed, deeper]``: the unpruned entries that were negative
    before a round of training, how many of them are positive after it, and how many are more
    negative than before.

    Under the paper code's gradient filter (:func:`lthbook.paper_code.sign_gradient_mask`) with
    weight decay, a negative weight gets no loss gradient and decays towards zero: ``crossed``
    counts those that went past it, and ``deeper`` only those that crossed, were pushed back by
    the loss gradient they then receive and ended below their start -- a small share, except in
    layers whose weights are within a few Adam steps of zero. With the loss gradient, a negative
    weight moves either way, and ``deeper`` is a large share of ``negative``.
    """
    if set(before) != set(after) or set(before) != set(mask):
        raise ValueError("before, after and mask must have the same keys")
    out = {}
    for k in before:
        negative = (mask[k] != 0) & (before[k] < 0)
        out[k] = [int(negative.sum()), int((negative & (after[k] > 0)).sum()),
                  int((negative & (after[k] < before[k])).sum())]
    return out


def check_rewind(model: nn.Module, initial: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
                 ) -> list[str]:
    """Names of the parameters where a rewind went wrong (empty list: all good).

    ``reference`` is a second, untouched copy of the initialization taken at the same time
    as ``initial``. Checked bitwise: the snapshot ``initial`` still equals ``reference``
    (training did not write into it), and every parameter of ``model`` equals it.
    """
    bad = []
    for name, p in model.named_parameters():
        if not torch.equal(initial[name], reference[name]) or not torch.equal(p.detach(), reference[name]):
            bad.append(name)
    return bad


def remaining_after(levels: int, fraction: float = PAPER_PRUNE_FRACTION) -> float:
    """Nominal fraction of weights left after ``levels`` pruning steps: ``(1 - fraction)^levels``."""
    return (1.0 - check_float("fraction", fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
            ) ** check_int("levels", levels, 0)


def levels_to_reach(target: float, fraction: float = PAPER_PRUNE_FRACTION) -> int:
    """Number of pruning steps until at most ``target`` of the weights remain."""
    target = check_float("target", target, 0.0, 1.0, low_inclusive=False)
    fraction = check_float("fraction", fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    return max(0, math.ceil(math.log(target) / math.log(1.0 - fraction) - 1e-9))


__all__ = ["PAPER_PRUNE_FRACTION", "prunable_layers", "attach_masks", "masks", "set_masks", "effective_weights",
           "remaining_fraction", "prune_layerwise", "snapshot_parameters", "rewind", "InvariantReport",
           "check_training_invariants", "negative_weight_moves", "check_rewind", "remaining_after",
           "levels_to_reach"]
