"""Algorithm 1: clean an input by descending ``L(z) = ||G(z)-x||^2 / (2 sigma^2) - log D(G(z))``.

Three seams, each small: the :class:`~cowboy_core.descent.Objective` (eq. 4; Defense-GAN is
the same objective with the D term's weight at zero), the update rules
(:mod:`cowboy_core.updates`) and one loop, :func:`~cowboy_core.descent.descend`.
:class:`Cowboy` puts them together with the detector;
:class:`~cowboy_core.fastpath.Execution` decides only how fast it runs.

"sigma = inf gives Defense-GAN" is backwards for eq. (4): a larger sigma *shrinks* the
reconstruction term, leaving only -log D. The baseline is therefore an explicit method.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .card import CardError, read_card, save_card
from .descent import Descent, Objective, descend
from .detection import Calibration, calibrate_threshold, scores_from_logits
from .fastpath import Execution, pad_rows
from .io import PathLike
from .settings import DEFAULT_SETTINGS, Method, Settings, check_settings
from .updates import UPDATE_RULES, Optimizer, UpdateRule


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

    Cleaning is a function of its input: every forward and backward runs on chunks of exactly
    ``execution.rows`` rows (the last one padded with fixed filler), and restart k of every
    input starts from the same z0 (drawn from ``seed``), so that an input's result is the same
    bits alone, in any batch and in any chunking, on one device.

    Args:
        generator: G, mapping z ~ N(0, I) of size ``generator.latent_dim`` to an input.
        discriminator: D, returning logits; D(x) = sigmoid(logit).
        settings: the algorithm's :class:`Settings`; keyword arguments override single fields
            (``Cowboy(g, d, steps=50)``).
        threshold: D-score below which :meth:`detect` flags an input (see :meth:`calibrate`).
        p: the L^p average the threshold was calibrated with.
        execution: how G and D run (device, chunk size, exact speed rewrites).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        settings: Settings | None = None,
        threshold: float | None = None,
        p: float = 1.0,
        execution: Execution | None = None,
        **overrides: Any,
    ) -> None:
        chosen = check_settings(asdict(settings or DEFAULT_SETTINGS) | overrides)
        self._settings = chosen
        self.sigma, self.steps, self.lr, self.restarts = (
            chosen.sigma,
            chosen.steps,
            chosen.lr,
            chosen.restarts,
        )
        self.method, self.optimizer = Method.parse(chosen.method), Optimizer.parse(chosen.optimizer)
        self.early_stop_tol, self.lam = chosen.early_stop_tol, chosen.lam
        self.threshold, self.p = threshold, p
        self.card: dict[str, Any] = {}  # what a loaded defence card says, provenance included
        self.execution = execution or Execution()
        if self.execution.rows < self.restarts:
            raise ValueError(f"a chunk of {self.execution.rows} rows cannot hold {self.restarts} restarts")
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
        self._run_objective = self.execution.wrap(self.objective)

    @property
    def settings(self) -> Settings:
        """The algorithm's settings (what a defence card records)."""
        return self._settings

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

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) for each input, as float64 in (0, 1)."""
        # The sigmoid runs inside the padded chunks too: a vectorised elementwise kernel and
        # its scalar tail can differ in the last bit, so a row's value must not depend on n.
        return self.execution.map_rows(
            lambda rows: scores_from_logits(self.discriminator(rows).reshape(-1)), self._check_inputs(x)
        )

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
        return self.score(x) < self.checked_threshold()

    def checked_threshold(self) -> float:
        """The threshold, refused unless finite and in (0, 1): a NaN would flag nothing, and
        1 everything, without a word."""
        t = self.threshold
        if t is None:
            raise ValueError("no threshold: load a defence card, pass threshold=... or call calibrate()")
        if not (isinstance(t, int | float) and math.isfinite(t) and 0 < t < 1):
            raise ValueError(f"threshold {t!r} is out of range; a D-score threshold is finite, in (0, 1)")
        return float(t)

    # -- cleaning (Algorithm 1) --------------------------------------------------------

    def clean(self, x: torch.Tensor, *, seed: int = 0, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Algorithm 1 on every input: G(z_m) of the best restart."""
        return self.clean_detailed(x, seed=seed, latents=latents).images

    def initial_latents(self, n: int, seed: int) -> torch.Tensor:
        """z0 for ``n`` inputs x restarts: restart k of every input starts from the k-th draw of
        ``seed`` (a CPU generator), so that no input's start depends on its neighbours."""
        starts = torch.randn(self.restarts, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        return starts.repeat(n, 1)

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
        z0 = self._starts(x.shape[0], seed, latents)
        bar = tqdm(
            total=x.shape[0],
            desc=f"clean ({self.method.value})",
            unit="input",
            file=sys.stderr,
            disable=not self.execution.progress,
            mininterval=5.0,
            ascii=True,
        )
        parts = []
        with torch.no_grad():
            for inputs, rows in self.chunks(x.shape[0]):
                parts.append(self._clean_chunk(x[inputs], z0[rows], record))
                bar.update(inputs.stop - inputs.start)
        bar.close()
        chosen = {
            s: [torch.cat(column) for column in zip(*(p[0][s] for p in parts), strict=True)] for s in record
        }
        images, latents_m, loss = chosen[self.steps]
        return CleaningResult(
            images,
            latents_m,
            loss,
            torch.cat([p[1] for p in parts]),
            snapshots={s: c[0] for s, c in chosen.items()},
            snapshot_loss={s: c[2] for s, c in chosen.items()},
        )

    def clean_unrolled(self, x: torch.Tensor, *, seed: int = 0, last: int | None = None) -> torch.Tensor:
        """:meth:`clean`, differentiable in ``x`` through the last ``last`` steps (all of them by
        default): the exact gradient an attack needs (double backward through G and D). Its
        value is the same bits as :meth:`clean`'s: the same chunks, z0 and steps."""
        n = self._check_inputs(x.detach()).shape[0]
        z0 = self._starts(n, seed, None)
        kept = self.steps if last is None else min(last, self.steps)
        parts = [
            self._clean_chunk(x[inputs], z0[rows], [self.steps], graph_from=self.steps - kept)[0][self.steps][
                0
            ]
            for inputs, rows in self.chunks(n)
        ]
        return torch.cat(parts)

    def chunks(self, n: int) -> Iterator[tuple[slice, slice]]:
        """For ``n`` inputs, each chunk's inputs and their rows (input x restart): whole inputs,
        as many as fit in one chunk of ``execution.rows`` rows."""
        per, r = self.execution.rows // self.restarts, self.restarts
        for start in range(0, n, per):
            stop = min(start + per, n)
            yield slice(start, stop), slice(start * r, stop * r)

    def descend_chunk(
        self, x: torch.Tensor, z0: torch.Tensor, record: Iterable[int], *, graph_from: int | None = None
    ) -> tuple[Descent, torch.Tensor]:
        """Algorithm 1's descent on one chunk (``x``: its inputs, ``z0``: their rows), padded to
        ``execution.rows`` rows; returns the descent and the padded targets."""
        rows = self.execution.rows
        x_rows = self.execution.format(pad_rows(x.repeat_interleave(self.restarts, dim=0), rows))
        run = descend(
            self._run_objective,
            self.update_rule(),
            pad_rows(z0, rows).to(self.device),
            x_rows,
            steps=self.steps,
            record=record,
            early_stop_tol=self.early_stop_tol,
            create_graph=graph_from is not None,
            graph_from=graph_from or 0,
        )
        return run, x_rows

    def _starts(self, n: int, seed: int, latents: torch.Tensor | None) -> torch.Tensor:
        z0 = self.initial_latents(n, seed) if latents is None else latents
        if z0.shape != (n * self.restarts, self.latent_dim):
            raise ValueError(
                f"latents must have shape ({n * self.restarts}, {self.latent_dim}), got {tuple(z0.shape)}"
            )
        return z0

    def _clean_chunk(
        self, x: torch.Tensor, z0: torch.Tensor, record: list[int], *, graph_from: int | None = None
    ) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], torch.Tensor]:
        """One padded chunk of whole inputs: per recorded step, the best restart's image, z and
        L per input; and the steps each input's restarts ran (the most of them)."""
        k, r = x.shape[0], self.restarts
        run, x_rows = self.descend_chunk(x, z0, record, graph_from=graph_from)
        chosen = {s: self._best_restart(run.snapshots[s], x_rows, k) for s in record}
        return chosen, run.steps_run[: k * r].view(k, r).max(dim=1).values

    def _best_restart(
        self, z: torch.Tensor, x_rows: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Evaluate L on the whole padded chunk and keep, per input, the restart with the lowest."""
        with torch.set_grad_enabled(z.requires_grad):
            loss, fake = self._run_objective(z, x_rows)
        r = self.restarts
        best = loss[: k * r].detach().view(k, r).argmin(dim=1)
        pick = torch.arange(k, device=best.device) * r + best
        return fake[pick], z[pick], loss[pick]

    # -- the defence card --------------------------------------------------------------

    def save(self, path: PathLike, *, provenance: dict[str, Any] | None = None) -> None:
        """Write the defence card: G, D, the input shape, the threshold and p, and the
        cleaning settings, with where each came from (``provenance``)."""
        if self.threshold is None:
            raise ValueError("a defence card needs a threshold: call calibrate() first")
        generator, discriminator = self.sources
        save_card(
            path,
            generator,
            discriminator,
            input_shape=self.input_shape,
            threshold=self.threshold,
            p=self.p,
            settings=self.settings,
            provenance=provenance or {},
        )

    @classmethod
    def load(cls, path: PathLike, *, execution: Execution | None = None, **overrides: Any) -> Cowboy:
        """The defence a card describes, every field checked (:mod:`cowboy_core.card`);
        ``overrides`` replace its settings (say ``steps=50``)."""
        generator, discriminator, card = read_card(path, device=(execution or Execution()).device)
        settings = check_settings(card["settings"] | overrides, where="overrides")
        defense = cls(
            generator,
            discriminator,
            settings=settings,
            threshold=card["threshold"],
            p=card["p"],
            execution=execution,
        )
        defense.card = card
        if list(defense.input_shape) != list(card["input_shape"]):
            raise CardError(f"{path}: G makes {defense.input_shape}, the card says {card['input_shape']}")
        return defense
