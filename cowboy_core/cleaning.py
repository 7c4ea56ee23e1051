"""Algorithm 1: clean an input by descending ``L(z) = ||G(z)-x||^2 / (2 sigma^2) - log D(G(z))``.

Three seams, each small: the :class:`Objective` (eq. 4; Defense-GAN is the same objective
with the D term's weight at zero), the update rules (:class:`GD`, :class:`Momentum`,
:class:`Adam`) and one loop, :func:`descend`. :class:`Cowboy` puts them together with the
detector; :class:`~cowboy_core.fastpath.Execution` decides only how fast it runs.

"sigma = inf gives Defense-GAN" is backwards for eq. (4): a larger sigma *shrinks* the
reconstruction term, leaving only -log D. The baseline is therefore an explicit method.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .choices import Choice
from .detection import Calibration, calibrate_threshold, discriminator_logits, scores_from_logits
from .fastpath import Execution
from .io import PathLike, load_models, save_models

# Early stopping compares a row's loss every this many steps.
EARLY_STOP_EVERY = 50


class Method(Choice, what="cleaning method"):
    """Cleaning objective: the paper's (with D) or the Defense-GAN baseline (without)."""

    COWBOY = "cowboy"
    DEFENSE_GAN = "defense_gan"


class Optimizer(Choice, what="optimizer"):
    """Update rule on z: the paper's plain gradient descent, heavy-ball momentum, or Adam."""

    GD = "gd"
    MOMENTUM = "momentum"
    ADAM = "adam"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The algorithm's settings, as a defence card records them (see :meth:`Cowboy.save`)."""

    sigma: float = 1.0
    steps: int = 25
    lr: float = 0.05
    restarts: int = 1
    method: str = Method.COWBOY.value
    optimizer: str = Optimizer.GD.value
    early_stop_tol: float | None = None
    lam: float | None = None


# Without a card, the settings of the committed Fashion-MNIST reproduction
# (config/reproduce-fmnist.yaml): plain GD for 25 steps at step size 0.05, sigma 1.
DEFAULT_SETTINGS = Settings()


