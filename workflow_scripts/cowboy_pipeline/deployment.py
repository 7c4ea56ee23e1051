"""The deployment rule's streams: the deployed DefendedClassifier under each policy on half
clean, half attacked test images, every stream's rows cleaned once and shared by the policies,
and a sample of each defended again from scratch (the job fails if one logit differs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cowboy_core import Cowboy, DefendedClassifier, Policy
from cowboy_core.defended import mixed_stream
from cowboy_core.training import predict

from .robustness import operating_curve
from .statistics import stream_metrics

CHECKED_ROWS = 48  # rows of each stream defended again from scratch, under every policy


def clean_rows(defense: Cowboy, x: torch.Tensor, rows: torch.Tensor, seed: int) -> torch.Tensor:
    """``x`` with ``rows`` cleaned (the other rows are never read)."""
    out = x.clone()
    out[rows] = defense.clean(x[rows], seed=seed).to(out.dtype).cpu()
    return out


def check_sample(model: DefendedClassifier, stream: torch.Tensor, logits: torch.Tensor) -> None:
    """Fail unless the sample's logits, defended from scratch, are the shared ones' bits."""
    sample = torch.from_numpy(np.linspace(0, stream.shape[0] - 1, CHECKED_ROWS).round().astype(np.int64))
    fresh = model.defend(stream[sample])[0].cpu()
    shared = logits[sample].cpu()
    if not (
        torch.equal(fresh.isnan(), shared.isnan()) and torch.equal(fresh.nan_to_num(), shared.nan_to_num())
    ):
        raise RuntimeError(f"policy {model.policy.value}: the shared cleaning changed an answer")


def stream_rows(
    deployed: DefendedClassifier,
    classifier: nn.Module,
    streams: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    *,
    seed: int,
    keys: dict[str, Any],
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """One attack's stream under every policy: its metric rows, and clean-all's operating
    curve over thresholds. ``streams``: the stream, its cleaning, and which rows are attacked."""
    stream, cleaned, is_adversarial = streams
    pred_raw = predict(classifier, stream, device=deployed.defense.device).cpu()
    extra = {
        "threshold": deployed.defense.threshold,
        "undefended_stream_accuracy": (pred_raw == labels).float().mean().item(),
    }
    rows, curve = [], pd.DataFrame()
    for policy in Policy:
        model = DefendedClassifier(classifier, deployed.defense, policy, seed=seed)
        logits, report = model.defend(stream, cleaned=cleaned)
        check_sample(model, stream, logits)
        predictions = logits.argmax(dim=1).cpu().numpy()
        flags = (report.flagged.cpu().numpy(), report.rejected.cpu().numpy())
        metrics = stream_metrics(labels.numpy(), is_adversarial.numpy(), predictions, *flags)
        rows.append(keys | {"policy": policy.value} | metrics | extra)
        if policy is Policy.CLEAN_ALL:  # every cleaned prediction, for every threshold at once
            scores = report.scores.cpu().numpy()
            grid = sorted({*np.quantile(scores, np.linspace(0, 1, 41)), deployed.defense.threshold, np.inf})
            args = (labels.numpy(), is_adversarial.numpy(), scores, pred_raw.numpy(), predictions)
            curve = operating_curve(*args, np.array(grid)).assign(**keys)
    return rows, curve


def mixed(
    defense: Cowboy,
    images: torch.Tensor,
    cleaned_originals: torch.Tensor,
    adversarial: torch.Tensor,
    attacked: torch.Tensor,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An attack's stream, its cleaning (the shared clean rows, its own attacked rows) and which
    rows are attacked."""
    stream, is_adversarial = mixed_stream(images, adversarial, seed=seed)
    cleaned_adversarial = clean_rows(defense, adversarial, attacked, seed)
    cleaned, _ = mixed_stream(cleaned_originals, cleaned_adversarial, seed=seed)  # same rows
    return stream, cleaned, is_adversarial
