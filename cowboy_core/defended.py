"""A drop-in defended classifier: D flags, G and D clean, the original classifier decides."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .choices import Choice
from .cleaning import Cowboy


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
        if self.policy is not Policy.CLEAN_ALL and defense.threshold is None:
            raise ValueError(f"policy {self.policy.value!r} needs a defense with a threshold")
        self.last_report: DefenseReport | None = None

    def defend(self, x: torch.Tensor) -> tuple[torch.Tensor, DefenseReport]:
        """Logits and the report for a batch ``x`` in [-1, 1]."""
        scores = self.defense.score(x)
        if self.policy is Policy.CLEAN_ALL:
            flagged = torch.ones_like(scores, dtype=torch.bool)
        else:
            flagged = scores < float(self.defense.threshold)  # type: ignore[arg-type]
        inputs = x.to(self.defense.device).clone()
        cleaned = torch.zeros_like(flagged)
        rejected = torch.zeros_like(flagged)
        if self.policy is Policy.REJECT:
            rejected = flagged.clone()
        elif bool(flagged.any()):
            inputs[flagged] = self.defense.clean(x[flagged.to(x.device)], seed=self.seed).to(inputs.dtype)
            cleaned = flagged.clone()
        with torch.no_grad():
            logits = self.classifier(inputs).float()
        if bool(rejected.any()):
            logits[rejected.to(logits.device)] = float("nan")
        report = DefenseReport(scores=scores, flagged=flagged, cleaned=cleaned, rejected=rejected)
        return logits, report

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, self.last_report = self.defend(x)
        return logits
