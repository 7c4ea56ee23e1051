"""Adaptive white-box attacks on the whole defended pipeline (Athalye et al., 2018).

The cleaning step (Algorithm 1) is an iterative optimisation, so its exact gradient is
unavailable in practice. BPDA treats it as the identity on the backward pass, and EOT
averages the gradient over the random z0 of several cleanings. The detector-aware variant
also ascends log D(x), so that the adversarial input evades the detection threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import BOUNDS, PIXEL_SCALE
from .cleaning import Cowboy


@dataclass(frozen=True)
class AdaptiveSpec:
    """An adaptive L-inf attack on cleaning + classifier.

    Args:
        epsilon: L-inf budget in [0, 1] pixel units.
        steps: PGD iterations (1 gives a BPDA-FGSM).
        rel_stepsize: step size relative to epsilon (2.5 / steps as in Madry et al. if None).
        eot: cleanings (random z0) averaged per gradient (expectation over transformation).
        detector_weight: weight of +log D(x) in the attack objective; 0 ignores the detector.
        random_start: start from a uniform point in the epsilon ball.
    """

    epsilon: float
    steps: int = 20
    rel_stepsize: float | None = None
    eot: int = 1
    detector_weight: float = 0.0
    random_start: bool = True

    def __post_init__(self) -> None:
        if not self.epsilon > 0 or self.steps < 1 or self.eot < 1 or self.detector_weight < 0:
            raise ValueError(f"invalid adaptive attack {self}")


def bpda_eot_pgd(
    classifier: nn.Module,
    defense: Cowboy | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: AdaptiveSpec,
    *,
    seed: int = 0,
) -> torch.Tensor:
    """PGD against ``classifier(defense.clean(x))`` with BPDA (identity backward) and EOT.

    With ``defense=None`` it is plain PGD on the classifier (the non-adaptive baseline).
    """
    device = images.device
    classifier.eval()
    eps = spec.epsilon * PIXEL_SCALE
    alpha = eps * (spec.rel_stepsize if spec.rel_stepsize is not None else 2.5 / spec.steps)
    gen = torch.Generator().manual_seed(seed)
    x_adv = images.clone()
    if spec.random_start:
        noise = (torch.rand(images.shape, generator=gen) * 2 - 1).to(device) * eps
        x_adv = (images + noise).clamp(*BOUNDS)
    for step in range(spec.steps):
        grad = torch.zeros_like(images)
        for k in range(spec.eot):
            if defense is None:
                point = x_adv.detach().requires_grad_(True)
                loss = F.cross_entropy(classifier(point), labels, reduction="sum")
                grad += torch.autograd.grad(loss, point)[0]
                break
            # BPDA: run the real cleaning forward, take the gradient at its output, and pass
            # it straight through to the input (d clean(x) / dx ~ I).
            cleaned = defense.clean(x_adv.detach(), seed=seed + 1000 * step + k).to(device)
            cleaned.requires_grad_(True)
            loss = F.cross_entropy(classifier(cleaned), labels, reduction="sum")
            grad += torch.autograd.grad(loss, cleaned)[0]
        if spec.detector_weight > 0 and defense is not None:
            point = x_adv.detach().requires_grad_(True)
            log_d = F.logsigmoid(defense.discriminator(point).reshape(-1)).sum()
            grad += spec.detector_weight * spec.eot * torch.autograd.grad(log_d, point)[0]
        with torch.no_grad():
            x_adv = x_adv + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, images - eps), images + eps).clamp(*BOUNDS)
    return x_adv.detach()


def attack_kinds(epsilon: float, settings: dict[str, Any], *, defended: bool) -> dict[str, AdaptiveSpec]:
    """The attacks run at one epsilon: PGD on the classifier; with a defence, BPDA+EOT and its
    detector-aware variant; at ``check_epsilon``, Carlini et al.'s single-step and
    double-steps checks."""
    steps, eot = settings["steps"], settings["eot"]
    kinds = {"standard": AdaptiveSpec(epsilon, steps=steps)}
    if defended:
        kinds["adaptive"] = AdaptiveSpec(epsilon, steps=steps, eot=eot)
        weight = settings["detector_weight"]
        kinds["adaptive_detector_aware"] = AdaptiveSpec(epsilon, steps=steps, eot=eot, detector_weight=weight)
    check = settings.get("check_epsilon")
    if check is not None and abs(epsilon - check) < 1e-12:
        kinds["check_single_step"] = AdaptiveSpec(
            epsilon, steps=1, rel_stepsize=1.0, eot=eot, random_start=False
        )
        kinds["check_double_steps"] = AdaptiveSpec(epsilon, steps=2 * steps, eot=eot)
    return kinds


def defended_predictions(
    classifier: nn.Module, defense: Cowboy | None, images: torch.Tensor, *, seed: int = 0
) -> torch.Tensor:
    """Predictions of the classifier after cleaning every input (or none, for ``defense=None``)."""
    classifier.eval()
    inputs = images if defense is None else defense.clean(images, seed=seed).to(images.device)
    with torch.no_grad():
        predictions: torch.Tensor = classifier(inputs).argmax(dim=1)
    return predictions
