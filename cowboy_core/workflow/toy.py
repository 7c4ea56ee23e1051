"""The two-Gaussians toy of sections 3.1-3.3 (Figures 1 and 2), measured end to end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cleaning import Cowboy
from ..detection import discriminator_logits, roc_auc, scores_from_logits
from ..fastpath import Execution
from ..models import freeze
from ..toy import ToyClassifier, ToyDiscriminator, ToyGenerator, fgsm, two_gaussians
from ..training import GANTrainer, predict, train_classifier

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
        sigma=sigma,
        steps=cleaning_steps,
        lr=cleaning_lr,
        restarts=4,
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
