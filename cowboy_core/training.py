"""Training: the target classifier, and the GAN with the standard loss of eq. (1).

GAN training is resumable: :class:`GANTrainer` carries the models, both Adam states and
its own random generator, so training 0->k->n in two processes gives the same weights as
0->n in one (on CPU).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .attacks import PIXEL_SCALE
from .memory import Job, check_batch_fits


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; the message names the step."""


def _check_finite(name: str, value: float, step: int) -> None:
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"{name} loss became {value} at step {step}; training stopped. The last good "
            "checkpoint is kept. Lower the learning rate or check the data for NaNs."
        )


def _progress(total: int, initial: int, desc: str, enabled: bool) -> tqdm[Any]:
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        disable=not enabled,
        file=sys.stderr,
        mininterval=5.0,
        ascii=True,
    )


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    adversary: Adversary | None = None,
) -> nn.Module:
    """Train ``model`` with Adam and cross-entropy for ``steps`` minibatches; returns it in eval mode.

    With ``adversary`` (e.g. :func:`pgd_adversary`), each minibatch is replaced by its attacked
    version before the update: adversarial training (Madry et al., 2018)."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    device = torch.device(device)
    model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    with _progress(steps, 0, "classifier", progress) as bar:
        for step in range(1, steps + 1):
            idx = torch.randint(images.shape[0], (batch_size,), generator=rng).to(device)
            x, y = images[idx], labels[idx]
            if adversary is not None:
                x = adversary(model.eval(), x, y, rng)
                model.train()
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _check_finite("classifier", loss.item(), step)
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


Adversary = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def pgd_adversary(epsilon: float, steps: int, rel_stepsize: float = 2.5) -> Adversary:
    """Madry et al.'s training attack: L-inf PGD on the cross-entropy from a uniform random
    start, ``steps`` signed-gradient steps of ``rel_stepsize * epsilon / steps``.

    ``epsilon`` is in [0, 1] pixel units, as everywhere in the library; images lie in [-1, 1]."""
    if not (0 < epsilon <= 1 and steps >= 1 and rel_stepsize > 0):
        raise ValueError(
            f"PGD needs 0 < epsilon <= 1, steps >= 1 and rel_stepsize > 0; "
            f"got {epsilon}, {steps} and {rel_stepsize}"
        )
    radius = epsilon * PIXEL_SCALE
    step_size = rel_stepsize * radius / steps

    def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=rng).to(x.device) * 2 - 1
        x_adv = (x + radius * noise).clamp(-1, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = x_adv.detach() + step_size * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-radius, radius)).clamp(-1, 1)
        return x_adv.detach()

    return attack


def train_encoder(
    encoder: nn.Module,
    generator: nn.Module,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    cycle_weight: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> nn.Module:
    """Fit E after the GAN, G frozen: E(x) should reconstruct real images through G,
    ``||G(E(x)) - x||^2``, and invert G on its own samples, ``cycle_weight ||E(G(z)) - z||^2``
    (the latent cycle keeps E(x) where G was trained, so the descent starts in-distribution).
    Returns E in eval mode."""
    device = torch.device(device)
    generator = generator.to(device).eval()
    for parameter in generator.parameters():
        parameter.requires_grad_(False)
    encoder.to(device).train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(seed)
    latent_dim: int = generator.latent_dim  # type: ignore[assignment]
    with _progress(steps, 0, "encoder", progress) as bar:
        for step in range(1, steps + 1):
            x = images[torch.randint(images.shape[0], (batch_size,), generator=rng)].to(device)
            z = torch.randn(batch_size, latent_dim, generator=rng).to(device)
            reconstruction = (generator(encoder(x)) - x).square().flatten(1).sum(1).mean()
            cycle = (encoder(generator(z)) - z).square().sum(1).mean()
            loss = reconstruction + cycle_weight * cycle
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _check_finite("encoder", loss.item(), step)
            bar.update(1)
    return encoder.eval()


@torch.no_grad()
def predict(
    model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 512, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Class predictions of ``model`` (in eval mode) for ``inputs``, in batches."""
    model.eval()
    out = [
        model(inputs[i : i + batch_size].to(device)).argmax(dim=1)
        for i in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64, device=device)


class GANTrainer:
    """Standard GAN training (eq. 1, non-saturating G loss, Adam).

    Args:
        generator: maps z of size ``generator.latent_dim`` to a sample.
        discriminator: returns logits of D(x).
        lr: Adam learning rate for both nets (DCGAN: 2e-4).
        beta1: Adam's first-moment decay (DCGAN: 0.5).
        batch_size: real and fake samples per step.
        seed: seeds the trainer's own generator for minibatches and z.
        device: where the models train.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        lr: float = 2e-4,
        beta1: float = 0.5,
        batch_size: int = 64,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device)
        self.discriminator = discriminator.to(self.device)
        self.latent_dim = int(getattr(generator, "latent_dim"))  # noqa: B009
        self.batch_size = batch_size
        first = torch.zeros(1, self.latent_dim, device=self.device)
        check_batch_fits([self.generator, self.discriminator], first, batch_size, Job.TRAINING)
        betas = (beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        self.rng = torch.Generator().manual_seed(seed)
        self.step = 0
        self.history: list[tuple[int, float, float]] = []

    def train_until(self, data: torch.Tensor, target_step: int, *, progress: bool = False) -> None:
        """Train from the current step up to ``target_step`` on ``data`` (already in [-1, 1])."""
        if target_step < self.step:
            raise ValueError(f"target step {target_step} is before the current step {self.step}")
        data = data.to(self.device)
        g, d = self.generator.train(), self.discriminator.train()
        ones = torch.ones(self.batch_size, device=self.device)
        zeros = torch.zeros(self.batch_size, device=self.device)
        with _progress(target_step, self.step, "gan", progress) as bar:
            while self.step < target_step:
                step = self.step + 1
                idx = torch.randint(data.shape[0], (self.batch_size,), generator=self.rng)
                z = torch.randn(self.batch_size, self.latent_dim, generator=self.rng)
                real, z = data[idx.to(self.device)], z.to(self.device)

                fake = g(z)
                loss_d = F.binary_cross_entropy_with_logits(d(real), ones) + (
                    F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
                )
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()

                loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
                self.opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                self.opt_g.step()

                ld, lg = loss_d.item(), loss_g.item()
                _check_finite("discriminator", ld, step)
                _check_finite("generator", lg, step)
                self.step = step
                if step % 50 == 0:
                    self.history.append((step, ld, lg))
                    bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}")
                bar.update(1)
        g.eval()
        d.eval()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-for-bit: weights, Adam states, RNG state, step."""
        return {
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, 3),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (loaded with ``weights_only=True``)."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"])
        self.step = int(state["step"])
        self.history = [(int(s), float(a), float(b)) for s, a, b in state["history"].tolist()]
