"""Which GAN the pipeline uses (issue 23): validation chooses among the saved GAN steps listed
in gan.candidates, and every rule downstream (tables, card, suite) then reads the chosen one.

The rule keeps the shortest candidate, the cheapest to train and the paper's own length, unless a
longer one is better on validation: cowboy's accuracy after cleaning, pooled over the images of
gan.choose_on, higher on the same images with a paired 95% interval above zero. Of several such,
the highest accuracy wins. A difference inside the noise therefore never swaps the GAN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .config import format_number, run_steps
from .paths import Config, clean_path, gan_checkpoint
from .statistics import paired_comparison, wilson_interval

METHOD = "cowboy"  # the paper's method, the one the card deploys
RULE = "shortest unless a longer GAN's paired 95% interval vs it lies above 0; then the best such"


def candidate_files(config: Config, wildcards: Any) -> list[str]:
    gan = config["datasets"][wildcards.dataset]["gan"]
    return [gan_checkpoint(wildcards.dataset, step) for step in sorted(gan["candidates"])]


def validation_files(config: Config, wildcards: Any) -> list[str]:
    """Cowboy's validation cleaning of every gan.choose_on attack, with each candidate."""
    gan, cleaning = config["datasets"][wildcards.dataset]["gan"], config["cleaning"]
    sigma, steps = format_number(cleaning["sigma"]), run_steps(cleaning)
    return [
        clean_path(wildcards.dataset, "val", attack, METHOD, sigma, steps, step)
        for step in gan["candidates"]
        for attack in gan["choose_on"]
    ]


def choice_params(config: Config, wildcards: Any) -> dict[str, Any]:
    gan = config["datasets"][wildcards.dataset]["gan"]
    # The tables report the snapshot at cleaning.steps, so the choice reads that one too.
    return {"candidates": sorted(gan["candidates"]), "steps": int(config["cleaning"]["steps"])}


def outcomes(rows: pd.DataFrame, candidates: list[int], steps: int) -> dict[int, pd.DataFrame]:
    """Per candidate, whether cowboy's cleaned image is classified right, one row per
    (attack, image), in the same order for every candidate (the pairs of the test)."""
    final = rows[rows["steps"] == steps].assign(
        correct=lambda f: f["pred_cleaned"] == f["label"],
        undefended=lambda f: f["pred_adversarial"] == f["label"],  # the same for every GAN
    )
    by_gan = {}
    for step in candidates:
        mine = final[final["ckpt"] == step].sort_values(["attack", "index"])
        by_gan[step] = mine[["attack", "index", "correct", "undefended"]].reset_index(drop=True)
    reference = by_gan[candidates[0]][["attack", "index"]]
    for step, frame in by_gan.items():
        if frame.empty or not frame[["attack", "index"]].equals(reference):
            raise ValueError(f"GAN step {step}: its validation images differ from step {candidates[0]}'s")
    return by_gan


def choose_gan(by_gan: dict[int, pd.DataFrame], *, seed: int = 0) -> pd.DataFrame:
    """One row per candidate: pooled and per-attack accuracy (and the bare classifier's on the
    same images, for reference), the paired comparison with the shortest candidate, whether it
    beats it, and the choice (exactly one row is chosen)."""
    candidates = sorted(by_gan)
    incumbent = by_gan[candidates[0]]
    rows = []
    for step in candidates:
        frame = by_gan[step]
        correct = frame["correct"].to_numpy(dtype=float)
        paired = paired_comparison(
            correct, incumbent["correct"].to_numpy(dtype=float), strata=frame["attack"].to_numpy(), seed=seed
        )
        low, high = wilson_interval(int(correct.sum()), correct.size)
        per_attack = frame.groupby("attack")[["correct", "undefended"]].mean()
        rows.append(
            {
                "gan_steps": step,
                "accuracy": float(correct.mean()),
                "accuracy_low": low,
                "accuracy_high": high,
                **{f"accuracy_{attack}": float(value) for attack, value in per_attack["correct"].items()},
                **{f"undefended_{attack}": float(v) for attack, v in per_attack["undefended"].items()},
                "difference": paired["difference"],
                "difference_low": paired["ci_low"],
                "difference_high": paired["ci_high"],
                "mcnemar_p": paired["mcnemar_p"],
                "beats_shortest": step != candidates[0] and paired["ci_low"] > 0,
                "n": correct.size,
            }
        )
    table = pd.DataFrame(rows)
    better = table[table["beats_shortest"]]
    # The best accuracy; of equals, the shorter (cheaper) GAN.
    ranked = better.sort_values(["accuracy", "gan_steps"], ascending=[False, True])
    winner = candidates[0] if ranked.empty else int(ranked.iloc[0]["gan_steps"])
    return table.assign(chosen=table["gan_steps"] == winner, rule=RULE)


def chosen_step(table: pd.DataFrame) -> int:
    chosen = table.loc[table["chosen"], "gan_steps"]
    if len(chosen) != 1:
        raise ValueError(f"a GAN choice must mark exactly one GAN; this one marks {len(chosen)}")
    return int(np.asarray(chosen)[0])
