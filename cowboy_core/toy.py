"""The two-Gaussians toy of sections 3.1-3.3 (Figures 1 and 2): data, MLPs and FGSM in data units."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from .models import Arch


def two_gaussians(
    n: int, *, seed: int, center: float = 3.0, std: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's toy (Figures 1-2): equal mixture of N((c, c), std^2 I) and N((-c, -c), std^2 I).

    Returns points of shape (n, 2) and labels (0 for the (-c, -c) mode, 1 for (c, c)).
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    centers = (labels.to(torch.float32) * 2 - 1).unsqueeze(1) * center
    points = centers + std * torch.randn(n, 2, generator=gen)
    return points, labels


def _mlp(sizes: list[int], final: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class ToyClassifier(nn.Module):
    """MLP classifier for 2-D points (Figure 1)."""

    def __init__(self, *, hidden: int = 32, num_classes: int = 2):
        super().__init__()
        self.arch: Arch = {"kind": "toy_classifier", "hidden": hidden, "num_classes": num_classes}
        self.net = _mlp([2, hidden, hidden, num_classes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class ToyGenerator(nn.Module):
    """MLP generator for the two-Gaussians toy."""

    def __init__(self, *, latent_dim: int = 2, hidden: int = 64):
        super().__init__()
        self.arch: Arch = {"kind": "toy_generator", "latent_dim": latent_dim, "hidden": hidden}
        self.latent_dim = latent_dim
        self.net = _mlp([latent_dim, hidden, hidden, 2])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # type: ignore[no-any-return]


class ToyDiscriminator(nn.Module):
    """MLP discriminator for the two-Gaussians toy; returns logits (Figure 2)."""

    def __init__(self, *, hidden: int = 64):
        super().__init__()
        self.arch: Arch = {"kind": "toy_discriminator", "hidden": hidden}
        self.net = _mlp([2, hidden, hidden, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # type: ignore[no-any-return]


def fgsm(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Single-step FGSM in the model's own units, for unbounded data such as the toy.

    ``epsilon`` is in the inputs' units, not [0, 1] pixel units.
    """
    model.eval()
    x = inputs.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    (grad,) = torch.autograd.grad(loss, x)
    adversarial = inputs + epsilon * grad.sign()
    return adversarial.clamp(*bounds) if bounds is not None else adversarial.detach()
