"""Evaluation of a defence: intervals, per-sample rows of a cleaning run, and stream metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .cleaning import CleaningResult, Cowboy
from .detection import discriminator_logits, scores_from_logits
from .training import predict


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sound at 0 and 1, unlike Wald)."""
    if total <= 0:
        return (math.nan, math.nan)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def per_sample_rows(
    defense: Cowboy,
    classifier: nn.Module,
    images: torch.Tensor,
    adversarial: torch.Tensor,
    labels: torch.Tensor,
    result: CleaningResult,
    **keys: Any,
) -> pd.DataFrame:
    """One row per image and recorded step: label, predictions and D on the original, the
    adversarial and the cleaned image, the final loss and the steps run. ``keys`` (dataset,
    attack, method, ...) are repeated on every row."""
    device = defense.device
    base = {
        **keys,
        "label": labels.numpy(),
        "pred_original": predict(classifier, images, device=device).cpu().numpy(),
        "pred_adversarial": predict(classifier, adversarial, device=device).cpu().numpy(),
        "d_original": defense.score(images).cpu().numpy(),
        "d_adversarial": defense.score(adversarial).cpu().numpy(),
    }
    frames = []
    for steps, cleaned in result.snapshots.items():
        d_cleaned = scores_from_logits(discriminator_logits(defense.discriminator, cleaned, device=device))
        snapshot = {
            "steps": steps,
            "pred_cleaned": predict(classifier, cleaned, device=device).cpu().numpy(),
            "d_cleaned": d_cleaned.cpu().numpy(),
            "loss": result.snapshot_loss[steps].cpu().numpy(),
            "steps_run": result.steps_run.clamp(max=steps).cpu().numpy(),
        }
        frames.append(pd.DataFrame(base | snapshot))
    return pd.concat(frames, ignore_index=True)


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
