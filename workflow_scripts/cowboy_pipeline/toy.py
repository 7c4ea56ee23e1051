"""The two-Gaussians toy of sections 3.1-3.3 (Figures 1 and 2): data, MLPs, FGSM in data units,
and the run that measures it end to end."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cowboy_core.cleaning import Cowboy
from cowboy_core.detection import discriminator_logits, roc_auc, scores_from_logits
from cowboy_core.execution import Execution
from cowboy_core.models import Arch, freeze
from cowboy_core.settings import Settings
from cowboy_core.training import GANTrainer, predict, train_classifier


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


CENTERS = torch.tensor([[-3.0, -3.0], [3.0, 3.0]])


@dataclass
class ToyResult:
    classifier: ToyClassifier
    generator: ToyGenerator
    discriminator: ToyDiscriminator
    points: torch.Tensor
    labels: torch.Tensor
    perturbed: torch.Tensor
    cleaned: torch.Tensor
    metrics: dict[str, float]


def distance_to_modes(points: torch.Tensor) -> torch.Tensor:
    """Distance of each point to the nearer Gaussian centre: a proxy for off-manifold-ness."""
    return torch.cdist(points, CENTERS).min(dim=1).values


def run_toy(
    *,
    samples: int,
    classifier_steps: int,
    gan_steps: int,
    epsilon: float,
    sigma: float,
    cleaning_steps: int,
    cleaning_lr: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> ToyResult:
    """Train a classifier and a GAN on the toy, FGSM-perturb held-out points, clean them."""
    points, labels = two_gaussians(samples, seed=seed)
    test_points, test_labels = two_gaussians(max(200, samples // 4), seed=seed + 1)
    classifier = ToyClassifier()
    train_classifier(
        classifier, points, labels, steps=classifier_steps, batch_size=128, lr=1e-2, seed=seed, device=device
    )
    generator, discriminator = ToyGenerator(), ToyDiscriminator()
    trainer = GANTrainer(
        generator, discriminator, lr=1e-3, beta1=0.5, batch_size=128, seed=seed, device=device
    )
    trainer.train_until(points, gan_steps)
    freeze(classifier)
    freeze(generator)
    freeze(discriminator)
    x, y = test_points.to(device), test_labels.to(device)
    perturbed = fgsm(classifier, x, y, epsilon)
    defense = Cowboy(
        generator,
        discriminator,
        Settings(sigma=sigma, steps=cleaning_steps, lr=cleaning_lr, restarts=4),
        execution=Execution(device=device, fold_bn=False),
    )
    cleaned = defense.clean(perturbed, seed=seed)
    real_scores = scores_from_logits(discriminator_logits(discriminator, x, device=device))
    adv_scores = scores_from_logits(discriminator_logits(discriminator, perturbed, device=device))
    metrics = {
        "accuracy_real": float((predict(classifier, x, device=device) == y).float().mean()),
        "accuracy_perturbed": float((predict(classifier, perturbed, device=device) == y).float().mean()),
        "accuracy_cleaned": float((predict(classifier, cleaned, device=device) == y).float().mean()),
        "mean_d_real": float(real_scores.mean()),
        "mean_d_perturbed": float(adv_scores.mean()),
        "roc_auc": roc_auc(real_scores, adv_scores),
        "distance_real": float(distance_to_modes(x.cpu()).mean()),
        "distance_perturbed": float(distance_to_modes(perturbed.cpu()).mean()),
        "distance_cleaned": float(distance_to_modes(cleaned.cpu()).mean()),
    }
    return ToyResult(
        classifier, generator, discriminator, x.cpu(), y.cpu(), perturbed.cpu(), cleaned.cpu(), metrics
    )


@torch.no_grad()
def evaluate_on_grid(
    model: torch.nn.Module, extent: float = 8.0, resolution: int = 161
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid coordinates and sigmoid/softmax outputs of a 2-D model (class-1 or D probability)."""
    axis = torch.linspace(-extent, extent, resolution)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    flat = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    device = next(model.parameters()).device
    out = model(flat.to(device)).cpu()
    values = out.softmax(dim=1)[:, 1] if out.dim() == 2 else torch.sigmoid(out)
    return gx.numpy(), gy.numpy(), values.reshape(resolution, resolution).numpy()
