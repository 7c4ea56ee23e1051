"""Attacks on the deployed defence (Athalye et al. 2018; Carlini et al. 2019; Tramer et al. 2020).

:class:`DefendedModel` turns ``classifier(clean(x))`` into a differentiable model that any
attack library can run: its forward pass is the deployed cleaning, and its gradient is one
of BPDA (the identity), the exact gradient unrolled through all m steps, the last k steps
only, or the unrolled gradient of a smoother surrogate cleaning. APGD and Square come from
torchattacks; the attacks no library has are here: the detector-aware hinge and the
on-manifold (latent) attack of Athalye et al. on Defense-GAN.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import BOUNDS, PIXEL_SCALE
from .choices import Choice
from .cleaning import Cowboy

FRESH_SEED = 1_000_003  # the seed a fresh query draws when the deployer does not fix one


class Gradient(Choice, what="gradient"):
    """How an attack differentiates through the cleaning."""

    BPDA = "bpda"
    UNROLLED = "unrolled"
    TRUNCATED = "truncated"
    SURROGATE = "surrogate"


class _StraightThrough(torch.autograd.Function):
    """BPDA: the value of the real cleaning, the gradient of the identity."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cleaned: torch.Tensor) -> torch.Tensor:
        return cleaned.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def differentiable_clean(
    defense: Cowboy,
    x: torch.Tensor,
    *,
    seed: int,
    gradient: Gradient = Gradient.BPDA,
    last_k: int = 5,
    surrogate: Cowboy | None = None,
) -> torch.Tensor:
    """The deployed cleaning of ``x`` (its value), with the gradient ``gradient`` names.

    The surrogate's value is discarded: only its gradient is used, so that what the attack
    sees is always the real cleaning.
    """
    if gradient is Gradient.UNROLLED:
        return defense.clean_unrolled(x, seed=seed)
    if gradient is Gradient.TRUNCATED:
        return defense.clean_unrolled(x, seed=seed, last=last_k)
    real = defense.clean(x.detach(), seed=seed).to(x.dtype)
    if gradient is Gradient.BPDA:
        return _StraightThrough.apply(x, real)  # type: ignore[no-any-return]
    if surrogate is None:
        raise ValueError("the surrogate gradient needs a surrogate defence")
    smooth = surrogate.clean_unrolled(x, seed=seed)
    return real + (smooth - smooth.detach())


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model inputs -> [0, 1] pixels, the attack libraries' convention."""
    return (x - BOUNDS[0]) / PIXEL_SCALE


def from_unit(x: torch.Tensor) -> torch.Tensor:
    return x * PIXEL_SCALE + BOUNDS[0]


class DefendedModel(nn.Module):
    """``classifier(clean(x))`` on [0, 1] pixels, differentiable for attack libraries.

    Args:
        classifier: the deployed classifier (inputs in [-1, 1]).
        defense: the deployed :class:`Cowboy`; None attacks the bare classifier.
        gradient: how to differentiate through the cleaning.
        seed: the deployer's fixed seed; None draws a fresh seed for every query.
        last_k: steps kept in the graph by the truncated gradient.
        surrogate: the smoother cleaning whose gradient :attr:`Gradient.SURROGATE` uses.
    """

    def __init__(
        self,
        classifier: nn.Module,
        defense: Cowboy | None,
        *,
        gradient: str | Gradient = Gradient.BPDA,
        seed: int | None = 0,
        last_k: int = 5,
        surrogate: Cowboy | None = None,
    ) -> None:
        super().__init__()
        self.classifier, self.defense, self.surrogate = classifier.eval(), defense, surrogate
        self.gradient, self.seed, self.last_k = Gradient.parse(gradient), seed, last_k
        self.queries = 0
        self.eval()

    def train(self, mode: bool = True) -> DefendedModel:
        """Always eval: attack libraries toggle the mode, but the deployed models are frozen."""
        return super().train(False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = from_unit(pixels)
        if self.defense is not None:
            self.queries += 1
            # A fresh query never reuses the seed that evaluates fresh-seed robustness.
            seed = self.seed if self.seed is not None else FRESH_SEED + 7919 * self.queries
            x = differentiable_clean(
                self.defense,
                x,
                seed=seed,
                gradient=self.gradient,
                last_k=self.last_k,
                surrogate=self.surrogate,
            )
        logits: torch.Tensor = self.classifier(x)
        return logits


def apgd(
    model: DefendedModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int,
    restarts: int,
    loss: str = "ce",
    eot: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """torchattacks' APGD (Croce & Hein 2020) with L-inf budget ``epsilon`` in [0, 1] pixel
    units; restarts attack only the images not yet broken, and the best iterate is kept."""
    import torchattacks

    if x.shape[0] == 0:
        return x
    attack = torchattacks.APGD(
        model, norm="Linf", eps=epsilon, steps=steps, n_restarts=restarts, loss=loss, eot_iter=eot, seed=seed
    )
    return from_unit(attack(to_unit(x), y)).detach()


def square(
    model: DefendedModel, x: torch.Tensor, y: torch.Tensor, *, epsilon: float, queries: int, seed: int = 0
) -> torch.Tensor:
    """torchattacks' Square (Andriushchenko et al. 2020): gradient-free, for the masking check."""
    import torchattacks

    if x.shape[0] == 0:
        return x
    attack = torchattacks.Square(model, norm="Linf", eps=epsilon, n_queries=queries, n_restarts=1, seed=seed)
    return from_unit(attack(to_unit(x), y)).detach()


def single_step(model: DefendedModel, x: torch.Tensor, y: torch.Tensor, *, epsilon: float) -> torch.Tensor:
    """One full-size signed-gradient step (FGSM through the model), for Carlini et al.'s check."""
    pixels = to_unit(x).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(pixels), y, reduction="sum"), pixels)
    return from_unit((pixels + epsilon * grad.sign()).clamp(0, 1)).detach()


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(*BOUNDS)


