"""The paper's published numbers (Tables 1 and 2), for side-by-side comparison only."""

from __future__ import annotations

import pandas as pd

ORIGINAL = {"mnist": 0.97, "fashion_mnist": 0.89, "cifar10": 0.78, "svhn": 0.87}

# attack -> dataset -> (adversarial, cowboy clean, defense-gan clean), 5,000 cleaning steps.
TABLES = {
    "fgsm": {
        "mnist": (0.12, 0.78, 0.74),
        "fashion_mnist": (0.11, 0.44, 0.43),
        "cifar10": (0.30, 0.53, 0.42),
        "svhn": (0.34, 0.72, 0.67),
    },
    "pgd": {
        "mnist": (0.02, 0.81, 0.74),
        "fashion_mnist": (0.07, 0.48, 0.48),
        "cifar10": (0.06, 0.53, 0.47),
        "svhn": (0.13, 0.60, 0.58),
    },
    "bim": {
        "mnist": (0.02, 0.15, 0.12),
        "fashion_mnist": (0.07, 0.13, 0.11),
        "cifar10": (0.20, 0.47, 0.38),
        "svhn": (0.16, 0.49, 0.49),
    },
    "mim": {
        "mnist": (0.03, 0.45, 0.32),
        "fashion_mnist": (0.08, 0.32, 0.27),
        "cifar10": (0.21, 0.43, 0.35),
        "svhn": (0.15, 0.48, 0.44),
    },
    "vam": {
        "mnist": (0.32, 0.43, 0.34),
        "fashion_mnist": (0.50, 0.34, 0.32),
        "cifar10": (0.45, 0.56, 0.45),
        "svhn": (0.67, 0.76, 0.70),
    },
}


def comparison_table(accuracy: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our test accuracies (from ``accuracy.csv``) beside the paper's, one row per attack."""
    ours = accuracy[accuracy["dataset"] == dataset].pivot_table(
        index="attack", columns="quantity", values="accuracy"
    )
    rows = []
    for attack, by_dataset in TABLES.items():
        if attack not in ours.index:
            continue
        adv, cowboy, defense_gan = by_dataset[dataset]
        row = ours.loc[attack]
        rows.append(
            {
                "attack": attack,
                "original": row.get("original"),
                "adversarial": row.get("adversarial"),
                "cowboy": row.get("cowboy"),
                "defense_gan": row.get("defense_gan"),
                "paper_original": ORIGINAL[dataset],
                "paper_adversarial": adv,
                "paper_cowboy": cowboy,
                "paper_defense_gan": defense_gan,
            }
        )
    return pd.DataFrame(rows)
