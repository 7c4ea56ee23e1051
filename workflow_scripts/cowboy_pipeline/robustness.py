"""The robustness suite's tables: the per-image worst case over attacks, robust accuracy
with intervals, Carlini et al.'s checks, and the detect-then-clean operating curve."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .statistics import wilson_interval
from .tables import accuracy_row

if TYPE_CHECKING:  # the tables' jobs (the report, the chooser) need not import torch
    from cowboy_core.suite import Suite


def cleaning_method(defense: str) -> str | None:
    """The cleaning method a robustness job deploys: none for the bare classifiers ("none",
    "adversarial"), cowboy for "adversarial_cowboy" and the variants' cards ("variant_*"),
    else the defence's own name."""
    if defense in ("none", "adversarial"):
        return None
    if defense.startswith("variant_"):
        return "cowboy"
    return defense.removeprefix("adversarial_")


# The latent attack's steps became a setting after runs were committed. The schema gives it no
# default, so those runs keep their params (Snakemake reruns nothing); unset, it runs as they
# ran: a fixed 200 steps at every scale. Set, the convergence check doubles it like any budget.
LEGACY_LATENT_STEPS = 200


def suite_at(settings: Mapping[str, Any], scale: int) -> Suite:
    """The config's suite (its ``robustness`` section) with every budget times ``scale``."""
    from cowboy_core.suite import Suite

    fields = [key for key in Suite.__dataclass_fields__ if key != "latent_steps" or key in settings]
    suite = Suite(**{key: settings[key] for key in fields}).scaled(scale)
    return suite if "latent_steps" in settings else replace(suite, latent_steps=LEGACY_LATENT_STEPS)


def earlier_broken(per_image: pd.DataFrame, images: np.ndarray) -> dict[str, np.ndarray]:
    """Per policy, which of ``images`` (dataset indices, in the order attacked) an earlier run
    of the suite broke at the fixed seed: the doubled run's starting board."""
    worst = worst_case(per_image[per_image["seed"] == "fixed"])
    out = {}
    for policy, rows in worst.groupby("policy"):
        defended = rows.set_index("image")["defended"].reindex(images)
        if defended.isna().any():
            raise ValueError(f"the earlier run did not attack every image the doubled run attacks ({policy})")
        out[str(policy)] = defended.to_numpy() == 0.0
    return out


