"""The paper's five attacks through foolbox 3.3.4, on models whose inputs lie in [-1, 1].

Epsilons are given in the field's usual [0, 1] pixel units (0.3 for MNIST, 8/255 for
CIFAR-10) and doubled internally, because the models see [-1, 1]. FGSM, BIM, PGD and MIM
are L-infinity attacks; VAM (virtual adversarial, Miyato et al.) has an L2 budget.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .choices import AttackName

LOG = logging.getLogger(__name__)
BOUNDS = (-1.0, 1.0)
# The models' input range is twice as wide as the [0, 1] range epsilons are quoted in.
PIXEL_SCALE = BOUNDS[1] - BOUNDS[0]


@dataclass(frozen=True)
class AttackSpec:
    """One attack configuration.

    Args:
        name: which attack.
        epsilon: budget in [0, 1] pixel units (L-inf, or L2 for VAM).
        steps: iterations for BIM, PGD, MIM and VAM's power iterations (FGSM ignores it).
        rel_stepsize: step size relative to epsilon for the iterative L-inf attacks.
    """

    name: AttackName
    epsilon: float
    steps: int = 10
    rel_stepsize: float | None = None

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon}")
        if self.steps < 1:
            raise ValueError(f"attack steps must be at least 1, got {self.steps}")


def _foolbox_attack(spec: AttackSpec) -> Any:
    import foolbox as fb

    kwargs: dict[str, Any] = {"steps": spec.steps}
    if spec.rel_stepsize is not None:
        kwargs["rel_stepsize"] = spec.rel_stepsize
    if spec.name is AttackName.FGSM:
        return fb.attacks.LinfFastGradientAttack()
    if spec.name is AttackName.BIM:
        return fb.attacks.LinfBasicIterativeAttack(**kwargs)
    if spec.name is AttackName.PGD:
        return fb.attacks.LinfPGD(**kwargs)
    if spec.name is AttackName.MIM:
        return fb.attacks.LinfMomentumIterativeFastGradientMethod(**kwargs)
    return fb.attacks.VirtualAdversarialAttack(steps=spec.steps)


# Foolbox's VAM takes a finite difference of size xi = 1e-6. Where the classifier is so sure
# that its float32 softmax does not move within xi, the KL gradient is exactly zero and
# foolbox divides by its zero norm: the image comes back NaN (seen on the Fashion-MNIST test
# set). Those images are attacked again with a wider difference; an image whose output moves
# under neither has no virtual adversarial direction, and is returned unperturbed.
VAM_RETRY_XI = 1e-2


def _vam_retry(
    fmodel: Any, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor, spec: AttackSpec
) -> torch.Tensor:
    import foolbox as fb

    vanished = ~torch.isfinite(adv).flatten(1).all(dim=1)
    if not vanished.any():
        return adv
    LOG.warning(
        "VAM: %d images had no KL gradient at xi=1e-6; retried at xi=%g", int(vanished.sum()), VAM_RETRY_XI
    )
    retry = fb.attacks.VirtualAdversarialAttack(steps=spec.steps, xi=VAM_RETRY_XI)
    _, again, _ = retry(fmodel, x[vanished], y[vanished], epsilons=spec.epsilon * PIXEL_SCALE)
    still_vanished = ~torch.isfinite(again).flatten(1).all(dim=1)
    again[still_vanished] = x[vanished][still_vanished]
    adv = adv.clone()
    adv[vanished] = again.to(adv.dtype)
    return adv


def run_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: AttackSpec,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Return adversarial versions of ``images`` (in [-1, 1]) against ``model``.

    The model is put in eval mode; its randomness (PGD's random start) comes from torch's
    global generator, which the entry point seeds.
    """
    import foolbox as fb

    if images.min() < BOUNDS[0] or images.max() > BOUNDS[1]:
        raise ValueError("images must lie in [-1, 1]; rescale uint8 pixels with x / 127.5 - 1")
    device = torch.device(device)
    model = model.to(device).eval()
    fmodel = fb.PyTorchModel(model, bounds=BOUNDS, device=device)
    attack = _foolbox_attack(spec)
    epsilon = spec.epsilon * PIXEL_SCALE
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        _, clipped, _ = attack(fmodel, x, y, epsilons=epsilon)
        if spec.name is AttackName.VAM:
            clipped = _vam_retry(fmodel, x, y, clipped, spec)
        out.append(clipped.detach())
    return torch.cat(out).clamp(*BOUNDS)
