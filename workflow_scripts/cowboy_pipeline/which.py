"""Which defence should a user pick? (issue 22) One point per defence on the suite's images:
its clean accuracy and its converged worst-case robust accuracy at each epsilon, and the
paired differences, on the same images, against adversarial training (the field's default)."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
        row |= _checked(convergence, defense, row["policy"], epsilon)
        if defense != REFERENCE and (REFERENCE, epsilon) in worst.index.droplevel("image"):
            row |= _against_reference(worst, clean, defense, epsilon, robust.index)
        rows.append(row)
    return pd.DataFrame(rows)


THIS_RUN = "this run"
GOAL_CLEAN_COST = 0.05  # issue 22: at most 5 points of clean accuracy below the bare classifier


def goal_region(
    points: pd.DataFrame, epsilon: float, reference: str = THIS_RUN, dataset: str | None = None
) -> tuple[float, float] | None:
    """Issue 22's goal at one epsilon (of one dataset, where the points hold several), as the
    lower-left corner (clean, robust) of the region a clean-all variant must reach: within
    GOAL_CLEAN_COST of the reference run's undefended clean accuracy, and at least its
    adversarial training's robust accuracy. None unless that run attacked both; the region is
    only meaningful on the same images."""
    own = points[(points["epsilon"] == epsilon) & (points.get("run", THIS_RUN) == reference)]
    if dataset is not None:
        own = own[own["dataset"] == dataset]
    own = own.set_index("defense")
    if not {"none", REFERENCE} <= set(own.index):
        return None
    clean = float(own.loc["none", "clean_accuracy"]) - GOAL_CLEAN_COST
    return clean, float(own.loc[REFERENCE, "robust_accuracy"])


def reference_runs(runs: Sequence[tuple[str, pd.DataFrame]]) -> dict[str, str]:
    """Each dataset's reference run: the first run that holds its points. Its bare classifiers
    are the ones drawn, and they set that dataset's goal."""
    references: dict[str, str] = {}
    for label, frame in runs:
        for dataset in datasets_of(frame):
            references.setdefault(dataset, label)
    return references


def summary_points(runs: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Every run's points in one table, for one figure across runs and datasets. A file's own
    points ("this run") take its run's label; the points it drew from earlier runs are kept
    once, under their labels, and a run's own row wins over a copy another run drew (only the
    own row has the paired differences). Every run retrains the bare classifiers: each
    dataset's reference run's alone are kept. Rows of different runs share the test images
    and the suite but are unpaired; each keeps what its own run paired against its own
    adversarial training."""
    frames = [
        frame.assign(
            own=frame["run"] == THIS_RUN,
            run=frame["run"].where(frame["run"] != THIS_RUN, label),
            dataset=datasets_of(frame, per_row=True),
        )
        for label, frame in runs
    ]
    points = pd.concat(frames, ignore_index=True).sort_values("own", ascending=False, kind="stable")
    reference = points["dataset"].map(reference_runs(runs))
    points = points[~points["defense"].isin(BARE) | (points["run"] == reference)]
    points = points.drop_duplicates(["dataset", "defense", "epsilon", "run"], keep="first")
    return points.drop(columns="own").sort_index().reset_index(drop=True)


UNNAMED_DATASET = ""  # points written before the tables named their dataset


def datasets_of(frame: pd.DataFrame, per_row: bool = False) -> Any:
    """A points table's datasets in order (or, ``per_row``, its dataset column; unnamed where
    the table has none)."""
    column = frame["dataset"] if "dataset" in frame else pd.Series(UNNAMED_DATASET, index=frame.index)
    return column if per_row else list(dict.fromkeys(column))


def earlier_points(
    table: pd.DataFrame, convergence: pd.DataFrame | None, label: str, attacked: set[str]
) -> pd.DataFrame:
    """Points from an earlier run's committed suite table (its clean and worst-case rows at
    the fixed seed, under each defence's deployed policy) for the defences this run does not
    attack. Only aggregates are committed, so these points carry no paired differences; they
    are comparable where the earlier run attacked the same images with the same suite."""
    table = table[(table["seed"] == "fixed") & ~table["defense"].isin(attacked)]
    table = table[table["policy"] == table["defense"].map(deployed_policy)]
    rows = []
    for (dataset, defense, epsilon), frame in table.groupby(["dataset", "defense", "epsilon"], sort=True):
        by_attack = frame.set_index("attack")
        row: dict[str, Any] = {"defense": defense, "policy": deployed_policy(defense), "epsilon": epsilon}
        for name, attack in (("clean", "clean"), ("robust", "worst_case")):
            found = by_attack.loc[attack]
            row |= {
                f"{name}_accuracy": found["robust_accuracy"],
                f"{name}_ci_low": found["ci_low"],
                f"{name}_ci_high": found["ci_high"],
                "n": int(found["n"]),
            }
        row |= _checked(convergence, defense, row["policy"], epsilon)
        rows.append(row | {"dataset": dataset, "run": label})
    return pd.DataFrame(rows)


def _checked(convergence: pd.DataFrame | None, defense: str, policy: str, epsilon: float) -> dict[str, Any]:
    """Whether the doubling check passed, and the main run's budget (in multiples of the
    config's), so that points attacked at different budgets are told apart."""
    if convergence is None:
        return {"converged": False, "budget": math.nan}  # never checked by doubling: an upper bound
    done = convergence[
        (convergence["defense"] == defense)
        & (convergence["policy"] == policy)
        & np.isclose(convergence["epsilon"], epsilon)
    ]
    budget = float(done["budget_main"].max()) if len(done) and "budget_main" in done else math.nan
    return {"converged": bool(len(done)) and bool(done["converged"].all()), "budget": budget}


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
