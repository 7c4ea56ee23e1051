"""Is the deployed cleaning a well-defined, stable, differentiable map? (auto-attack keeps
such checks apart from its attacks, in ``checks.py``; so do we.)

* :func:`chaos_report`: prediction flips when an image is cleaned alone, in another chunking,
  or after a 1e-4 perturbation; the step size times the Hessian's largest eigenvalue along
  the trajectories, against the update rule's stability limit.
* :func:`gradient_report`: the unrolled gradient against finite differences, next to BPDA's
  and the surrogate's.
* :func:`exact_gradient_check`: is the unrolled gradient the derivative of the deployed map?
  In float64, where central differences at a tiny step are not rounding noise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .adaptive import Gradient, differentiable_clean
from .cleaning import Cowboy
from .restarts import chunk_slices
from .updates import rule_for


def largest_curvature(
    defense: Cowboy, z: torch.Tensor, x: torch.Tensor, *, iterations: int = 20
) -> torch.Tensor:
    """Per row, the largest eigenvalue of the Hessian of L in z, by power iteration on
    Hessian-vector products (double backward). GD on z is stable only where lr times it is
    below 2."""
    z = z.detach().requires_grad_(True)
    with defense.execution.kernels():  # eager (double backward) and deterministic, as the cleaning
        (grad,) = torch.autograd.grad(defense.objective(z, x)[0].sum(), z, create_graph=True)
        v = torch.randn(z.shape, generator=torch.Generator().manual_seed(0)).to(z.device)
        v = v / v.norm(dim=1, keepdim=True)
        value = torch.zeros(z.shape[0], device=z.device)
        for _ in range(iterations):
            (hv,) = torch.autograd.grad(grad, z, grad_outputs=v, retain_graph=True)
            value = (hv * v).sum(dim=1)
            v = hv / hv.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return value.detach()


def step_sharpness(defense: Cowboy, x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Per trajectory (input x restart), the largest step size x curvature met at five points
    of the deployed descent: below the rule's ``stability_limit`` it cannot amplify rounding."""
    r, m = defense.settings.restarts, defense.settings.steps
    if m == 0:
        return torch.zeros(x.shape[0] * r)
    at = sorted({0, m // 4, m // 2, 3 * m // 4, m - 1})
    z0 = defense.start_latents(x, seed)  # the deployed start: E(x) for an encoder start
    out = []
    for inputs, rows in chunk_slices(x.shape[0], defense.rows, r):
        run, x_rows = defense.descend_chunk(x[inputs], z0[rows], at)
        k = rows.stop - rows.start
        sharp = [(run.step_sizes[s] * largest_curvature(defense, run.snapshots[s], x_rows))[:k] for s in at]
        out.append(torch.stack(sharp).max(dim=0).values.cpu())
    return torch.cat(out)


@torch.no_grad()
def _predict(classifier: nn.Module, defense: Cowboy, images: torch.Tensor) -> torch.Tensor:
    return defense.execution.map_rows(classifier, images).argmax(1).cpu()


@dataclass
class Predictions:
    """The classifier's verdicts on the cleaned images: in one batch, cleaned alone (the first
    images only), in another chunking, and after a small perturbation of the input."""

    batch: torch.Tensor
    alone: torch.Tensor
    rechunked: torch.Tensor
    perturbed: torch.Tensor
    pixels_max_change_alone: float


def cleaned_predictions(
    classifier: nn.Module,
    defense: Cowboy,
    x: torch.Tensor,
    *,
    seed: int = 0,
    alone_images: int = 20,
    perturbation: float = 1e-4,
) -> Predictions:
    """Clean ``x`` four ways (see :class:`Predictions`). "Another chunking" is the batch
    reversed: every image gets new neighbours and a new place in its chunk."""
    together = defense.clean(x, seed=seed)
    k = min(alone_images, x.shape[0])
    alone = torch.cat([defense.clean(x[i : i + 1], seed=seed) for i in range(k)])
    reversed_order = defense.clean(x.flip(0), seed=seed).flip(0)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed + 1)).to(x.device) * 2 - 1
    perturbed = defense.clean((x + perturbation * noise).clamp(-1, 1), seed=seed)
    return Predictions(
        batch=_predict(classifier, defense, together),
        alone=_predict(classifier, defense, alone),
        rechunked=_predict(classifier, defense, reversed_order),
        perturbed=_predict(classifier, defense, perturbed),
        pixels_max_change_alone=float((together[:k] - alone).abs().max()),
    )


def flip_rates(seen: Predictions) -> dict[str, float]:
    """How often the prediction on the cleaned image changed when the image was cleaned alone,
    in another chunking, or after the perturbation (:func:`cleaned_predictions`)."""
    k = seen.alone.shape[0]
    return {
        "images": float(seen.batch.shape[0]),
        "alone_images": float(k),
        "pixels_max_change_alone_vs_batch": seen.pixels_max_change_alone,
        "prediction_flip_rate_alone_vs_batch": _rate(seen.batch[:k], seen.alone),
        "prediction_flip_rate_rechunked": _rate(seen.batch, seen.rechunked),
        "prediction_flip_rate_perturbed": _rate(seen.batch, seen.perturbed),
    }


def _rate(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a != b).float().mean())


