"""Which defence should a user pick? (issue 22) One point per defence on the suite's images:
its clean accuracy and its converged worst-case robust accuracy at each epsilon, and the
paired differences, on the same images, against adversarial training (the field's default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .robustness import worst_case
from .statistics import paired_comparison, wilson_interval

REFERENCE = "adversarial"  # the adversarially trained classifier, attacked alone
BARE = ("none", "adversarial")  # classifiers attacked without cleaning


def deployed_policy(defense: str) -> str:
    """The policy a point stands for: the bare classifiers' own, and clean-all for a cleaner
    (the policy that does not rest on detection, which an adaptive attacker defeats)."""
    return "undefended" if defense in BARE else "clean-all"


def defence_points(per_image: pd.DataFrame, convergence: pd.DataFrame) -> pd.DataFrame:
    """One row per defence and epsilon at the deployer's fixed seed: clean and worst-case
    accuracy with 95% Wilson intervals, whether the worst case converged, and, where
    adversarial training was attacked too, the paired differences against it."""
    fixed = per_image[per_image["seed"] == "fixed"]
    policy = fixed["defense"].map(deployed_policy)
    fixed = fixed[fixed["policy"] == policy]
    worst = worst_case(fixed).set_index(["defense", "epsilon", "image"])["defended"]
    clean = fixed[fixed["attack"] == "clean"].groupby(["defense", "epsilon", "image"])["defended"].min()
    rows = []
    for (defense, epsilon), robust in worst.groupby(level=["defense", "epsilon"], sort=True):
        robust = robust.droplevel(["defense", "epsilon"])
        benign = clean.loc[(defense, epsilon)].reindex(robust.index)
        row: dict[str, Any] = {"defense": defense, "policy": deployed_policy(defense), "epsilon": epsilon}
        row |= _accuracy("clean", benign) | _accuracy("robust", robust)
        done = convergence[
            (convergence["defense"] == defense)
            & (convergence["policy"] == row["policy"])
            & np.isclose(convergence["epsilon"], epsilon)
        ]
        row["converged"] = bool(done["converged"].all()) if len(done) else False
        if defense != REFERENCE and (REFERENCE, epsilon) in worst.index.droplevel("image"):
            row |= _against_reference(worst, clean, defense, epsilon, robust.index)
        rows.append(row)
    return pd.DataFrame(rows)


def _accuracy(name: str, correct: pd.Series) -> dict[str, float]:
    k, n = int(correct.sum()), int(correct.size)
    low, high = wilson_interval(k, n)
    return {f"{name}_accuracy": k / n, f"{name}_ci_low": low, f"{name}_ci_high": high, "n": n}


def _against_reference(
    worst: pd.Series, clean: pd.Series, defense: str, epsilon: float, images: pd.Index
) -> dict[str, float]:
    """Paired on the images both ran: the difference to adversarial training (95% paired
    bootstrap) and McNemar's p, for the clean and the robust accuracy."""
    out: dict[str, float] = {}
    for name, series in (("clean", clean), ("robust", worst)):
        ours = series.loc[(defense, epsilon)]
        theirs = series.loc[(REFERENCE, epsilon)]
        common = ours.index.intersection(theirs.index).intersection(images)
        test = paired_comparison(ours[common].to_numpy(), theirs[common].to_numpy())
        out |= {
            f"{name}_minus_adversarial": test["difference"],
            f"{name}_minus_adversarial_ci_low": test["ci_low"],
            f"{name}_minus_adversarial_ci_high": test["ci_high"],
            f"{name}_mcnemar_p": test["mcnemar_p"],
        }
    return out
