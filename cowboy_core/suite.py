"""The robustness suite: a list of attack steps and one loop, in the shape of AutoAttack's
``attacks_to_run`` and torchattacks' ``MultiAttack``. Each step attacks only the images that
every earlier step left defended under a policy it can affect, and each result is judged by
the deployed :class:`~cowboy_core.defended.DefendedClassifier`, at the deployer's fixed seed
and at a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .adaptive import (
    FRESH_SEED,
    DefendedModel,
    Gradient,
    apgd,
    hinge_attack,
    latent_attack,
    single_step,
    square,
)
from .cleaning import Cowboy
from .defended import DefendedClassifier, Policy
from .detection import checked_threshold
from .diagnostics import surrogate_of

UNDEFENDED = "undefended"  # the "policy" of the bare classifier
EARLIER_RUN = "earlier_run"  # the worst case an earlier run left, where a doubled run starts
DETECTING = (Policy.DETECT_THEN_CLEAN.value, Policy.REJECT.value)  # what the hinge can break
CLEANING = (Policy.CLEAN_ALL.value, Policy.DETECT_THEN_CLEAN.value)  # what the cleaning attacks can


@dataclass(frozen=True, kw_only=True)
class Suite:
    """How hard to attack (config ``robustness``).

    Args:
        steps: APGD iterations (and the hinge attack's PGD iterations).
        restarts: APGD-CE restarts (each only on images not yet broken).
        eot: gradients averaged per step when the deployer draws a fresh seed per query.
        fresh_steps: APGD iterations of that EOT attack.
        surrogate_lr_scale: the surrogate cleaning's step size, relative to the deployed one.
        surrogate_steps: APGD iterations through the surrogate's unrolled gradient.
        square_images, square_queries: the gradient-free check.
        fresh_images: images attacked with a fresh seed per query (EOT).
        check_images: images for the doubled-budget and unbounded checks.
        latent_steps: Adam steps of the on-manifold (latent) attack on z; its BPDA refinement
            takes a tenth as many.
    """

    steps: int = 100
    restarts: int = 5
    eot: int = 8
    fresh_steps: int = 100
    surrogate_lr_scale: float = 0.25
    surrogate_steps: int = 100
    square_images: int = 100
    square_queries: int = 1000
    fresh_images: int = 100
    check_images: int = 100
    latent_steps: int = 200

    def scaled(self, factor: int) -> Suite:
        """Every budget times ``factor`` (steps, restarts, EOT, queries): the convergence check.
        The image counts stay: the check compares the same images."""
        budgets = (
            "steps",
            "restarts",
            "eot",
            "fresh_steps",
            "surrogate_steps",
            "square_queries",
            "latent_steps",
        )
        return replace(self, **{name: getattr(self, name) * factor for name in budgets})


Images = Callable[["Scoreboard"], np.ndarray]
Attack = Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class AttackStep:
    """One attack of the suite: which images it runs on (given what is still defended), how it
    perturbs them, and whether its result counts towards the worst case (a check does not).
    ``only``, if set, picks the images of ``images`` it attacks; the rest are recorded as
    covered and not attacked (NaN), so that a check comparing it with the other attacks still
    compares on every image it covers."""

    name: str
    images: Images
    attack: Attack
    worst_case: bool = True
    only: Images | None = None


def everything(board: Scoreboard) -> np.ndarray:
    return np.arange(board.n)


def first(count: int) -> Images:
    """The images among the set's first ``count``: those of this board's shard, if any."""
    return lambda board: np.arange(max(0, min(board.n, count - board.first_image)))


def still_defended(policies: tuple[str, ...]) -> Images:
    """The images some of ``policies`` still defend: an attack that can only affect those
    policies need not run on the rest."""

    def images(board: Scoreboard) -> np.ndarray:
        names = [p for p in policies if p in board.robust]
        return np.flatnonzero(np.any([board.robust[p] for p in names], axis=0))

    return images


class Scoreboard:
    """Per image and policy, whether every worst-case attack so far was defended; and the rows
    of the suite's table: image, attack, policy, seed, worst_case, defended."""

    def __init__(
        self,
        classifier: nn.Module,
        defense: Cowboy | None,
        y: torch.Tensor,
        *,
        seed: int,
        first_image: int = 0,
    ) -> None:
        self.classifier, self.defense, self.y, self.seed = classifier, defense, y, seed
        self.n, self.first_image = y.shape[0], first_image
        policies = [UNDEFENDED] if defense is None else [p.value for p in Policy]
        self.robust = {p: np.ones(self.n, dtype=bool) for p in policies}
        self.rows: list[pd.DataFrame] = []

    def correct(self, x_adv: torch.Tensor, index: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """Per policy, whether the deployed model defends each attacked image."""
        if self.defense is None:
            with torch.no_grad():
                return {UNDEFENDED: (self.classifier(x_adv).argmax(1) == self.y[index]).cpu().numpy()}
        found = deployed_correct(self.classifier, self.defense, x_adv, self.y[index], seed=seed)
        return {policy.value: right for policy, right in found.items()}

    def record(self, step: AttackStep, index: np.ndarray, x_adv: torch.Tensor) -> None:
        fixed = self.correct(x_adv, index, self.seed)
        seedless = self.defense is None or not self.defense.uses_seed
        fresh = fixed if seedless else self.correct(x_adv, index, FRESH_SEED)
        for seed_kind, found in (("fixed", fixed), ("fresh", fresh)):
            for policy, right in found.items():
                self.add_rows(step, index, policy, seed_kind, right.astype(float))
                if seed_kind == "fixed" and step.worst_case:
                    self.robust[policy][index] &= right

    def record_not_attacked(self, step: AttackStep, index: np.ndarray) -> None:
        """``index``: images ``step`` covers and skipped, each already broken under every policy."""
        for seed_kind in ("fixed", "fresh"):
            for policy in self.robust:
                self.add_rows(step, index, policy, seed_kind, np.full(len(index), np.nan))

    def add_rows(
        self, step: AttackStep, index: np.ndarray, policy: str, seed_kind: str, defended: np.ndarray
    ) -> None:
        self.rows.append(
            pd.DataFrame(
                {
                    "image": index,
                    "attack": step.name,
                    "policy": policy,
                    "seed": seed_kind,
                    "worst_case": step.worst_case,
                    "defended": defended,
                }
            )
        )

    def start_from(self, broken: dict[str, np.ndarray]) -> None:
        """Start with the images an earlier run broke, per policy at the fixed seed (a boolean
        mask each), recorded as one worst-case row per image ("earlier_run")."""
        for policy, mask in broken.items():
            self.robust[policy] &= ~mask
            self.rows.append(
                pd.DataFrame(
                    {
                        "image": np.arange(self.n),
                        "attack": EARLIER_RUN,
                        "policy": policy,
                        "seed": "fixed",
                        "worst_case": True,
                        "defended": (~mask).astype(float),
                    }
                )
            )

    def summary(self) -> str:
        return ", ".join(f"{p} {robust.mean():.3f}" for p, robust in self.robust.items())


def deployed_correct(
    classifier: nn.Module, defense: Cowboy, x: torch.Tensor, y: torch.Tensor, *, seed: int
) -> dict[Policy, np.ndarray]:
    """Per image and policy, whether the deployed :class:`DefendedClassifier` defends it: the
    right class, or (policy "reject") a rejection, which counts as correct."""
    out: dict[Policy, np.ndarray] = {}
    cleaned = defense.clean(x, seed=seed)  # once for every policy: the same bits (apply_policy)
    for policy in Policy:
        model = DefendedClassifier(classifier, defense, policy, seed=seed)
        logits, report = model.defend(x, cleaned=cleaned)
        right = (logits.argmax(1) == y.to(logits.device)).cpu() | report.rejected.cpu()
        out[policy] = right.numpy()
    return out


def run_suite(
    classifier: nn.Module,
    defense: Cowboy | None,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    suite: Suite,
    median_real_score: float,
    checks: bool = False,
    seed: int = 0,
    log: Any = print,
    broken: dict[str, np.ndarray] | None = None,
    first_image: int = 0,
) -> pd.DataFrame:
    """Every attack step on ``classifier`` behind ``defense`` (None: the bare classifier), in
    order, each on the images still defended. Rows: image, attack, policy, seed, worst_case,
    defended (an image an attack did not run on has no row for it).

    ``broken`` (per policy, a mask of the images an earlier run broke at the fixed seed) starts
    the board from that run, as AutoAttack runs each further attack on what is left: the
    convergence check's doubled run then measures what twice the budget breaks beyond it.

    ``first_image`` is the index of ``x[0]`` in the whole set when ``x`` is one shard of it:
    the steps on the set's first N images (Square, EOT, the checks) then run on the same
    images however the set is sharded. Image numbers in the rows stay local to ``x``."""
    board = Scoreboard(classifier, defense, y, seed=seed, first_image=first_image)
    if broken is not None:
        board.start_from(broken)
    attacks = Attacks(classifier, x, y, epsilon=epsilon, suite=suite, seed=seed)
    if defense is None:
        steps = attacks.undefended()
    else:
        steps = attacks.defended(defense, median_real_score=median_real_score, checks=checks)
    for step in steps:
        index = step.images(board)
        if step.only is not None:
            attacked = np.intersect1d(index, step.only(board))
            board.record_not_attacked(step, np.setdiff1d(index, attacked))
            index = attacked
        if len(index) == 0:  # every image is already broken under the policies it can affect
            continue
        # On CUDA an attack's backward passes through the cleaning run after the cleaning's own
        # deterministic-kernels context has closed: run the whole step inside it (no-op on CPU).
        with defense.execution.kernels() if defense is not None else contextlib.nullcontext():
            x_adv = step.attack(index)
        board.record(step, index, x_adv)
        log(f"eps={epsilon} {step.name}: {len(index)} images, robust now {board.summary()}")
    return pd.concat(board.rows, ignore_index=True)


class Attacks:
    """The suite's attack steps, in order: cheap and transferred first, then the exact unrolled
    gradient (the primary white-box attack), BPDA, the surrogate, the latent attack, Square,
    EOT over fresh seeds, and (``checks``) Carlini et al.'s sanity checks."""

    def __init__(
        self,
        classifier: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        suite: Suite,
        seed: int,
    ) -> None:
        self.classifier, self.x, self.y = classifier, x, y
        self.epsilon, self.suite, self.seed = epsilon, suite, seed

    def apgd(self, model: DefendedModel, *, loss: str = "ce", restarts: int = 1, **budget: Any) -> Attack:
        settings = {"epsilon": self.epsilon, "steps": self.suite.steps, "seed": self.seed, **budget}
        return lambda i: apgd(model, self.x[i], self.y[i], restarts=restarts, loss=loss, **settings)

    def square(self, model: DefendedModel, policies: tuple[str, ...]) -> AttackStep:
        """Square covers the set's first ``square_images`` and attacks those some of ``policies``
        still defends: as in AutoAttack, a further attack cannot lower a worst case that is already
        0, and those images took most of its queries once the gradient attacks had run."""
        queries, eps, seed = self.suite.square_queries, self.epsilon, self.seed
        attack = lambda i: square(model, self.x[i], self.y[i], epsilon=eps, queries=queries, seed=seed)  # noqa: E731
        return AttackStep("square", first(self.suite.square_images), attack, only=still_defended(policies))

    def undefended(self) -> Iterator[AttackStep]:
        bare, alive = DefendedModel(self.classifier, None), still_defended((UNDEFENDED,))
        yield AttackStep("clean", everything, lambda i: self.x)
        yield AttackStep("transfer_apgd_ce", everything, self.apgd(bare))
        yield AttackStep("apgd_dlr", alive, self.apgd(bare, loss="dlr"))
        yield self.square(bare, (UNDEFENDED,))

    def defended(self, defense: Cowboy, *, median_real_score: float, checks: bool) -> Iterator[AttackStep]:
        yield AttackStep("clean", everything, lambda i: self.x)
        yield AttackStep("transfer_apgd_ce", everything, self.apgd(DefendedModel(self.classifier, None)))
        targets = {
            "hinge_threshold": checked_threshold(defense.threshold),
            "hinge_median_real": median_real_score,
        }
        for name, target in targets.items():
            yield AttackStep(name, still_defended(DETECTING), self.hinge(defense, target))
        # The primary white-box attack: the exact gradient, unrolled through every cleaning step
        # (its forward pass is the deployed cleaning, bit for bit).
        exact = DefendedModel(self.classifier, defense, gradient=Gradient.UNROLLED, seed=self.seed)
        bpda = DefendedModel(self.classifier, defense, seed=self.seed)
        yield from self.apgd_ce_then_dlr("unrolled", exact)
        one_step = lambda i: single_step(bpda, self.x, self.y, epsilon=self.epsilon)  # noqa: E731
        yield AttackStep("bpda_single_step", everything, one_step)
        yield from self.apgd_ce_then_dlr("bpda", bpda)
        surrogate = surrogate_of(defense, self.suite.surrogate_lr_scale)
        smooth = DefendedModel(
            self.classifier, defense, gradient=Gradient.SURROGATE, surrogate=surrogate, seed=self.seed
        )
        through_smooth = self.apgd(smooth, steps=self.suite.surrogate_steps)
        yield AttackStep("surrogate_apgd_ce", still_defended(CLEANING), through_smooth)
        yield AttackStep("latent", still_defended(CLEANING), self.latent(defense))
        yield self.square(bpda, tuple(policy.value for policy in Policy))
        if defense.uses_seed:  # else EOT over fresh seeds is bpda_apgd_ce again, at fewer steps
            eot = DefendedModel(self.classifier, defense, seed=None)
            fresh = self.apgd(eot, steps=self.suite.fresh_steps, eot=self.suite.eot)
            yield AttackStep("bpda_apgd_ce_eot_fresh_seed", first(self.suite.fresh_images), fresh)
        if checks:
            yield from self.carlini_checks(exact, bpda)

    def latent(self, defense: Cowboy) -> Attack:
        eps, seed, steps = self.epsilon, self.seed, self.suite.latent_steps
        return lambda i: latent_attack(
            self.classifier, defense, self.x[i], self.y[i],
            epsilon=eps, steps=steps, refine_steps=max(1, steps // 10), seed=seed,
        )  # fmt: skip

    def hinge(self, defense: Cowboy, target: float) -> Attack:
        return lambda i: hinge_attack(
            self.classifier, defense.discriminator, self.x[i], self.y[i],
            epsilon=self.epsilon, target_score=target, steps=self.suite.steps, seed=self.seed,
        )  # fmt: skip

    def apgd_ce_then_dlr(self, prefix: str, model: DefendedModel) -> Iterator[AttackStep]:
        """APGD-CE (with the suite's restarts), then APGD-DLR, each on the images still defended."""
        alive = still_defended(CLEANING)
        yield AttackStep(f"{prefix}_apgd_ce", alive, self.apgd(model, restarts=self.suite.restarts))
        yield AttackStep(f"{prefix}_apgd_dlr", alive, self.apgd(model, loss="dlr"))

    def carlini_checks(self, exact: DefendedModel, bpda: DefendedModel) -> Iterator[AttackStep]:
        """Carlini et al.'s checks, outside the worst case: the exact attack at twice the budget
        (a converged attack barely moves) and an unbounded one (it must reach 0)."""
        images, suite = first(self.suite.check_images), self.suite
        doubled = self.apgd(exact, restarts=2 * suite.restarts, steps=2 * suite.steps, seed=self.seed + 1)
        yield AttackStep("check_unrolled_apgd_ce_2x", images, doubled, worst_case=False)
        yield AttackStep("check_unbounded", images, self.apgd(bpda, epsilon=1.0), worst_case=False)