def chaos_report(
    classifier: nn.Module, defense: Cowboy, x: torch.Tensor, *, seed: int = 0, trajectories: int = 20
) -> dict[str, float]:
    """How far the deployed cleaning is from a well-defined, differentiable map: the flip
    rates (:func:`flip_rates`), step x curvature along ``trajectories`` trajectories against
    the rule's stability limit, and the gradients (:func:`gradient_report`)."""
    out = flip_rates(cleaned_predictions(classifier, defense, x, seed=seed))
    k = min(trajectories, x.shape[0])
    sharpness = step_sharpness(defense, x[:k], seed=seed)
    out |= {
        "lr_lambda_max_median": float(sharpness.median()),
        "lr_lambda_max_max": float(sharpness.max()),
        "stability_limit": float(rule_for(defense.settings.optimizer, defense.settings.lr).stability_limit),
    }
    out.update(gradient_report(classifier, defense, x[:k], seed=seed))
    out.update(exact_gradient_check(classifier, defense, x[:k], seed=seed))
    return out


def gradient_report(
    classifier: nn.Module, defense: Cowboy, x: torch.Tensor, *, seed: int = 0, lr_scale: float = 0.25
) -> dict[str, float]:
    """Norms of d CE / dx per image under BPDA, the exact unrolled gradient and the surrogate's,
    and how well each predicts the real change of the loss: central finite differences along
    its own sign direction, at several step sizes h in [-1, 1] units, on the pixels that have
    room for h both ways (a pixel at -1, Fashion-MNIST's background, would otherwise be
    clamped on one side, and the difference would measure another derivative)."""
    with torch.no_grad():
        y = classifier(defense.clean(x, seed=seed)).argmax(1)

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(classifier(defense.clean(inputs, seed=seed)), y, reduction="none")

    out: dict[str, float] = {}
    surrogate = surrogate_of(defense, lr_scale)
    for gradient in (Gradient.BPDA, Gradient.UNROLLED, Gradient.SURROGATE):
        point = x.clone().requires_grad_(True)
        with defense.execution.kernels():
            cleaned = differentiable_clean(defense, point, seed=seed, gradient=gradient, surrogate=surrogate)
            value = F.cross_entropy(classifier(cleaned), y, reduction="sum")
            (grad,) = torch.autograd.grad(value, point)
        norms = grad.flatten(1).norm(dim=1)
        out[f"{gradient.value}_grad_norm_median"] = float(norms.median())
        out[f"{gradient.value}_grad_norm_max"] = float(norms.max())
        for h in (1e-2, 1e-3, 1e-4):
            direction = grad.sign() * ((x > -1 + h) & (x < 1 - h))
            predicted = (grad * direction).flatten(1).sum(1)
            measured = (loss(x + h * direction) - loss(x - h * direction)) / (2 * h)
            error = (predicted - measured).abs() / measured.abs().clamp_min(1e-6)
            out[f"{gradient.value}_fd_relative_error_h{h:g}_median"] = float(error.median())
    return out


def surrogate_of(defense: Cowboy, lr_scale: float) -> Cowboy:
    """The same defence at a smaller step size: a smoother map whose unrolled gradient an
    attack can use while the forward pass stays the deployed one."""
    return defense.with_settings(lr=defense.settings.lr * lr_scale)


def exact_gradient_check(
    classifier: nn.Module,
    defense: Cowboy,
    x: torch.Tensor,
    *,
    seed: int = 0,
    steps: tuple[float, ...] = (1e-5, 1e-6),
) -> dict[str, float]:
    """The unrolled gradient of the cross-entropy after cleaning against central differences
    along a random direction, both in float64 copies of G, D (E) and the classifier, at tiny
    steps h: there float32 rounding would swamp the difference, and the map's kinks (ReLU,
    max-pooling, the best restart) are rarely crossed. A median relative error near 0 says the
    gradient is exact; gradient_report says how far it predicts at an attacker's scale."""
    generator, discriminator = (copy.deepcopy(model).double() for model in defense.sources)
    source = defense.encoder_source if defense.encoder is not None else None
    encoder = copy.deepcopy(source).double() if source is not None else None
    double = Cowboy(generator, discriminator, defense.settings, execution=defense.execution, encoder=encoder)
    model, x = copy.deepcopy(classifier).double().eval(), x.detach().double()
    with torch.no_grad():
        y = model(double.clean(x, seed=seed)).argmax(1)

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(model(double.clean(inputs, seed=seed)), y, reduction="none")

    point = x.clone().requires_grad_(True)
    with double.execution.kernels():
        value = F.cross_entropy(model(double.clean_unrolled(point, seed=seed)), y, reduction="sum")
        (grad,) = torch.autograd.grad(value, point)
    out: dict[str, float] = {}
    for h in steps:
        direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        direction = direction.to(x.device) * ((x > -1 + h) & (x < 1 - h))
        predicted = (grad * direction).flatten(1).sum(1)
        measured = (loss(x + h * direction) - loss(x - h * direction)) / (2 * h)
        error = (predicted - measured).abs() / measured.abs().clamp_min(1e-12)
        out[f"unrolled_float64_fd_relative_error_h{h:g}_median"] = float(error.median())
    return out