def worst_case(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per defence, epsilon, policy, seed and image: defended only if every attack that counts
    toward the worst case left it defended (the minimum over attacks; an attack that did not
    run on an image, NaN, does not count)."""
    counted = per_image[per_image["worst_case"]]
    keys = ["defense", "epsilon", "policy", "seed", "image"]
    return counted.groupby(keys, as_index=False)["defended"].min()


def robustness_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per defence, policy, seed, epsilon and attack, in the order the attacks ran:
    the accuracy on the images that attack ran on (``robust_accuracy``, ``n``) and, over all
    images, the worst case of it and every attack before it (``worst_case_so_far``); then a
    "worst_case" row over every attack, with 95% Wilson intervals."""
    keys = ["defense", "policy", "seed", "epsilon"]
    rows = []
    for key, frame in per_image.groupby(keys, sort=True):
        labels = dict(zip(keys, key, strict=True))
        so_far = pd.Series(1.0, index=pd.Index(frame["image"].unique()))
        for attack in frame["attack"].unique():  # first appearance: the order they ran in
            ran = frame[(frame["attack"] == attack)].dropna(subset=["defended"])
            counted = bool(ran["worst_case"].all())
            if counted:
                so_far = so_far.combine(ran.set_index("image")["defended"], min, fill_value=1.0)
            row = accuracy_row(ran["defended"], column="robust_accuracy", **labels, attack=attack)
            rows.append(row | {"worst_case_so_far": float(so_far.mean()) if counted else math.nan})
    for (defense, policy, seed, epsilon), group in worst_case(per_image).groupby(keys, sort=True):
        labels = {"defense": defense, "policy": policy, "seed": seed, "epsilon": epsilon}
        row = accuracy_row(group["defended"], column="robust_accuracy", **labels, attack="worst_case")
        rows.append(row | {"worst_case_so_far": row["robust_accuracy"]})
    return pd.DataFrame(rows)


def _check(
    defense: str, name: str, rule: str, left: pd.Series, right: pd.Series, sign: int, epsilon: float
) -> dict[str, Any]:
    """Compare two per-image outcomes on the images both ran on: ``sign`` +1 passes when
    left <= right + noise, -1 when left >= right - noise (noise: half a 95% Wilson interval)."""
    common = left.index.intersection(right.index)
    a, b = float(left[common].mean()), float(right[common].mean())
    # A check whose attacks did not both run (n = 0) has no noise and does not pass.
    low, high = wilson_interval(round(b * len(common)), len(common)) if len(common) else (math.nan,) * 2
    noise = (high - low) / 2
    passed = len(common) > 0 and (a <= b + noise if sign > 0 else a >= b - noise)
    return {
        "defense": defense,
        "epsilon": epsilon,
        "check": name,
        "rule": rule,
        "left": a,
        "right": b,
        "noise": noise,
        "n": len(common),
        "passed": bool(passed),
    }


def _with_attack(worst: pd.Series, extra: pd.Series) -> pd.Series:
    """The worst case with one more attack, on the images it covered: what it finds beyond
    every other attack (where it skipped an image already broken, NaN, the worst case)."""
    common = worst.index.intersection(extra.index)
    return pd.concat([worst[common], extra[common]], axis=1).min(axis=1)


# Carlini et al.'s comparisons: (check, rule, left attack, right attack, sign). "worst" is the
# worst case over every gradient attack; "worst+X" is that worst case with attack X added.
# Square attacks only what some policy still defends when its turn comes (AutoAttack's rule);
# the rest of the images it covers are NaN rows, the worst case there, so the check compares
# on all of them, as when it attacked all.
CARLINI_CHECKS = [
    ("iterative beats single-step", "iterative <= single step + noise",
     "check_unrolled_apgd_ce_2x", "bpda_single_step", 1),
    ("doubling steps and restarts changes nothing", "worst case with the 2x attack >= without - noise",
     "worst+check_unrolled_apgd_ce_2x", "worst", -1),
    ("adaptive no weaker than transfer", "adaptive <= transfer + noise",
     "check_unrolled_apgd_ce_2x", "transfer_apgd_ce", 1),
    ("gradient-free no stronger than gradients", "worst case with Square >= without - noise",
     "worst+square", "worst", -1),
]  # fmt: skip


def carlini_checks(per_image: pd.DataFrame, *, epsilon: float) -> pd.DataFrame:
    """Carlini et al.'s (2019) checks at ``epsilon``, per defence, under clean-all at the
    deployer's fixed seed. Each compares two attacks on the images both ran on."""
    rows = []
    data = per_image[(per_image["seed"] == "fixed") & np.isclose(per_image["epsilon"], epsilon)]
    for defense, frame in data[data["policy"] == "clean-all"].groupby("defense", sort=True):
        outcome = _check_outcomes(frame)
        for check, rule, left, right, sign in CARLINI_CHECKS:
            rows.append(_check(str(defense), check, rule, outcome(left), outcome(right), sign, epsilon))
        rows.append(_unbounded_check(str(defense), outcome("check_unbounded")))
    # A run with no card attacked, or none at this epsilon, still writes a table one can read.
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


CHECK_COLUMNS = ["defense", "epsilon", "check", "rule", "left", "right", "noise", "n", "passed"]


def _check_outcomes(frame: pd.DataFrame) -> Callable[[str], pd.Series]:
    """Per image, defended or not, by attack name; "worst" and "worst+X" as in CARLINI_CHECKS."""
    # NaN rows: images an attack covered and skipped (already broken); "worst+X" keeps them.
    covered = {a: g.set_index("image")["defended"] for a, g in frame.groupby("attack")}
    gradient = [a for a in covered if a not in ("square", "clean") and not a.startswith("check_")]
    worst = pd.concat([covered[a] for a in gradient], axis=1).min(axis=1)

    def outcome(name: str) -> pd.Series:
        if name == "worst":
            return worst
        if name.startswith("worst+"):
            return _with_attack(worst, covered.get(name.removeprefix("worst+"), pd.Series(dtype=float)))
        return covered.get(name, pd.Series(dtype=float)).dropna()

    return outcome


def _unbounded_check(defense: str, unbounded: pd.Series) -> dict[str, Any]:
    accuracy = float(unbounded.mean()) if len(unbounded) else math.nan
    return {
        "defense": defense,
        "epsilon": 1.0,
        "check": "unbounded budget reaches 0",
        "rule": "accuracy <= 0.05",
        "left": accuracy,
        "right": 0.0,
        "noise": 0.0,
        "n": len(unbounded),
        "passed": bool(len(unbounded)) and accuracy <= 0.05,
    }


def operating_curve(
    labels: np.ndarray,
    is_adversarial: np.ndarray,
    scores: np.ndarray,
    pred_raw: np.ndarray,
    pred_cleaned: np.ndarray,
    thresholds: np.ndarray,
) -> pd.DataFrame:
    """Detect-then-clean at each threshold: stream accuracy against the false-alarm rate.

    ``pred_cleaned`` comes from one clean-all pass; since a flagged input's z0 depends only on
    its place in the batch, these are detect-then-clean's predictions up to the rounding of
    a different batch composition.
    """
    adv = np.asarray(is_adversarial, dtype=bool)
    rows = []
    for threshold in np.asarray(thresholds, dtype=float):
        flagged = np.asarray(scores) < threshold
        correct = np.where(flagged, pred_cleaned, pred_raw) == labels
        rows.append(
            {
                "threshold": threshold,
                "false_alarm_rate": float(flagged[~adv].mean()) if (~adv).any() else math.nan,
                "detection_rate": float(flagged[adv].mean()) if adv.any() else math.nan,
                "stream_accuracy": float(correct.mean()),
            }
        )
    return pd.DataFrame(rows)


def _budgets(per_image: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], int]:
    """Each cell's budget, in multiples of the config's (the "budget" column the suite job
    writes; 1 where a table has none)."""
    if "budget" not in per_image.columns:
        return {}
    return {tuple(k): int(v) for k, v in per_image.groupby(keys)["budget"].max().items()}


