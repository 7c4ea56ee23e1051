"""Algorithm 1: clean an input by descending ``L(z) = ||G(z)-x||^2 / (2 sigma^2) - log D(G(z))``.

One code path serves both methods of Table 2: ``method="defense_gan"`` drops the D term
(Samangouei et al., 2018) and keeps everything else, so the two differ only in that term.

Note on the design card's "sigma = inf gives Defense-GAN": in eq. (4) a larger sigma
*shrinks* the reconstruction term, so sigma -> inf leaves only -log D, the opposite of
Defense-GAN. The baseline is therefore an explicit method, at the same sigma and lr.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .choices import Choice
from .detection import discriminator_logits, scores_from_logits
from .reparam import fold_batchnorm, subpixel_convs


class Method(Choice, what="cleaning method"):
    """Cleaning objective: the paper's (with D) or the Defense-GAN baseline (without)."""

    COWBOY = "cowboy"
    DEFENSE_GAN = "defense_gan"


class Optimizer(Choice, what="optimizer"):
    """Update rule on z: the paper's plain gradient descent, or heavy-ball momentum, or Adam."""

    GD = "gd"
    MOMENTUM = "momentum"
    ADAM = "adam"


# Rows per forward/backward, from benchmarks/bench_cleaning.py: on CPU, 256 rows ran within
# 5% of the best (64) for 28x28 and beat it for 32x32, while 2,048 ran a third slower as the
# activations left the cache; a GPU wants many rows to fill its cores.
DEFAULT_BATCH = {"cpu": 256, "cuda": 4096}


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
        momentum: heavy-ball coefficient (also Adam's beta1).
        threshold: D-score below which :meth:`detect` flags an input.
        batch_size: rows (inputs x restarts) per forward/backward; bounds memory. None
            picks the fastest measured on the device: 256 on CPU, 4096 on CUDA.
        device: where G and D run; inputs are moved there.
        precision: "fp32" or "bf16" (autocast; the loss itself stays fp32).
        channels_last: use the channels-last memory format for image tensors.
        fold_bn: fuse batch norm into the preceding layers (exact in eval mode).
        subpixel: rewrite the thin stride-2 image layers as stride-1 convolutions around a
            pixel (un)shuffle (exact; see :mod:`cowboy_core.reparam`).
        compile: run the loss through ``torch.compile``; None compiles on CUDA only, with
            CUDA graphs (on CPU it was slower and costs half a minute, see the benchmark).
        early_stop_tol: freeze a row whose loss improved by less than this fraction over
            the last ``check_every`` steps; None runs every row for all steps.
        check_every: steps between early-stop checks.
        input_range: the inputs' valid range ([-1, 1] for images); None skips the check.
        progress: show a progress bar (stderr) over the rows being cleaned.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        sigma: float = 1.0,
        steps: int = 500,
        lr: float = 0.05,
        restarts: int = 1,
        method: str | Method = Method.COWBOY,
        optimizer: str | Optimizer = Optimizer.GD,
        momentum: float = 0.9,
        threshold: float | None = None,
        batch_size: int | None = None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        fold_bn: bool = True,
        subpixel: bool = True,
        compile: bool | None = None,
        early_stop_tol: float | None = None,
        check_every: int = 50,
        input_range: tuple[float, float] | None = (-1.0, 1.0),
        progress: bool = False,
    ) -> None:
        if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {restarts}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.device = torch.device(device)
        self.sigma = float(sigma)
        self.steps = int(steps)
        self.lr = float(lr)
        self.restarts = int(restarts)
        self.method = Method.parse(method)
        self.optimizer = Optimizer.parse(optimizer)
        self.momentum = float(momentum)
        self.threshold = threshold
        self.batch_size = int(batch_size or DEFAULT_BATCH.get(self.device.type, DEFAULT_BATCH["cpu"]))
        self.precision = precision
        self.channels_last = channels_last
        self.early_stop_tol = early_stop_tol
        self.check_every = int(check_every)
        self.input_range = input_range
        self.progress = progress
        self.latent_dim = int(getattr(generator, "latent_dim", 0))
        if self.latent_dim < 1:
            raise ValueError("the generator needs a positive integer attribute 'latent_dim'")
        self.generator = self._prepare(generator, fold_bn, subpixel)
        self.discriminator = self._prepare(discriminator, fold_bn, subpixel)
        self.input_shape = self._check_pair()
        self.compiled = self.device.type == "cuda" if compile is None else compile
        self._loss = self._compile_loss() if self.compiled else self.loss

    # The keys of the config's ``cleaning`` section that are constructor arguments.
    CONFIG_KEYS = (
        "sigma",
        "steps",
        "lr",
        "restarts",
        "optimizer",
        "momentum",
        "batch_size",
        "precision",
        "early_stop_tol",
        "compile",
    )

    @classmethod
    def from_config(
        cls,
        generator: nn.Module,
        discriminator: nn.Module,
        cleaning: Mapping[str, Any],
        **overrides: Any,
    ) -> Cowboy:
        """A Cowboy built from the config's ``cleaning`` section; ``overrides`` win."""
        kwargs = {key: cleaning[key] for key in cls.CONFIG_KEYS if key in cleaning}
        return cls(generator, discriminator, **(kwargs | overrides))

    def _compile_loss(self) -> Any:
        # On CUDA, "reduce-overhead" replays the step as a CUDA graph: the DCGAN's layers are
        # small, so kernel launches, not FLOPs, bound a step there.
        mode = "reduce-overhead" if self.device.type == "cuda" else "default"
        return torch.compile(self.loss, mode=mode)

    def _prepare(self, model: nn.Module, fold_bn: bool, subpixel: bool) -> nn.Module:
        model = model.eval()
        model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model)
        if subpixel:
            model = subpixel_convs(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    @torch.no_grad()
    def _check_pair(self) -> tuple[int, ...]:
        z = torch.zeros(2, self.latent_dim, device=self.device)
        sample = self.generator(z)
        try:
            logits = self.discriminator(sample)
        except RuntimeError as err:
            raise ValueError(
                f"generator and discriminator do not match: D cannot take G's output of "
                f"shape {tuple(sample.shape[1:])} ({err})"
            ) from err
        if logits.reshape(-1).shape[0] != 2:
            raise ValueError(
                f"discriminator must return one logit per input; got shape {tuple(logits.shape)}"
            )
        return tuple(sample.shape[1:])

    def _check_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(
                f"inputs must be floating point in [-1, 1], got dtype {x.dtype}; "
                "rescale uint8 pixels with x.float() / 127.5 - 1"
            )
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"inputs must have shape (N, {', '.join(map(str, self.input_shape))}) to match "
                f"the generator, got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError("inputs contain NaN or infinite values")
        if x.shape[0] == 0:
            raise ValueError("inputs are empty: pass at least one input")
        if self.input_range is None:
            return x
        low, high = float(x.min()), float(x.max())
        lo, hi = self.input_range
        if low < lo - 1e-4 or high > hi + 1e-4:
            hint = " (they look like [0, 1] pixels: use 2 * x - 1)" if low >= 0 and high <= 1 else ""
            hint = " (they look like [0, 255] pixels: use x / 127.5 - 1)" if high > 1.5 else hint
            raise ValueError(f"inputs must lie in [{lo:g}, {hi:g}], got [{low:.3g}, {high:.3g}]{hint}")
        return x

    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # -- detection -------------------------------------------------------------------------

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) for each input, as float64 in (0, 1)."""
        x = self._check_inputs(x)
        logits = discriminator_logits(
            self.discriminator,
            self._format(x.to(self.device)),
            batch_size=self.batch_size,
            device=self.device,
        )
        return scores_from_logits(logits)

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean flags: D scores the input below the calibrated threshold."""
        if self.threshold is None:
            raise ValueError(
                "no threshold: pass threshold=... (see results/detection.csv) or call calibrate()"
            )
        return self.score(x) < self.threshold

    # -- cleaning --------------------------------------------------------------------------

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row L(z) of eq. (4) (without D for Defense-GAN), and G(z)."""
        with self._autocast():
            fake = self.generator(z)
            logits = self.discriminator(fake) if self.method is Method.COWBOY else None
        fake = fake.float()
        loss = (fake - x).square().flatten(1).sum(1) / (2.0 * self.sigma**2)
        if logits is not None:
            loss = loss - F.logsigmoid(logits.float().reshape(-1))
        return loss, fake

    def clean(self, x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        """Algorithm 1 on every input: G(z_m) of the best restart."""
        return self.clean_detailed(x, seed=seed).images

    def clean_detailed(
        self, x: torch.Tensor, *, seed: int = 0, record_at: Iterable[int] = ()
    ) -> CleaningResult:
        """Algorithm 1, batched over inputs and restarts, with snapshots at ``record_at`` steps.

        z0 is drawn for all inputs at once from a CPU generator seeded with ``seed``, so the
        result does not depend on ``batch_size`` or the device.
        """
        x = self._check_inputs(x)
        record = sorted({int(s) for s in record_at if 0 <= int(s) <= self.steps} | {self.steps})
        n, r = x.shape[0], self.restarts
        z0 = torch.randn(n * r, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        rows_per_chunk = max(r, (self.batch_size // r) * r)
        snapshot_z: dict[int, list[torch.Tensor]] = {s: [] for s in record}
        steps_run: list[torch.Tensor] = []
        bar = tqdm(
            total=n * r,
            desc=f"clean ({self.method.value})",
            unit="row",
            file=sys.stderr,
            disable=not self.progress,
            mininterval=5.0,
            ascii=True,
        )
        for start in range(0, n * r, rows_per_chunk):
            rows = slice(start, min(start + rows_per_chunk, n * r))
            x_rows = x[rows.start // r : rows.stop // r].to(self.device).repeat_interleave(r, dim=0)
            chunk_snaps, chunk_steps = self._descend(z0[rows].to(self.device), self._format(x_rows), record)
            for s in record:
                snapshot_z[s].append(chunk_snaps[s])
            steps_run.append(chunk_steps)
            bar.update(rows.stop - rows.start)
        bar.close()
        steps_per_row = torch.cat(steps_run)
        result: CleaningResult | None = None
        snapshots: dict[int, torch.Tensor] = {}
        snapshot_loss: dict[int, torch.Tensor] = {}
        for s in record:
            images, latents, loss = self._select(torch.cat(snapshot_z[s]), x)
            snapshots[s], snapshot_loss[s] = images, loss
            if s == self.steps:
                best_steps = steps_per_row.view(n, r).max(dim=1).values
                result = CleaningResult(images, latents, loss, best_steps)
        assert result is not None
        result.snapshots, result.snapshot_loss = snapshots, snapshot_loss
        return result

    @torch.enable_grad()
    def _descend(
        self, z: torch.Tensor, x: torch.Tensor, record: list[int]
    ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Gradient steps on the rows of one chunk; returns z at each recorded step.

        Gradients with respect to z are needed, so this works inside ``torch.no_grad()`` too.
        """
        rows = z.shape[0]
        z_done = z.clone()
        steps_run = torch.full((rows,), self.steps, dtype=torch.int64, device=z.device)
        active = torch.arange(rows, device=z.device)
        velocity = torch.zeros_like(z)
        second = torch.zeros_like(z)
        last_check: torch.Tensor | None = None
        snaps: dict[int, torch.Tensor] = {}
        beta2 = 0.999
        for step in range(self.steps + 1):
            if step in record:
                current = z_done.clone()
                current[active] = z
                snaps[step] = current
            if step == self.steps or active.numel() == 0:
                break
            z = z.detach().requires_grad_(True)
            if self.compiled:
                torch.compiler.cudagraph_mark_step_begin()
            loss, _ = self._loss(z, x)
            (grad,) = torch.autograd.grad(loss.sum(), z)
            with torch.no_grad():
                if self.optimizer is Optimizer.GD:
                    z = z - self.lr * grad
                elif self.optimizer is Optimizer.MOMENTUM:
                    velocity = self.momentum * velocity + grad
                    z = z - self.lr * velocity
                else:
                    t = step + 1
                    velocity = self.momentum * velocity + (1 - self.momentum) * grad
                    second = beta2 * second + (1 - beta2) * grad.square()
                    m_hat = velocity / (1 - self.momentum**t)
                    v_hat = second / (1 - beta2**t)
                    z = z - self.lr * m_hat / (v_hat.sqrt() + 1e-8)
            if self.early_stop_tol is None or (step + 1) % self.check_every:
                continue
            current_loss = loss.detach().clone()  # a CUDA graph reuses its output buffer
            if last_check is not None:
                improved = (last_check - current_loss) > self.early_stop_tol * current_loss.abs()
                if not bool(improved.all()):
                    frozen = ~improved
                    z_done[active[frozen]] = z[frozen].detach()
                    steps_run[active[frozen]] = step + 1
                    keep = improved
                    active, z, x = active[keep], z[keep], x[keep]
                    velocity, second = velocity[keep], second[keep]
                    current_loss = current_loss[keep]
            last_check = current_loss
        for s in record:
            snaps.setdefault(s, z_done.clone().index_copy_(0, active, z.detach()))
        return snaps, steps_run

    @torch.no_grad()
    def _select(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Evaluate L at every row and keep, per input, the restart with the lowest L."""
        n, r = x.shape[0], self.restarts
        losses, images = [], []
        rows_per_chunk = max(r, (self.batch_size // r) * r)
        for start in range(0, n * r, rows_per_chunk):
            stop = min(start + rows_per_chunk, n * r)
            x_rows = x[start // r : stop // r].to(self.device).repeat_interleave(r, dim=0)
            loss, fake = self.loss(z[start:stop].to(self.device), self._format(x_rows))
            losses.append(loss)
            images.append(fake)
        loss_all = torch.cat(losses).view(n, r)
        best = loss_all.argmin(dim=1)
        pick = torch.arange(n, device=best.device) * r + best
        image_all = torch.cat(images)
        return (
            image_all[pick].contiguous(),
            z.to(self.device)[pick],
            loss_all.gather(1, best.unsqueeze(1)).squeeze(1),
        )
