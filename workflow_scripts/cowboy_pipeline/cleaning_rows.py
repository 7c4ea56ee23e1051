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
from cowboy_core.io import load_tensors

from .statistics import per_sample_rows


def clean_attack(
    defense: Cowboy,
    classifier: nn.Module,
    originals: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    attack_file: str,
    *,
    seed: int,
    record_steps: list[int],
    **keys: Any,
) -> tuple[pd.DataFrame, torch.Tensor, CleaningResult]:
    """The rows (``keys`` on each: dataset, split, attack, method, sigma, ckpt), the attacked
    images and the cleaning of the attack saved in ``attack_file``; ``originals``: the split's
    images, labels and dataset indices."""
    images, labels, index = originals
    tensors, meta = load_tensors(attack_file)
    adversarial = tensors["adversarial"]
    # The same z0 for every method and attack: Table 2 compares the methods on paired starts.
    result = defense.clean_detailed(adversarial, seed=seed, record_at=record_steps)
    rows = per_sample_rows(
        defense, classifier, images, adversarial, labels, result,
        epsilon=float(meta["epsilon"]), index=index.numpy(), **keys,
    )  # fmt: skip
    return rows, adversarial, result
