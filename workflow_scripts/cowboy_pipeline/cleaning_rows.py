"""Cleaning one attack's saved images and the per-sample rows of Tables 1-2, shared by the
paper's protocol (rule clean, one job per attack and setting) and the deployed card's
(rule clean_card, one job per method over every attack)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from cowboy_core import Cowboy
from cowboy_core.cleaning import CleaningResult
from cowboy_core.detection import discriminator_logits, scores_from_logits
from cowboy_core.io import load_tensors
from cowboy_core.training import predict


def clean_attack(
    defense: Cowboy,
    classifier: nn.Module,
    originals: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    attack_file: str,
    *,
    seed: int,
    record_steps: list[int],
    first: int | None = None,
    **keys: Any,
) -> tuple[pd.DataFrame, torch.Tensor, CleaningResult]:
    """The rows (``keys`` on each: dataset, split, attack, method, sigma, ckpt), the attacked
    images and the cleaning of the attack saved in ``attack_file`` (its ``first`` images, or
    all); ``originals``: the split's images, labels and dataset indices, as many."""
    images, labels, index = originals
    tensors, meta = load_tensors(attack_file)
    adversarial = tensors["adversarial"][:first]
    # The same z0 for every method and attack: Table 2 compares the methods on paired starts.
    result = defense.clean_detailed(adversarial, seed=seed, record_at=record_steps)
    rows = per_sample_rows(
        defense, classifier, images, adversarial, labels, result,
        epsilon=float(meta["epsilon"]), index=index.numpy(), **keys,
    )  # fmt: skip
    return rows, adversarial, result


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
        "device": str(device),  # where the row was made: CPU and GPU round differently
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
