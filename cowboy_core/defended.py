"""A drop-in defended classifier: D flags, G and D clean, the original classifier decides."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .card import classifier_fingerprint
from .choices import Choice
from .cleaning import Cowboy
from .detection import checked_threshold
from .devices import check_same_device
from .execution import Execution
from .io import PathLike


class Policy(Choice, what="policy"):
    """What to do with inputs: clean the flagged ones, clean every one, or reject the flagged."""

    DETECT_THEN_CLEAN = "detect-then-clean"
    CLEAN_ALL = "clean-all"
    REJECT = "reject"


@dataclass
class DefenseReport:
    """Side channel of :class:`DefendedClassifier`: per input, what the defence did."""

    scores: torch.Tensor
    flagged: torch.Tensor
    cleaned: torch.Tensor
    rejected: torch.Tensor


def apply_policy(
    defense: Cowboy,
    x: torch.Tensor,
    policy: str | Policy,
    *,
    seed: int = 0,
    cleaned: torch.Tensor | None = None,
) -> tuple[torch.Tensor, DefenseReport]:
    """The defence's inputs for the classifier, and what it did: the one implementation of
    detect-then-clean, clean-all and reject (used by :class:`DefendedClassifier` and the CLI).

    ``cleaned``, if given, is ``defense.clean(x, seed=seed)`` computed once for every row: each
    policy then takes its flagged rows from it instead of cleaning them again. The answer is
    the same bits, because an input's cleaning depends on nothing but itself and the seed.
    """
    policy = Policy.parse(policy)
    if cleaned is not None and cleaned.shape != x.shape:
        raise ValueError(f"cleaned must have the inputs' shape {tuple(x.shape)}, got {tuple(cleaned.shape)}")
    scores = defense.score(x)
    if policy is Policy.CLEAN_ALL:
        flagged = torch.ones_like(scores, dtype=torch.bool)
    else:
        flagged = scores < checked_threshold(defense.threshold)
    inputs = x.to(defense.device).clone()
    was_cleaned, rejected = torch.zeros_like(flagged), torch.zeros_like(flagged)
    if policy is Policy.REJECT:
        rejected = flagged.clone()
    elif bool(flagged.any()):
        # An input's cleaning depends on nothing but itself and the seed (Cowboy's chunks and
        # z0), so which other inputs were flagged cannot change it.
        rows = flagged.to(x.device)
        fresh = defense.clean(x[rows], seed=seed) if cleaned is None else cleaned[rows.to(cleaned.device)]
        inputs[flagged] = fresh.to(inputs.device, inputs.dtype)
        was_cleaned = flagged.clone()
    return inputs, DefenseReport(scores=scores, flagged=flagged, cleaned=was_cleaned, rejected=rejected)


class DefendedClassifier(nn.Module):
    """Wrap any classifier that takes inputs in [-1, 1] with the cowboy defence.

    ``forward`` returns logits; rows of rejected inputs (policy "reject") are NaN, so that an
    abstention can never be mistaken for a prediction. ``last_report`` holds the side channel.

    Args:
        classifier: the deployed model; it is not modified.
        defense: a :class:`Cowboy` with a threshold (not needed for "clean-all").
        policy: "detect-then-clean", "clean-all" or "reject".
        seed: seed of the random z0 used when cleaning.
    """

    def __init__(
        self,
        classifier: nn.Module,
        defense: Cowboy,
        policy: str | Policy = Policy.DETECT_THEN_CLEAN,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.defense = defense
        self.policy = Policy.parse(policy)
        self.seed = seed
        check_same_device(classifier, defense.device, what="the classifier")
        if self.policy is not Policy.CLEAN_ALL and defense.threshold is None:
            raise ValueError(f"policy {self.policy.value!r} needs a defense with a threshold")
        self.last_report: DefenseReport | None = None

    @classmethod
    def load(
        cls,
        path: PathLike,
        classifier: nn.Module,
        policy: str | Policy = Policy.DETECT_THEN_CLEAN,
        *,
        seed: int = 0,
        execution: Execution | None = None,
        **overrides: Any,
    ) -> DefendedClassifier:
        """``classifier`` behind the defence a card describes (``results/defense/*.safetensors``)."""
        defense = Cowboy.load(path, execution=execution, **overrides)
        model = cls(classifier, defense, policy, seed=seed)  # checks the devices before the probe runs
        probe = torch.zeros(2, *defense.input_shape, device=defense.device)
        try:
            with torch.no_grad():
                logits = classifier.eval()(probe)
        except RuntimeError as err:
            raise ValueError(
                f"the classifier cannot take the card's inputs {defense.input_shape}: {err}"
            ) from err
        if logits.dim() != 2 or logits.shape[0] != 2:
            raise ValueError(f"the classifier must return (N, classes) logits, got {tuple(logits.shape)}")
        _warn_if_chosen_for_another(defense.card["provenance"], classifier)  # a checked key
        return model

    def defend(
        self, x: torch.Tensor, *, cleaned: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, DefenseReport]:
        """Logits and the report for a batch ``x`` in [-1, 1]; ``cleaned``: every row of ``x``
        already cleaned with this defence and seed (see :func:`apply_policy`), to share one
        cleaning between policies."""
        inputs, report = apply_policy(self.defense, x, self.policy, seed=self.seed, cleaned=cleaned)
        with torch.no_grad():  # in the defence's padded chunks: the same bits in any batch
            logits = self.defense.execution.map_rows(self.classifier, inputs).float()
        if bool(report.rejected.any()):
            logits[report.rejected.to(logits.device)] = float("nan")
        return logits, report

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, self.last_report = self.defend(x)
        return logits


def mixed_stream(
    clean: torch.Tensor, adversarial: torch.Tensor, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deployment stream: each image once, a seeded half as itself and the rest attacked.

    Returns the stream and a boolean mask of its adversarial rows.
    """
    attacked = stream_attacked(clean.shape[0], seed=seed)
    mask = attacked.view(-1, *([1] * (clean.dim() - 1)))
    return torch.where(mask, adversarial, clean), attacked


def stream_attacked(n: int, *, seed: int) -> torch.Tensor:
    """Which rows of an ``n``-image :func:`mixed_stream` are attacked: a seeded half, the same
    rows for every attack, so that streams share their clean half."""
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    return perm < n // 2


class OtherClassifierWarning(UserWarning):
    """A card's settings were chosen, and its numbers measured, in front of another classifier."""


def _warn_if_chosen_for_another(provenance: dict[str, Any], classifier: nn.Module) -> None:
    """Say so when ``classifier`` is not the one the card was chosen in front of: the defence
    still runs, but the card's validation numbers do not describe it (a Rec variant's card
    in front of the standard classifier loses accuracy)."""
    record = provenance.get("classifier")
    if record is not None and classifier_fingerprint(classifier) != record["sha256"]:
        warnings.warn(
            f"this card was chosen in front of {record['source']} (sha256 {record['sha256'][:12]}...), "
            "and this classifier differs: the card's validation numbers do not describe it",
            OtherClassifierWarning,
            stacklevel=3,
        )