class Objective:
    """Eq. (4) per row: ``||G(z)-x||^2 / (2 sigma^2) + d_weight * (-log D(G(z)))``.

    ``d_weight`` is the one place the D term is weighted: 1 is the paper, 0 is Defense-GAN
    (D is then never run). Returns the per-row loss and G(z).
    """

    def __init__(
        self, generator: nn.Module, discriminator: nn.Module, *, sigma: float = 1.0, d_weight: float = 1.0
    ) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.sigma, self.d_weight = float(sigma), float(d_weight)

    def __call__(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fake = self.generator(z)
        loss = (fake - x).square().flatten(1).sum(1) / (2.0 * self.sigma**2)
        if self.d_weight:
            loss = loss - self.d_weight * F.logsigmoid(self.discriminator(fake).reshape(-1))
        return loss, fake


class UpdateRule:
    """One update of z from its gradient; a rule with memory keeps it per row."""

    def __init__(self, *, lr: float) -> None:
        self.lr = lr

    def begin(self, z: torch.Tensor) -> None:
        """Reset the memory for a new batch of rows."""

    def keep(self, rows: torch.Tensor) -> None:
        """Early stopping dropped rows: keep the memory of ``rows`` only."""

    def step(self, z: torch.Tensor, grad: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError


class GD(UpdateRule):
    """The paper's plain gradient descent."""

    def step(self, z: torch.Tensor, grad: torch.Tensor, step: int) -> torch.Tensor:
        return z - self.lr * grad


class Momentum(UpdateRule):
    """Heavy-ball momentum."""

    def __init__(self, *, lr: float, beta: float = 0.9) -> None:
        super().__init__(lr=lr)
        self.beta = beta

    def begin(self, z: torch.Tensor) -> None:
        self.velocity = torch.zeros_like(z)

    def keep(self, rows: torch.Tensor) -> None:
        self.velocity = self.velocity[rows]

    def step(self, z: torch.Tensor, grad: torch.Tensor, step: int) -> torch.Tensor:
        self.velocity = self.beta * self.velocity + grad
        return z - self.lr * self.velocity


class Adam(Momentum):
    """Adam, nearly invariant to the scale of the loss."""

    beta2 = 0.999

    def begin(self, z: torch.Tensor) -> None:
        super().begin(z)
        self.second = torch.zeros_like(z)

    def keep(self, rows: torch.Tensor) -> None:
        super().keep(rows)
        self.second = self.second[rows]

    def step(self, z: torch.Tensor, grad: torch.Tensor, step: int) -> torch.Tensor:
        t = step + 1
        self.velocity = self.beta * self.velocity + (1 - self.beta) * grad
        self.second = self.beta2 * self.second + (1 - self.beta2) * grad.square()
        m_hat = self.velocity / (1 - self.beta**t)
        v_hat = self.second / (1 - self.beta2**t)
        return z - self.lr * m_hat / (v_hat.sqrt() + 1e-8)


UPDATE_RULES: dict[Optimizer, type[UpdateRule]] = {
    Optimizer.GD: GD,
    Optimizer.MOMENTUM: Momentum,
    Optimizer.ADAM: Adam,
}


@dataclass
class Descent:
    """What :func:`descend` returns: z at each recorded step, and the steps each row ran."""

    snapshots: dict[int, torch.Tensor]
    steps_run: torch.Tensor


def descend(
    objective: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    rule: UpdateRule,
    z: torch.Tensor,
    x: torch.Tensor,
    *,
    steps: int,
    record: Iterable[int] = (),
    early_stop_tol: float | None = None,
    create_graph: bool = False,
) -> Descent:
    """``steps`` updates of every row of ``z`` against its target row of ``x``.

    A row whose loss improved by less than ``early_stop_tol`` (relative) over
    :data:`EARLY_STOP_EVERY` steps leaves the batch. With ``create_graph`` the whole
    trajectory stays differentiable, so that an attack can backpropagate from z_m to ``x``.
    """
    if create_graph and early_stop_tol is not None:
        raise ValueError("early stopping cuts rows out of the graph; use create_graph without it")
    record = set(record) | {steps}
    z_done, active = z.detach().clone(), torch.arange(z.shape[0], device=z.device)
    steps_run = torch.full((z.shape[0],), steps, dtype=torch.int64, device=z.device)
    snapshots: dict[int, torch.Tensor] = {}
    last_check: torch.Tensor | None = None
    rule.begin(z)
    with torch.enable_grad():  # gradients in z are needed, even under torch.no_grad()
        for step in range(steps + 1):
            if step in record:
                snapshots[step] = z_done.index_copy(0, active, z)
            if step == steps or active.numel() == 0:
                break
            if not (create_graph and z.requires_grad):
                z = z.detach().requires_grad_(True)
            loss, _ = objective(z, x)
            (grad,) = torch.autograd.grad(loss.sum(), z, create_graph=create_graph)
            with torch.set_grad_enabled(create_graph):
                z = rule.step(z, grad, step)
            if early_stop_tol is None or (step + 1) % EARLY_STOP_EVERY:
                continue
            current_loss = loss.detach().clone()  # a CUDA graph reuses its output buffer
            if last_check is not None:
                improved = (last_check - current_loss) > early_stop_tol * current_loss.abs()
                if not bool(improved.all()):
                    frozen = ~improved
                    z_done[active[frozen]] = z[frozen].detach()
                    steps_run[active[frozen]] = step + 1
                    active, z, x = active[improved], z[improved], x[improved]
                    current_loss = current_loss[improved]
                    rule.keep(improved)
            last_check = current_loss
    for s in record:
        snapshots.setdefault(s, z_done.index_copy(0, active, z.detach()))
    return Descent(snapshots, steps_run)


@dataclass
class CleaningResult:
    """What :meth:`Cowboy.clean_detailed` returns, per input (best of the restarts)."""

    images: torch.Tensor
    latents: torch.Tensor
    loss: torch.Tensor
    steps_run: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    snapshot_loss: dict[int, torch.Tensor] = field(default_factory=dict)


class Cowboy:
    """Detect adversarial inputs with D and clean them with G and D (Algorithm 1).

    Args:
        generator: G, mapping z ~ N(0, I) of size ``generator.latent_dim`` to an input.
        discriminator: D, returning logits; D(x) = sigmoid(logit).
        sigma: the Gaussian width of eq. (4); trades reconstruction against realness.
        steps: gradient steps m.
        lr: step size eta.
        restarts: random z0 per input; the one with the lowest final L is kept.
        method: "cowboy" (eq. 4) or "defense_gan" (the D term dropped).
        optimizer: "gd" (the paper), "momentum" or "adam".
        threshold: D-score below which :meth:`detect` flags an input (see :meth:`calibrate`).
        lam: the D term's weight in the equivalent form ``1/2 ||G(z)-x||^2 + lam (-log D(G(z)))``
            (eq. 4 times sigma^2, so lam = sigma^2), where the reconstruction step does not
            change with the D weight; None uses eq. 4 with ``sigma``.
        early_stop_tol: a row stops once its loss improved by less than this fraction over
            50 steps; None runs every row for all steps.
        execution: how G and D run (device, batch size, exact speed rewrites).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        sigma: float = DEFAULT_SETTINGS.sigma,
        steps: int = DEFAULT_SETTINGS.steps,
        lr: float = DEFAULT_SETTINGS.lr,
        restarts: int = DEFAULT_SETTINGS.restarts,
        method: str | Method = DEFAULT_SETTINGS.method,
        optimizer: str | Optimizer = DEFAULT_SETTINGS.optimizer,
        threshold: float | None = None,
        early_stop_tol: float | None = DEFAULT_SETTINGS.early_stop_tol,
        lam: float | None = DEFAULT_SETTINGS.lam,
        execution: Execution | None = None,
    ) -> None:
        if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        if steps < 0 or not lr > 0 or restarts < 1:
            raise ValueError(f"need steps >= 0, lr > 0 and restarts >= 1; got {steps}, {lr}, {restarts}")
        self.sigma, self.steps, self.lr, self.restarts = float(sigma), int(steps), float(lr), int(restarts)
        self.method, self.optimizer = Method.parse(method), Optimizer.parse(optimizer)
        self.early_stop_tol = early_stop_tol
        if lam is not None and not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        self.lam = None if lam is None else float(lam)
        self.threshold, self.p = threshold, 1.0
        self.card: dict[str, Any] = {}  # what a loaded defence card says, provenance included
        self.execution = execution or Execution()
        self.device = torch.device(self.execution.device)
        self.latent_dim = int(getattr(generator, "latent_dim", 0))
        if self.latent_dim < 1:
            raise ValueError("the generator needs a positive integer attribute 'latent_dim'")
        self.sources = (generator, discriminator)  # the unrewritten models, for save()
        self.generator = self.execution.prepare(generator)
        self.discriminator = self.execution.prepare(discriminator)
        self.input_shape = self._check_pair()
        d_weight = 1.0 if self.lam is None else self.lam
        d_weight = 0.0 if self.method is Method.DEFENSE_GAN else d_weight
        sigma = self.sigma if self.lam is None else 1.0
        self.objective = Objective(self.generator, self.discriminator, sigma=sigma, d_weight=d_weight)

    @property
    def settings(self) -> Settings:
        """The algorithm's settings (what a defence card records)."""
        return Settings(**{name: getattr(self, name) for name in Settings.__dataclass_fields__})

    @torch.no_grad()
    def _check_pair(self) -> tuple[int, ...]:
        sample = self.generator(torch.zeros(2, self.latent_dim, device=self.device))
        try:
            logits = self.discriminator(sample)
        except RuntimeError as err:
            raise ValueError(
                f"generator and discriminator do not match: D cannot take G's output of "
                f"shape {tuple(sample.shape[1:])} ({err})"
            ) from err
        if logits.reshape(-1).shape[0] != 2:
            raise ValueError(f"D must return one logit per input; got shape {tuple(logits.shape)}")
        return tuple(sample.shape[1:])

    def _check_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(
                f"inputs must be a floating-point torch.Tensor in [-1, 1], got dtype "
                f"{getattr(x, 'dtype', type(x))}; rescale uint8 pixels with x.float() / 127.5 - 1"
            )
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"inputs must have shape (N, {', '.join(map(str, self.input_shape))}) to match "
                f"the generator, got {tuple(x.shape)}"
            )
        if x.shape[0] == 0 or not torch.isfinite(x).all():
            raise ValueError("inputs are empty or contain NaN or infinite values")
        low, high = float(x.min()), float(x.max())
        if x.dim() == 4 and (low < -1 - 1e-4 or high > 1 + 1e-4):  # images live in [-1, 1]
            hint = " (they look like [0, 1] pixels: use 2 * x - 1)" if low >= 0 and high <= 1 else ""
            hint = " (they look like [0, 255] pixels: use x / 127.5 - 1)" if high > 1.5 else hint
            raise ValueError(f"inputs must lie in [-1, 1], got [{low:.3g}, {high:.3g}]{hint}")
        return x

    # -- detection (section 3.3-3.4) ---------------------------------------------------

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) for each input, as float64 in (0, 1)."""
        x = self.execution.format(self._check_inputs(x))
        rows = self.execution.rows
        logits = discriminator_logits(self.discriminator, x, batch_size=rows, device=self.device)
        return scores_from_logits(logits)

    def calibrate(
        self,
        x_adversarial: torch.Tensor,
        *,
        p: float = 1.0,
        accuracy_clean: float | None = None,
        accuracy_adversarial: float | None = None,
    ) -> Calibration:
        """Section 3.4: set the threshold to the L^p average of D on one attack's samples.

        Given the classifier's accuracy before and after that attack, refuse an attack that
        does not cut it by 20 points (footnote 2: its samples are not adversarial).
        """
        calibration = calibrate_threshold(
            self.score(x_adversarial),
            p=p,
            accuracy_clean=accuracy_clean,
            accuracy_adversarial=accuracy_adversarial,
        ).require_adversarial()
        self.threshold, self.p = calibration.threshold, calibration.p
        return calibration

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean flags: D scores the input below the calibrated threshold."""
        if self.threshold is None:
            raise ValueError("no threshold: load a defence card, pass threshold=... or call calibrate()")
        return self.score(x) < self.threshold

    # -- cleaning (Algorithm 1) --------------------------------------------------------

    def clean(self, x: torch.Tensor, *, seed: int = 0, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Algorithm 1 on every input: G(z_m) of the best restart."""
        return self.clean_detailed(x, seed=seed, latents=latents).images

    def initial_latents(self, n: int, seed: int) -> torch.Tensor:
        """z0 for ``n`` inputs x restarts, from a CPU generator: independent of batch and device."""
        return torch.randn(n * self.restarts, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    def update_rule(self) -> UpdateRule:
        return UPDATE_RULES[self.optimizer](lr=self.lr)

    def clean_detailed(
        self,
        x: torch.Tensor,
        *,
        seed: int = 0,
        record_at: Iterable[int] = (),
        latents: torch.Tensor | None = None,
    ) -> CleaningResult:
        """Algorithm 1, batched over inputs and restarts, with snapshots at ``record_at`` steps.

        z0 is :meth:`initial_latents` of ``seed``, or ``latents`` (one row per input and restart).
        """
        x = self._check_inputs(x)
        record = sorted({int(s) for s in record_at if 0 <= int(s) <= self.steps} | {self.steps})
        n, r = x.shape[0], self.restarts
        z0 = self.initial_latents(n, seed) if latents is None else latents
        if z0.shape != (n * r, self.latent_dim):
            raise ValueError(f"latents must have shape ({n * r}, {self.latent_dim}), got {tuple(z0.shape)}")
        chunk = self._chunk_rows()
        objective, rule = self.execution.wrap(self.objective), self.update_rule()
        snapshot_z: dict[int, list[torch.Tensor]] = {s: [] for s in record}
        steps_run: list[torch.Tensor] = []
        bar = tqdm(
            total=n * r,
            desc=f"clean ({self.method.value})",
            unit="row",
            file=sys.stderr,
            disable=not self.execution.progress,
            mininterval=5.0,
            ascii=True,
        )
        for start in range(0, n * r, chunk):
            rows = slice(start, min(start + chunk, n * r))
            x_rows = self.execution.format(x[rows.start // r : rows.stop // r].repeat_interleave(r, dim=0))
            run = descend(
                objective,
                rule,
                z0[rows].to(self.device),
                x_rows,
                steps=self.steps,
                record=record,
                early_stop_tol=self.early_stop_tol,
            )
            for s in record:
                snapshot_z[s].append(run.snapshots[s])
            steps_run.append(run.steps_run)
            bar.update(rows.stop - rows.start)
        bar.close()
        best_steps = torch.cat(steps_run).view(n, r).max(dim=1).values
        chosen = {s: self._select(torch.cat(snapshot_z[s]), x) for s in record}
        images, latents, loss = chosen[self.steps]
        return CleaningResult(
            images,
            latents,
            loss,
            best_steps,
            snapshots={s: c[0] for s, c in chosen.items()},
            snapshot_loss={s: c[2] for s, c in chosen.items()},
        )

    def clean_unrolled(self, x: torch.Tensor, *, seed: int = 0, last: int | None = None) -> torch.Tensor:
        """:meth:`clean`, differentiable in ``x`` through the last ``last`` steps (all of them by
        default): the exact gradient an attack needs (double backward through G and D).

        The first steps run without a graph; a memory-carrying update rule restarts its memory
        where the graph begins (exact for plain GD).
        """
        n, r = self._check_inputs(x.detach()).shape[0], self.restarts
        z = self.initial_latents(n, seed).to(self.device)
        x_rows = self.execution.format(x.repeat_interleave(r, dim=0))
        kept = self.steps if last is None else min(last, self.steps)
        if kept < self.steps:
            run = descend(self.objective, self.update_rule(), z, x_rows.detach(), steps=self.steps - kept)
            z = run.snapshots[self.steps - kept]
        z = descend(self.objective, self.update_rule(), z, x_rows, steps=kept, create_graph=True).snapshots[
            kept
        ]
        loss, fake = self.objective(z, x_rows)
        pick = torch.arange(n, device=loss.device) * r + loss.detach().view(n, r).argmin(dim=1)
        return fake[pick]

    def _chunk_rows(self) -> int:
        """Rows per chunk: whole inputs, each with all its restarts."""
        return max(self.restarts, (self.execution.rows // self.restarts) * self.restarts)

    @torch.no_grad()
    def _select(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Evaluate L at every row and keep, per input, the restart with the lowest L."""
        n, r = x.shape[0], self.restarts
        chunk = self._chunk_rows()
        losses, images = [], []
        for start in range(0, n * r, chunk):
            stop = min(start + chunk, n * r)
            x_rows = self.execution.format(x[start // r : stop // r].repeat_interleave(r, dim=0))
            loss, fake = self.objective(z[start:stop].to(self.device), x_rows)
            losses.append(loss)
            images.append(fake)
        loss_all = torch.cat(losses).view(n, r)
        best = loss_all.argmin(dim=1)
        pick = torch.arange(n, device=best.device) * r + best
        best_loss = loss_all.gather(1, best[:, None])[:, 0]
        return torch.cat(images)[pick].contiguous(), z.to(self.device)[pick], best_loss

    # -- the defence card --------------------------------------------------------------

    def save(self, path: PathLike, *, provenance: dict[str, Any] | None = None) -> None:
        """Write the defence card: G, D, the input shape, the threshold and p, and the
        cleaning settings, with where each came from (``provenance``)."""
        if self.threshold is None:
            raise ValueError("a defence card needs a threshold: call calibrate() first")
        card = {
            "input_shape": list(self.input_shape),
            "threshold": self.threshold,
            "p": self.p,
            "settings": asdict(self.settings),
            "provenance": provenance or {},
        }
        generator, discriminator = self.sources
        save_models(path, {"generator": generator, "discriminator": discriminator}, {"defense": card})

    @classmethod
    def load(cls, path: PathLike, *, execution: Execution | None = None, **overrides: Any) -> Cowboy:
        """The defence a card describes; ``overrides`` replace its settings (say ``steps=50``)."""
        models, meta = load_models(path, device=(execution or Execution()).device)
        card = meta.get("defense")
        if not isinstance(card, dict) or not {"generator", "discriminator"} <= set(models):
            raise ValueError(f"{path}: not a defence card; the pipeline writes results/defense/*.safetensors")
        settings = card["settings"] | overrides
        generator, discriminator = models["generator"], models["discriminator"]
        defense = cls(generator, discriminator, threshold=card["threshold"], execution=execution, **settings)
        defense.p, defense.card = float(card["p"]), card
        if list(defense.input_shape) != list(card["input_shape"]):
            raise ValueError(f"{path}: G makes {defense.input_shape}, the card says {card['input_shape']}")
        return defense
