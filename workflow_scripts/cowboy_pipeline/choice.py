"""One chooser for every setting the pipeline picks on validation: the defence card's
cleaning settings and the discriminator study's, by an objective under stated constraints.

:func:`measure_setting` gives, per validation image, what the card's chooser needs;
:func:`choose` marks the feasible settings and the chosen one, and never falls back: where
no setting meets the constraints, none is chosen, and the caller must say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from cowboy_core.cleaning import Cowboy
from cowboy_core.diagnostics import cleaned_predictions, step_sharpness
from cowboy_core.updates import rule_for

from .statistics import wilson_interval

# The card's constraints: each flip rate of the grid table, at most max_flip_rate.
FLIP_COLUMNS = ["flip_rate_alone", "flip_rate_rechunked", "flip_rate_perturbed"]


def measure_setting(
    classifier: nn.Module,
    defense: Cowboy,
    clean: torch.Tensor,
    attacked: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int,
    alone_images: int,
    perturbation: float,
    trajectories: int,
) -> pd.DataFrame:
    """Per validation image and kind ("clean", "attack"): right after cleaning, and whether the
    prediction flips alone, in another chunking and under the perturbation; step x curvature
    on the first ``trajectories`` attacked images."""
    both = torch.cat([clean, attacked])
    seen = cleaned_predictions(
        classifier, defense, both, seed=seed, alone_images=alone_images, perturbation=perturbation
    )
    n = clean.shape[0]
    flipped_alone = np.full(2 * n, np.nan)
    flipped_alone[: seen.alone.shape[0]] = (seen.alone != seen.batch[: seen.alone.shape[0]]).numpy()
    sharpness = np.full(2 * n, np.nan)
    sharp = step_sharpness(defense, attacked[:trajectories], seed=seed).numpy()
    sharp = sharp.reshape(-1, defense.settings.restarts).max(axis=1)
    sharpness[n : n + sharp.shape[0]] = sharp
    return pd.DataFrame(
        {
            "image": np.tile(np.arange(n), 2),
            "kind": ["clean"] * n + ["attack"] * n,
            "correct": (seen.batch == labels.cpu().repeat(2)).numpy(),
            "flipped_alone": flipped_alone,
            "flipped_rechunked": (seen.rechunked != seen.batch).numpy().astype(float),
            "flipped_perturbed": (seen.perturbed != seen.batch).numpy().astype(float),
            "step_x_curvature": sharpness,
            "stability_limit": rule_for(defense.settings.optimizer, defense.settings.lr).stability_limit,
        }
    )


def deployed_flips(
    classifier: nn.Module,
    defense: Cowboy,
    clean: torch.Tensor,
    attacked: torch.Tensor,
    *,
    alone: int,
    seed: int,
    perturbation: float,
) -> tuple[pd.DataFrame, float]:
    """The deployed card's flips per comparison and kind, with Wilson intervals: alone on the
    first ``alone`` images of each kind (each costs a whole padded chunk), in another chunking
    and under the perturbation on all of them; and the largest pixel change alone."""
    n, alone = clean.shape[0], min(alone, clean.shape[0])
    # The first `alone` images of each kind lead the batch, so that cleaning its first rows
    # alone checks both kinds; with alone = n this is the batch [clean, attacked] itself.
    both = torch.cat([clean[:alone], attacked[:alone], clean[alone:], attacked[alone:]])
    kinds = {
        "clean": torch.cat([torch.arange(alone), torch.arange(2 * alone, alone + n)]),
        "attack": torch.cat([torch.arange(alone, 2 * alone), torch.arange(alone + n, 2 * n)]),
    }
    seen = cleaned_predictions(
        classifier, defense, both, seed=seed, alone_images=2 * alone, perturbation=perturbation
    )
    rows = []
    for name, other in (("alone", seen.alone), ("rechunked", seen.rechunked), ("perturbed", seen.perturbed)):
        for kind, kind_rows in kinds.items():
            checked = kind_rows[kind_rows < other.shape[0]]  # alone: the first rows of each kind
            flips, count = int((other[checked] != seen.batch[checked]).sum()), int(checked.numel())
            low, high = wilson_interval(flips, count)
            rows.append({"comparison": name, "kind": kind, "images": count, "flips": flips,
                         "flip_rate": flips / count, "ci_low": low, "ci_high": high})  # fmt: skip
    return pd.DataFrame(rows), seen.pixels_max_change_alone


def grid_table(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per setting: accuracies with Wilson intervals, the card's objective (the mean
    of the clean and the attack accuracy), the flip rates and step x curvature."""
    out = []
    for key, group in rows.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        for kind in ("clean", "attack"):
            part = group[group["kind"] == kind]["correct"]
            low, high = wilson_interval(int(part.sum()), len(part))
            row |= {f"accuracy_{kind}": part.mean(), f"{kind}_ci_low": low, f"{kind}_ci_high": high}
        row["objective"] = (row["accuracy_clean"] + row["accuracy_attack"]) / 2
        row["n"] = int((group["kind"] == "clean").sum())
        for name in ("alone", "rechunked", "perturbed"):
            flags = group[f"flipped_{name}"].dropna()
            row[f"flip_rate_{name}"], row[f"flip_images_{name}"] = flags.mean(), len(flags)
        row["step_x_curvature_median"] = group["step_x_curvature"].median()
        row["step_x_curvature_max"] = group["step_x_curvature"].max()
        row["stability_limit"] = group["stability_limit"].iloc[0]
        out.append(row)
    return pd.DataFrame(out)


def choose(
    grid: pd.DataFrame,
    *,
    objective: str,
    constraints: dict[str, float],
    tie_break: list[str] | None = None,
    min_images: int = 0,
    images_column: str = "n",
) -> pd.DataFrame:
    """``grid`` with ``feasible`` (every constraint column at most its bound, NaN failing, on at
    least ``min_images`` images) and ``chosen`` (the feasible row with the highest
    ``objective``; ties go to the smallest ``tie_break`` values). No feasible row: none chosen."""
    grid = grid.copy()
    feasible = pd.Series(True, index=grid.index)
    for column, bound in constraints.items():
        feasible &= grid[column].fillna(np.inf) <= bound
    grid["feasible"] = feasible & (grid[images_column] >= min_images)
    grid["chosen"] = False
    ranked = grid[grid["feasible"]].sort_values(
        [objective, *(tie_break or [])], ascending=[False, *([True] * len(tie_break or []))]
    )
    if len(ranked):
        grid.loc[ranked.index[0], "chosen"] = True
    return grid
