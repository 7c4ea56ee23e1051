"""Evaluation of a defence: intervals, stream metrics, and the paired comparison of two
methods on the same images. Torch-free: the Snakefile reads modules that import it."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sound at 0 and 1, unlike Wald)."""
    if total <= 0:
        return (math.nan, math.nan)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def stream_metrics(
    labels: np.ndarray,
    is_adversarial: np.ndarray,
    predictions: np.ndarray,
    flagged: np.ndarray,
    rejected: np.ndarray,
) -> dict[str, float]:
    """A defended classifier on a mixed stream: accuracy (a rejection is wrong) with its 95%
    interval, on the clean part (the cost of false alarms) and on the adversarial part; the
    accuracy counting rejections as correct; the detector's rates."""
    labels, adv = np.asarray(labels), np.asarray(is_adversarial, dtype=bool)
    flagged, rejected = np.asarray(flagged, dtype=bool), np.asarray(rejected, dtype=bool)
    correct = (np.asarray(predictions) == labels) & ~rejected

    def mean(values: np.ndarray, mask: np.ndarray) -> float:
        return float(values[mask].mean()) if mask.any() else math.nan

    low, high = wilson_interval(int(correct.sum()), int(correct.size))
    everything = np.ones_like(adv)
    return {
        "stream_accuracy": mean(correct, everything),
        "ci_low": low,
        "ci_high": high,
        "clean_part_accuracy": mean(correct, ~adv),
        "adversarial_part_accuracy": mean(correct, adv),
        "accuracy_with_abstention": mean(correct | rejected, everything),
        "false_alarm_rate": mean(flagged, ~adv),
        "detection_rate": mean(flagged, adv),
        "n": int(labels.size),
    }


def paired_comparison(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    strata: np.ndarray | None = None,
    margin: float = 0.02,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Method a against method b on the same images (say cowboy minus Defense-GAN).

    The accuracy difference with a 95% paired-bootstrap interval (images resampled within each
    stratum, such as a GAN seed); McNemar's exact test on the discordant pairs, pooled over
    strata (under no difference each discordant pair is a fair coin, in every stratum); and
    TOST equivalence within +-``margin`` (two one-sided t-tests on the per-image differences).
    """
    from scipy import stats

    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired outcomes need equal, non-empty shapes; got {a.shape} and {b.shape}")
    groups = np.zeros(a.size, dtype=int) if strata is None else np.unique(strata, return_inverse=True)[1]
    diff = a - b
    rng = np.random.default_rng(seed)
    boot = np.zeros(resamples)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        picks = rng.integers(0, members.size, size=(resamples, members.size))
        boot += diff[members][picks].sum(axis=1)
    boot /= a.size
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    discordant = a_only + b_only
    mcnemar = stats.binomtest(a_only, discordant, 0.5).pvalue if discordant else 1.0
    if np.all(diff == diff[0]):  # no spread: the one-sided tests are decided by the mean alone
        tost = 0.0 if -margin < diff[0] < margin else 1.0
    else:
        lower = stats.ttest_1samp(diff, -margin, alternative="greater").pvalue
        upper = stats.ttest_1samp(diff, margin, alternative="less").pvalue
        tost = float(max(lower, upper))
    low, high = np.quantile(boot, [0.025, 0.975])
    return {
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "a_only_correct": a_only,
        "b_only_correct": b_only,
        "mcnemar_p": float(mcnemar),
        "tost_p": tost,
        "equivalent": bool(tost < 0.05),
        "n": int(a.size),
    }