def convergence_table(
    main: pd.DataFrame, doubled: pd.DataFrame, *, tolerance: float = 0.01, resamples: int = 2000
) -> pd.DataFrame:
    """The convergence check, per defence, policy and epsilon at the deployer's fixed seed: the
    worst case of the doubled-budget run against the main run's on the same images. A cell has
    converged when the two differ by at most ``tolerance`` or by the paired bootstrap's 95%
    half-width of the per-image difference, whichever is larger."""
    keys = ["defense", "policy", "epsilon"]
    first = worst_case(main[main["seed"] == "fixed"])
    second = worst_case(doubled[doubled["seed"] == "fixed"])
    both = first.merge(second, on=[*keys, "seed", "image"], suffixes=("_main", "_doubled"))
    budgets = {name: _budgets(frame, keys) for name, frame in (("main", main), ("doubled", doubled))}
    rng = np.random.default_rng(0)
    rows = []
    for key, group in both.groupby(keys, sort=True):
        diff = (group["defended_doubled"] - group["defended_main"]).to_numpy(dtype=float)
        boot = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
        noise = float(np.quantile(boot, 0.975) - np.quantile(boot, 0.025)) / 2
        moved = float(diff.mean())
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                "n": int(diff.size),
                **{f"budget_{name}": budget.get(key, 1) for name, budget in budgets.items()},
                "worst_case_main": float(group["defended_main"].mean()),
                "worst_case_doubled": float(group["defended_doubled"].mean()),
                "moved": moved,
                "allowed": max(tolerance, noise),
                "converged": bool(abs(moved) <= max(tolerance, noise)),
            }
        )
    return pd.DataFrame(rows)
