"""Algorithm 1: clean an input by descending ``L(z) = ||G(z)-x||^2 / (2 sigma^2) - log D(G(z))``.

Three seams, each small: the :class:`~cowboy_core.descent.Objective` (eq. 4; Defense-GAN is
the same objective with the D term's weight at zero), the update rules
(:mod:`cowboy_core.updates`) and one loop, :func:`~cowboy_core.descent.descend`.
:class:`Cowboy` puts them together with the detector;
:class:`~cowboy_core.execution.Execution` decides only how fast it runs.

"sigma = inf gives Defense-GAN" is backwards for eq. (4): a larger sigma *shrinks* the
reconstruction term, leaving only -log D. The baseline is therefore an explicit method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .card import CardError, read_card, save_card
from .descent import Descent, Objective, descend
from .detection import Calibration, calibrate_threshold, checked_threshold, scores_from_logits
from .execution import Execution, pad_rows
from .inputs import check_inputs, checked_encoder, pair_input_shape
from .io import PathLike
from .memory import Job, MemoryPlanError, activations_per_row, out_of_memory_message, row_bytes
from .restarts import best_rows, check_latents, chunk_slices, expand_rows, initial_latents, most_steps
from .settings import DEFAULT_SETTINGS, Method, Settings, check_settings
from .updates import rule_for


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
    :attr:`rows` rows (the last one padded with fixed filler), and restart k of every
    input starts from the same z0 (drawn from ``seed``), so that an input's result is the same
    bits alone, in any batch and in any chunking, on one device.

    Args:
        generator: G, mapping z ~ N(0, I) of size ``generator.latent_dim`` to an input.
        discriminator: D, returning logits; D(x) = sigmoid(logit).
        settings: the algorithm's :class:`Settings` (default: the paper's protocol).
        threshold: D-score below which :meth:`detect` flags an input (see :meth:`calibrate`).
        execution: how G and D run (device, chunk size, exact speed rewrites).
        encoder: E, mapping an input to a latent; restart 0 starts from E(x) when
            ``settings.start`` is "encoder" (see :func:`~cowboy_core.training.train_encoder`).

    ``threshold_power`` is the p of the L^p average the threshold came from (1 unless
    :meth:`calibrate` or a card set it); a card records it.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        settings: Settings | None = None,
        *,
        threshold: float | None = None,
        execution: Execution | None = None,
        encoder: nn.Module | None = None,
    ) -> None:
        self._settings = check_settings(asdict(settings or DEFAULT_SETTINGS))
        self.method = Method.parse(self.settings.method)
        self.threshold, self.threshold_power = threshold, 1.0
        self.card: dict[str, Any] = {}  # what a loaded defence card says, provenance included
        self.execution = execution or Execution()
        self.device = torch.device(self.execution.device)
        # z0 in G's own dtype: float32 as trained, float64 for a finite-difference check.
        weights = next(iter(generator.parameters()), None)
        self.dtype = weights.dtype if weights is not None else torch.get_default_dtype()
        self.latent_dim = int(getattr(generator, "latent_dim", 0))
        if self.latent_dim < 1:
            raise ValueError("the generator needs a positive integer attribute 'latent_dim'")
        self.sources = (generator, discriminator)  # the unrewritten models, for save()
        self.generator = self.execution.prepare(generator)
        self.discriminator = self.execution.prepare(discriminator)
        self.encoder_source = encoder
        self.encoder = checked_encoder(encoder, self.settings, self.latent_dim, self.execution)
        self.input_shape = pair_input_shape(
            self.generator, self.discriminator, self.latent_dim, self.device, self.dtype
        )
        self.objective = objective_for(self.settings, self.generator, self.discriminator)
        # Compiled code cannot be differentiated twice (aot_autograd refuses double backward),
        # so every path that keeps a graph through the steps runs self.objective, eager.
        self._run_objective = self.execution.wrap(self.objective)
        # Rows per chunk, planned before any work (on CUDA from the memory budget): the unrolled
        # rows keep every step's graph; an attack's Execution plans both for it, so that its
        # plain and unrolled cleanings run the same chunks and agree to the bit.
        self.unrolled_rows = self._planned_rows(Job.UNROLLED)
        self.rows = (
            self.unrolled_rows if self.execution.job is Job.UNROLLED else self._planned_rows(Job.CLEANING)
        )

    def _planned_rows(self, job: Job) -> int:
        def cost() -> int:
            first = torch.zeros(1, self.latent_dim, device=self.device, dtype=self.dtype)
            activations = activations_per_row([self.generator, self.discriminator], first)
            return row_bytes(activations, job, steps=self.settings.steps, element_bytes=first.element_size())

        return self.execution.planned_rows(cost, minimum=self.settings.restarts)

    @property
    def settings(self) -> Settings:
        """The algorithm's settings, fixed at construction (the objective is built from them):
        another setting is another ``Cowboy``, as :meth:`load` makes with ``overrides``."""
        return self._settings

    @property
    def uses_seed(self) -> bool:
        """Whether the seed changes a cleaning: not with an encoder start and one restart
        (z0 = E(x)). Then a fresh seed per query gives an attacker nothing to average over:
        EOT is plain gradient descent, and fresh-seed robustness is fixed-seed robustness."""
        return self.encoder is None or self.settings.restarts > 1

    def with_settings(self, **changes: Any) -> Cowboy:
        """The same defence (G, D, E, threshold, execution) with some settings changed."""
        settings = check_settings(asdict(self.settings) | changes, where="changes")
        other = Cowboy(
            *self.sources,
            settings,
            threshold=self.threshold,
            execution=self.execution,
            encoder=self.encoder_source,
        )
        other.threshold_power, other.card = self.threshold_power, self.card
        return other

    # -- detection (section 3.3-3.4) ---------------------------------------------------

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) for each input, as float64 in (0, 1)."""
        # The sigmoid runs inside the padded chunks too: a vectorised elementwise kernel and
        # its scalar tail can differ in the last bit, so a row's value must not depend on n.
        return self.execution.map_rows(
            lambda rows: scores_from_logits(self.discriminator(rows).reshape(-1)),
            check_inputs(x, self.input_shape),
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
        self.threshold, self.threshold_power = calibration.threshold, calibration.p
        return calibration

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean flags: D scores the input below the calibrated threshold."""
        return self.score(x) < checked_threshold(self.threshold)

    # -- cleaning (Algorithm 1) --------------------------------------------------------

    def clean(self, x: torch.Tensor, *, seed: int = 0, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Algorithm 1 on every input: G(z_m) of the best restart."""
        return self.clean_detailed(x, seed=seed, latents=latents).images

    def clean_detailed(
        self,
        x: torch.Tensor,
        *,
        seed: int = 0,
        record_at: Iterable[int] = (),
        latents: torch.Tensor | None = None,
    ) -> CleaningResult:
        """Algorithm 1, batched over inputs and restarts, with snapshots at ``record_at`` steps.

        z0 is :func:`~cowboy_core.restarts.initial_latents` of ``seed``, or ``latents`` (one row
        per input and restart).
        """
        x, (steps, r) = check_inputs(x, self.input_shape), (self.settings.steps, self.settings.restarts)
        record = sorted({int(s) for s in record_at if 0 <= int(s) <= steps} | {steps})
        z0 = self.start_latents(x, seed) if latents is None else latents
        z0 = check_latents(z0, x.shape[0], r, self.latent_dim)
        bar = self.execution.progress_bar(x.shape[0], f"clean ({self.method.value})")
        parts = []
        with torch.no_grad():
            for inputs, rows in chunk_slices(x.shape[0], self.rows, r):
                parts.append(self._best_of_chunk(x[inputs], z0[rows], record))
                bar.update(inputs.stop - inputs.start)
        bar.close()
        return _joined(parts, record)

    def clean_unrolled(self, x: torch.Tensor, *, seed: int = 0, last: int | None = None) -> torch.Tensor:
        """:meth:`clean`, differentiable in ``x`` through the last ``last`` steps (all of them by
        default): the exact gradient an attack needs (double backward through G and D). Its
        value is the same bits as :meth:`clean`'s: the same chunks, z0 and steps."""
        n, steps = check_inputs(x.detach(), self.input_shape).shape[0], self.settings.steps
        kept = steps if last is None else min(last, steps)
        with torch.set_grad_enabled(kept == steps):  # E(x) keeps a graph when every step is unrolled
            z0 = self.start_latents(x, seed)
        parts = [
            self._best_of_chunk(x[inputs], z0[rows], [steps], graph_from=steps - kept)
            for inputs, rows in chunk_slices(n, self.unrolled_rows, self.settings.restarts)
        ]
        return torch.cat([part.best[steps][0] for part in parts])

    def start_latents(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """z0, one row per input and restart: the seed's draws, and for an encoder start E(x)
        in place of restart 0 (computed in padded chunks: the same bits in any batch)."""
        r = self.settings.restarts
        z0 = initial_latents(x.shape[0], r, self.latent_dim, seed).to(self.device, self.dtype)
        if self.encoder is None:
            return z0
        guess = self.execution.map_rows(self.encoder, x).to(z0.dtype)
        first = torch.zeros(x.shape[0] * r, 1, dtype=torch.bool, device=self.device)
        first[::r] = True
        return torch.where(first, guess.repeat_interleave(r, dim=0), z0)

    def descend_chunk(
        self, x: torch.Tensor, z0: torch.Tensor, record: Iterable[int], *, graph_from: int | None = None
    ) -> tuple[Descent, torch.Tensor]:
        """Algorithm 1's descent on one chunk (``x``: its inputs, ``z0``: their rows), padded to
        :attr:`rows` rows (:attr:`unrolled_rows` with a graph); returns the descent and the
        padded targets."""
        s, unrolled = self.settings, graph_from is not None
        rows = self.unrolled_rows if unrolled else self.rows
        x_rows = self.execution.format(pad_rows(expand_rows(x, s.restarts), rows))
        with self.execution.kernels(), _reported_out_of_memory(rows, self.execution):
            run = descend(
                self.objective if unrolled else self._run_objective,
                rule_for(s.optimizer, s.lr),
                pad_rows(z0, rows).to(self.device),
                x_rows,
                steps=s.steps,
                record=record,
                early_stop_tol=s.early_stop_tol,
                create_graph=graph_from is not None,
                graph_from=graph_from or 0,
            )
        return run, x_rows

    def _best_of_chunk(
        self, x: torch.Tensor, z0: torch.Tensor, record: list[int], *, graph_from: int | None = None
    ) -> _Chunk:
        """One padded chunk of whole inputs: per recorded step, the best restart's image, z and
        L per input (L evaluated on the whole padded chunk); and the steps each input ran."""
        k, r = x.shape[0], self.settings.restarts
        run, x_rows = self.descend_chunk(x, z0, record, graph_from=graph_from)
        best = {}
        for step in record:
            z = run.snapshots[step]
            objective = self.objective if z.requires_grad else self._run_objective  # eager: see __init__
            with torch.set_grad_enabled(z.requires_grad), self.execution.kernels():
                loss, fake = objective(z, x_rows)
            pick = best_rows(loss, k, r)
            best[step] = (fake[pick], z[pick], loss[pick])
        return _Chunk(best, most_steps(run.steps_run, k, r))

    # -- the defence card (cowboy_core.card) ---------------------------------------------

    def save(self, path: PathLike, *, provenance: dict[str, Any] | None = None) -> None:
        """Write the defence card: G, D, the input shape, the threshold and its L^p power, and
        the cleaning settings, with where each came from (``provenance``)."""
        if self.threshold is None:
            raise ValueError("a defence card needs a threshold: call calibrate() first")
        generator, discriminator = self.sources
        save_card(
            path,
            generator,
            discriminator,
            input_shape=self.input_shape,
            threshold=self.threshold,
            threshold_power=self.threshold_power,
            settings=self.settings,
            provenance=provenance or {},
            encoder=self.encoder_source if self.encoder is not None else None,
        )

    @classmethod
    def load(cls, path: PathLike, *, execution: Execution | None = None, **overrides: Any) -> Cowboy:
        """The defence a card describes, every field checked (:mod:`cowboy_core.card`);
        ``overrides`` replace its settings (say ``steps=50``)."""
        models, card = read_card(path, device=(execution or Execution()).device)
        settings = check_settings(card["settings"] | overrides, where="overrides")
        defense = cls(
            models["generator"],
            models["discriminator"],
            settings,
            threshold=card["threshold"],
            execution=execution,
            encoder=models.get("encoder"),
        )
        defense.threshold_power, defense.card = card["threshold_power"], card
        if list(defense.input_shape) != list(card["input_shape"]):
            raise CardError(f"{path}: G makes {defense.input_shape}, the card says {card['input_shape']}")
        return defense


@contextlib.contextmanager
def _reported_out_of_memory(rows: int, execution: Execution) -> Iterator[None]:
    """A CUDA out-of-memory error as one line with the rows, the budget and the setting to lower."""
    try:
        yield
    except torch.OutOfMemoryError as err:
        raise MemoryPlanError(out_of_memory_message(rows, execution.budget(), err)) from None


@dataclass
class _Chunk:
    """One chunk's cleaning: per recorded step, (image, z, L) of each input's best restart."""

    best: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    steps_run: torch.Tensor


def _joined(parts: list[_Chunk], record: list[int]) -> CleaningResult:
    """The chunks' results, concatenated in input order; the last recorded step is the result."""
    joined = {
        step: [torch.cat(column) for column in zip(*(part.best[step] for part in parts), strict=True)]
        for step in record
    }
    images, latents, loss = joined[record[-1]]
    return CleaningResult(
        images,
        latents,
        loss,
        torch.cat([part.steps_run for part in parts]),
        snapshots={step: best[0] for step, best in joined.items()},
        snapshot_loss={step: best[2] for step, best in joined.items()},
    )


def objective_for(settings: Settings, generator: nn.Module, discriminator: nn.Module) -> Objective:
    """Eq. (4) for ``settings``: with ``d_weight`` set, its equivalent form
    ``1/2 ||G(z)-x||^2 + d_weight (-log D(G(z)))``; Defense-GAN drops the D term."""
    d_weight = 1.0 if settings.d_weight is None else settings.d_weight
    d_weight = 0.0 if Method.parse(settings.method) is Method.DEFENSE_GAN else d_weight
    sigma = settings.sigma if settings.d_weight is None else 1.0
    return Objective(generator, discriminator, sigma=sigma, d_weight=d_weight)
