"""The networks pruned in §5.2, in plain torch, selected by name.

* ``"student"`` -- :class:`OneHiddenLayerStudent`, the network of Eq. (1) with a dense
  first layer ``W`` (``K`` neurons, ``d`` inputs, no bias, ReLU, output the average of
  the ``K`` neurons). IMP on it gives Figure 6.
* ``"lenet5"`` -- :class:`LeNet5`, the classic LeNet-5 of LeCun et al. (1998) in its usual
  modern form (ReLU, max pooling, 61 706 weights): the book's default for Figure 7,
  affordable on a CPU.
* ``"lenet5-paper-code"`` -- :class:`PaperCodeLeNet5`, the network the paper's code
  calls ``LeNet5`` (two 3x3 convolutions with 64 channels, one max pooling, three
  fully connected layers, about 3.3 million weights): the network behind the paper's
  Figure 7, for a GPU.

:func:`build_network` creates any of them from its name.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ._validation import check_int


class OneHiddenLayerStudent(nn.Module):
    """``g(x; W) = (1/K) sum_j phi(w_j^T x)`` with a dense ``W`` (the student with ``r = d``).

    ``self.hidden.weight`` holds ``W^T`` (shape ``(K, d)``); pruning it by a mask gives the
    student of Eq. (3)-(4) with index sets ``Omega_j`` = the unpruned entries of row ``j``.
    The initial weights are PyTorch's default for a linear layer (uniform in
    ``[-1/sqrt(d), 1/sqrt(d)]``).
    """

    def __init__(self, d: int, K: int) -> None:
        super().__init__()
        self.d = check_int("d", d, 1)
        self.K = check_int("K", K, 1)
        self.hidden = nn.Linear(self.d, self.K, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``g(x_n; W)``, shape ``(N,)``, for inputs ``x`` of shape ``(N, d)``."""
        return torch.relu(self.hidden(x)).mean(dim=1)


class LeNet5(nn.Module):
    """Classic LeNet-5 (LeCun et al., 1998) for 28x28 MNIST images, modern variant.

    conv 1->6 (5x5, padding 2) - ReLU - max-pool 2 - conv 6->16 (5x5) - ReLU - max-pool 2 -
    fully connected 400->120->84->10 (ReLU between). 61 706 weights and biases.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), shape ``(B, num_classes)``, for images of shape ``(B, 1, 28, 28)``."""
        return self.classifier(self.features(x))


class PaperCodeLeNet5(nn.Module):
    """The network the paper's code (Lottery-Ticket-Hypothesis-in-Pytorch) names ``LeNet5``.

    conv 1->64 (3x3, padding 1) - ReLU - conv 64->64 (3x3, padding 1) - ReLU - max-pool 2 -
    fully connected 12544->256->256->10 (ReLU between). 3 317 450 weights and biases, 97 %
    of them in the first fully connected layer. Initialised as in that code: Xavier-normal weights and
    standard normal biases.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 14 * 14, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, num_classes),
        )
        # the initialization of the paper's code: Xavier-normal weights, standard normal biases
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight)
                nn.init.normal_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), shape ``(B, num_classes)``, for images of shape ``(B, 1, 28, 28)``."""
        return self.classifier(self.features(x))


#: Constructors of the networks, by name (see the module docstring).
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "student": OneHiddenLayerStudent,
    "lenet5": LeNet5,
    "lenet5-paper-code": PaperCodeLeNet5,
}

#: The MNIST networks of Figure 7 (the keys of :data:`NETWORKS` that take images).
IMAGE_NETWORKS: tuple[str, ...] = ("lenet5", "lenet5-paper-code")


def build_network(name: str, **kwargs: Any) -> nn.Module:
    """Create the network called ``name`` (one of :data:`NETWORKS`), passing ``kwargs`` on
    (``d`` and ``K`` for ``"student"``)."""
    if name not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}; got {name!r}")
    return NETWORKS[name](**kwargs)


def count_weights(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (weights and biases)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["OneHiddenLayerStudent", "LeNet5", "PaperCodeLeNet5", "NETWORKS", "IMAGE_NETWORKS", "build_network",
           "count_weights"]
