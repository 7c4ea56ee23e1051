"""Detection with D (section 3.3-3.4): scores, the L^p-average threshold, and ROC metrics.

An input is flagged as adversarial when D scores it *below* the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# Footnote 2: an attack counts as adversarial if it cuts accuracy by at least 20 percent
# (points of accuracy, absolute).
MIN_ACCURACY_DROP = 0.2


@torch.no_grad()
def discriminator_logits(
    discriminator: nn.Module,
    inputs: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Logits of D for ``inputs`` (eval mode), batched; D(x) = sigmoid(logit)."""
    discriminator.eval()
    out = [
        discriminator(inputs[i : i + batch_size].to(device)).reshape(-1)
        for i in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, device=device)


def scores_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """D(x) in (0, 1), in float64 so that scores near 1 stay distinguishable."""
    return torch.sigmoid(logits.to(torch.float64))


def checked_threshold(threshold: float | None) -> float:
    """``threshold``, refused unless finite and in (0, 1): a NaN would flag nothing, and 1
    everything, without a word."""
    if threshold is None:
        raise ValueError("no threshold: load a defence card, pass threshold=... or call calibrate()")
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and 0 < threshold < 1):
        raise ValueError(f"threshold {threshold!r} is out of range; a D-score threshold is finite, in (0, 1)")
    return float(threshold)


def lp_threshold(scores: torch.Tensor | np.ndarray, p: float) -> float:
    """The L^p average ``((1/n) sum s^p)^(1/p)`` of D-scores; p=1 is the mean, p=inf the max."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    if s.numel() == 0:
        raise ValueError("cannot calibrate a threshold on zero scores")
    if torch.any(s < 0):
        raise ValueError("D-scores must be non-negative probabilities")
    if not p >= 1:
        raise ValueError(f"p must be in [1, inf], got {p}")
    if math.isinf(p):
        return float(s.max())
    # Scale by the max before the power so that large p does not underflow to zero.
    top = float(s.max())
    if top == 0.0:
        return 0.0
    return top * float(((s / top) ** p).mean() ** (1.0 / p))


def attack_is_adversarial(
    accuracy_clean: float, accuracy_adversarial: float, min_drop: float = MIN_ACCURACY_DROP
) -> bool:
    """Footnote 2: the attack cuts accuracy by at least ``min_drop`` (absolute)."""
    return accuracy_clean - accuracy_adversarial >= min_drop


@dataclass(frozen=True)
class Calibration:
    """A section 3.4 threshold, and whether its attack was adversarial (footnote 2)."""

    threshold: float
    p: float
    accuracy_drop: float | None
    is_adversarial: bool | None

    def require_adversarial(self) -> Calibration:
        """This calibration, or an error if its attack did not cut accuracy enough."""
        if self.is_adversarial is False:
            raise ValueError(
                f"the calibration attack lowers accuracy by only {self.accuracy_drop:.3f}, less than "
                f"the {MIN_ACCURACY_DROP:.0%} drop that makes its samples adversarial (footnote 2); "
                "raise its epsilon or pick a stronger calibration attack"
            )
        return self


def calibrate_threshold(
    adversarial_scores: torch.Tensor | np.ndarray,
    *,
    p: float = 1.0,
    accuracy_clean: float | None = None,
    accuracy_adversarial: float | None = None,
    min_drop: float = MIN_ACCURACY_DROP,
) -> Calibration:
    """Section 3.4: the L^p average of D on one attack's samples. With the accuracies before
    and after that attack, also whether its samples count as adversarial."""
    threshold = lp_threshold(adversarial_scores, p)
    if accuracy_clean is None or accuracy_adversarial is None:
        return Calibration(threshold, p, None, None)
    drop = accuracy_clean - accuracy_adversarial
    adversarial = attack_is_adversarial(accuracy_clean, accuracy_adversarial, min_drop)
    return Calibration(threshold, p, drop, adversarial)


def _as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).numpy().reshape(-1)
    return np.asarray(values, dtype=np.float64).reshape(-1)


def roc_auc(real_scores: torch.Tensor | np.ndarray, adversarial_scores: torch.Tensor | np.ndarray) -> float:
    """Probability that D scores a random real input above a random adversarial one (ties: 1/2)."""
    real, adv = _as_numpy(real_scores), _as_numpy(adversarial_scores)
    if real.size == 0 or adv.size == 0:
        raise ValueError("ROC-AUC needs at least one real and one adversarial score")
    # Imported here, not at the top: scipy.stats costs about a second of start-up, which every
    # Snakemake job (one interpreter each) would pay for a function few of them call.
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([real, adv]))
    rank_sum_real = ranks[: real.size].sum()
    u = rank_sum_real - real.size * (real.size + 1) / 2.0
    return float(u / (real.size * adv.size))


def threshold_at_fpr(real_scores: torch.Tensor | np.ndarray, fpr: float = 0.05) -> float:
    """Largest threshold that flags (score < t) at most ``fpr`` of the real inputs."""
    real = np.sort(_as_numpy(real_scores))
    if real.size == 0:
        raise ValueError("need at least one real score")
    allowed = math.floor(fpr * real.size)  # real inputs that may be flagged
    return float(real[allowed]) if allowed < real.size else math.inf


def detection_rate(scores: torch.Tensor | np.ndarray, threshold: float) -> float:
    """Fraction of inputs flagged, i.e. scored strictly below ``threshold``."""
    s = _as_numpy(scores)
    return float((s < threshold).mean()) if s.size else float("nan")


def tpr_at_fpr(
    real_scores: torch.Tensor | np.ndarray,
    adversarial_scores: torch.Tensor | np.ndarray,
    fpr: float = 0.05,
) -> float:
    """True-positive rate on adversarial inputs at a false-positive rate of ``fpr`` on real ones."""
    return detection_rate(adversarial_scores, threshold_at_fpr(real_scores, fpr))