def hinge_attack(
    classifier: nn.Module,
    discriminator: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    target_score: float,
    margin: float = 0.05,
    steps: int = 100,
    weight: float = 10.0,
    seed: int = 0,
) -> torch.Tensor:
    """Detector-aware PGD: fool the bare classifier while D scores the input at least
    ``target_score + margin``, through a hinge on D's logit. Keeps, per image, the last
    iterate that does both, else the last iterate (Madry step 2.5 eps / steps, random start)."""
    eps, alpha = epsilon * PIXEL_SCALE, 2.5 * epsilon * PIXEL_SCALE / steps
    target = float(torch.logit(torch.tensor(min(target_score + margin, 1 - 1e-6), dtype=torch.float64)))
    gen = torch.Generator().manual_seed(seed)
    x_adv = _project(x + (torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1) * eps, x, eps)
    best, found = x_adv.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(steps + 1):
        point = x_adv.detach().requires_grad_(True)
        logits, d_logit = classifier(point), discriminator(point).reshape(-1)
        success = (logits.argmax(1) != y) & (d_logit >= target)
        best[success] = point[success].detach()
        found |= success
        objective = F.cross_entropy(logits, y, reduction="sum") - weight * F.relu(target - d_logit).sum()
        (grad,) = torch.autograd.grad(objective, point)
        x_adv = _project(x_adv + alpha * grad.sign(), x, eps)
    best[~found] = x_adv[~found]
    return best.detach()


def latent_attack(
    classifier: nn.Module,
    defense: Cowboy,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 200,
    refine_steps: int = 20,
    weight: float = 10.0,
    seed: int = 0,
) -> torch.Tensor:
    """On-manifold attack (Athalye et al. 2018 on Defense-GAN): find z with G(z) misclassified
    and close to x, then the x' in the budget whose cleaning lands near G(z) (start at G(z)
    clipped to the budget, then BPDA steps on ||clean(x') - G(z)||^2)."""
    if x.shape[0] == 0:
        return x
    eps = epsilon * PIXEL_SCALE
    generator = defense.generator
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(x.shape[0], defense.latent_dim, generator=gen).to(x.device).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        fake = generator(z)
        logits = classifier(fake)
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -1e9).max(1).values
        loss = (fake - x).square().flatten(1).sum(1) + weight * F.relu(true - other + 1.0)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    with torch.no_grad():
        goal = generator(z).detach()
        x_adv = _project(goal, x, eps)
    alpha = eps / 4
    for step in range(refine_steps):
        point = x_adv.detach().requires_grad_(True)
        cleaned = differentiable_clean(defense, point, seed=seed + step, gradient=Gradient.BPDA)
        (grad,) = torch.autograd.grad((cleaned - goal).square().sum(), point)
        x_adv = _project(x_adv - alpha * grad.sign(), x, eps)
    return x_adv.detach()
