"""How the paper's code trains and rewinds, re-implemented for comparison only.

The paper's Figure 7 was produced with a public IMP implementation (its footnote 4).
Two of its steps are reproduced here, in our own code, because this book needs them as
*references*, never for its results:

* :func:`reference_train_step` -- one training step as that code does it: after the
  backward pass every weight tensor and its gradient are copied to numpy, the gradient
  is set to zero wherever the weight is below a small positive ``eps``, and copied back
  to the device before the optimizer step. The benchmark (``bench/bench_imp.py``) times
  it against :func:`lthbook.training.train_classifier`. Note the test ``w < eps``: it is
  meant to freeze the pruned (zero) weights but also freezes every *negative* weight.
* :func:`reference_rewind` -- that code's rewind: weights are rebuilt from the saved
  initial values times the mask, but each bias parameter is made to *share storage*
  with the saved initial bias, so the next training round overwrites the saved
  initialization.

The tests run :func:`lthbook.imp.check_training_invariants` and
:func:`lthbook.imp.check_rewind` on these two functions to show that the checks catch
both bugs, and on :mod:`lthbook.imp` to show that the book's IMP has neither.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

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


__all__ = ["EPS", "reference_train_step", "reference_rewind"]
