"""The paper's tables (1, 2, detection, validation sweep) from the per-sample Parquet rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cowboy_core.choices import AttackName, parse_attack
from cowboy_core.detection import Calibration, calibrate_threshold, detection_rate, roc_auc, tpr_at_fpr

from .statistics import paired_comparison, wilson_interval


def accuracy_row(correct: pd.Series, *, column: str = "accuracy", **keys: Any) -> dict[str, Any]:
    """``keys``, then the fraction of ``correct`` (named ``column``), its 95% Wilson interval and n."""
    k, n = int(correct.sum()), int(correct.size)
    low, high = wilson_interval(k, n)
    return {**keys, column: k / n if n else math.nan, "ci_low": low, "ci_high": high, "n": n}


def accuracy_long(clean: pd.DataFrame, sigma: float, steps: int) -> pd.DataFrame:
    """One row per dataset x attack x quantity (original, adversarial, cowboy, defense_gan)."""
    sel = clean[(clean["split"] == "test") & np.isclose(clean["sigma"], sigma) & (clean["steps"] == steps)]
    rows = []
    for (dataset, attack), group in sel.groupby(["dataset", "attack"], sort=False):
        first = group[group["method"] == group["method"].iloc[0]]
        rows.append(
            accuracy_row(
                first["pred_original"] == first["label"], dataset=dataset, attack=attack, quantity="original"
            )
        )
        rows.append(
            accuracy_row(
                first["pred_adversarial"] == first["label"],
                dataset=dataset,
                attack=attack,
                quantity="adversarial",
            )
        )
        for method, by_method in group.groupby("method", sort=False):
            rows.append(
                accuracy_row(
                    by_method["pred_cleaned"] == by_method["label"],
                    dataset=dataset,
                    attack=attack,
                    quantity=str(method),
                )
            )
    return pd.DataFrame(rows, columns=["dataset", "attack", "quantity", "accuracy", "ci_low", "ci_high", "n"])


def card_accuracy(card_clean: pd.DataFrame) -> pd.DataFrame:
    """The cleaned accuracy at the deployed card's settings, one row per dataset x attack x
    method (quantity "{method}_card"): each file holds only the card's final step."""
    test = card_clean[card_clean["split"] == "test"]
    rows = [
        accuracy_row(group["pred_cleaned"] == group["label"], dataset=d, attack=a, quantity=str(m))
        for (d, a, m), group in test.groupby(["dataset", "attack", "method"], sort=False)
    ]
    return pd.DataFrame(rows, columns=["dataset", "attack", "quantity", "accuracy", "ci_low", "ci_high", "n"])


PAIRS = {"paper": ("cowboy", "defense_gan"), "card": ("cowboy_card", "defense_gan_card")}


def paired_methods(cleaned: pd.DataFrame, *, resamples: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """Table 2 as a paired test: cowboy minus Defense-GAN on the same test images (the same
    attacked images and the same z0), per dataset, attack and protocol ("paper": the paper's
    settings; "card": the card's). ``cleaned``: the per-image rows of one step count per method
    (:func:`table2_rows`). The difference has a paired-bootstrap 95% interval; McNemar's exact
    test counts the images only one method gets right."""
    rows = []
    for protocol, (a, b) in PAIRS.items():
        both = cleaned[cleaned["method"].isin([a, b])]
        for (dataset, attack), group in both.groupby(["dataset", "attack"], sort=False):
            wide = group.pivot_table(index="index", columns="method", values="correct", aggfunc="first")
            if not {a, b} <= set(wide.columns):
                continue
            wide = wide.dropna()
            found = paired_comparison(wide[a].to_numpy(), wide[b].to_numpy(), resamples=resamples, seed=seed)
            rows.append({"dataset": dataset, "attack": attack, "protocol": protocol, **found})
    names = {"accuracy_a": "cowboy", "accuracy_b": "defense_gan", "a_only_correct": "cowboy_only",
             "b_only_correct": "defense_gan_only"}  # fmt: skip
    columns = ["dataset", "attack", "protocol", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high",
               "a_only_correct", "b_only_correct", "mcnemar_p", "tost_p", "equivalent", "n"]  # fmt: skip
    return _ordered(pd.DataFrame(rows, columns=columns).rename(columns=names))


def table2_rows(clean: pd.DataFrame, card_clean: pd.DataFrame, sigma: float, steps: int) -> pd.DataFrame:
    """The per-image rows Table 2 reads: the paper's protocol at ``sigma`` and ``steps`` and the
    card's own step; columns dataset, attack, method, index, correct."""
    paper = clean[(clean["split"] == "test") & np.isclose(clean["sigma"], sigma) & (clean["steps"] == steps)]
    card = card_clean[card_clean["split"] == "test"]
    both = pd.concat([paper, card], ignore_index=True)
    both = both.assign(correct=(both["pred_cleaned"] == both["label"]).astype(float))
    return both[["dataset", "attack", "method", "index", "correct"]]


def attack_sort_key(attack: str) -> tuple[int, str]:
    """The paper's row order; labelled variants ("fgsm-std") follow their attack, "none" last."""
    name, label = parse_attack(attack)
    return (len(AttackName) if name is None else list(AttackName).index(name), label)


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    keys = frame["attack"].map(attack_sort_key)
    return frame.iloc[sorted(range(len(frame)), key=lambda i: keys.iloc[i])].reset_index(drop=True)


def paper_table(accuracy: pd.DataFrame, quantities: list[str], datasets: list[str]) -> pd.DataFrame:
    """Wide table like the paper's: attacks as rows, ``{dataset}/{quantity}`` columns."""
    rows = accuracy[accuracy["quantity"].isin(quantities) & (accuracy["attack"] != "none")]
    wide = rows.pivot_table(index="attack", columns=["dataset", "quantity"], values="accuracy", sort=False)
    columns = [(d, q) for d in datasets for q in quantities if (d, q) in wide.columns]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(columns))
    wide.columns = [f"{d}/{q}" for d, q in columns]
    return _ordered(wide.reset_index())


def table1(accuracy: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Table 1: Original / Adv / Clean (cowboy) per dataset, and cowboy at the card's settings
    ("clean_card") beside it."""
    renamed = accuracy.replace({"quantity": {"cowboy": "clean", "cowboy_card": "clean_card"}})
    return paper_table(renamed, ["original", "adversarial", "clean", "clean_card"], datasets)


def table2(accuracy: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Table 2: Defense-GAN vs cowboy per dataset, then both at the card's settings."""
    return paper_table(accuracy, ["defense_gan", "cowboy", "defense_gan_card", "cowboy_card"], datasets)


def validation_calibration(
    val_scores: pd.DataFrame, *, calibration_attack: str, p: float, min_accuracy_drop: float
) -> Calibration:
    """Section 3.4 on one dataset's validation scores: the L^p average of D on the calibration
    attack, and whether that attack cut the classifier's accuracy enough (footnote 2)."""
    real = val_scores[val_scores["source"] == "real"]
    calib = val_scores[val_scores["source"] == calibration_attack]
    return calibrate_threshold(
        calib["d_score"].to_numpy(),
        p=p,
        accuracy_clean=float((real["pred"] == real["label"]).mean()),
        accuracy_adversarial=float((calib["pred"] == calib["label"]).mean()),
        min_drop=min_accuracy_drop,
    )


def detection_table(
    val_scores: pd.DataFrame,
    test_scores: pd.DataFrame,
    *,
    calibration_attack: str,
    p: float,
    min_accuracy_drop: float,
    fpr: float,
) -> pd.DataFrame:
    """Per dataset x attack: the threshold calibrated on the validation split's calibration
    attack (section 3.4), then ROC-AUC, TPR at ``fpr`` and detection rate on the test split."""
    rows = []
    for dataset, val in val_scores.groupby("dataset", sort=False):
        calibration = validation_calibration(
            val, calibration_attack=calibration_attack, p=p, min_accuracy_drop=min_accuracy_drop
        )
        threshold = calibration.threshold
        test = test_scores[test_scores["dataset"] == dataset]
        real = test[test["source"] == "real"]["d_score"].to_numpy()
        for attack, adv in test[test["source"] != "real"].groupby("source", sort=False):
            scores = adv["d_score"].to_numpy()
            rows.append(
                {
                    "dataset": dataset,
                    "attack": attack,
                    "calibration_attack": calibration_attack,
                    "p": p,
                    "threshold": threshold,
                    "calibration_is_adversarial": calibration.is_adversarial,
                    "calibration_accuracy_drop": calibration.accuracy_drop,
                    "roc_auc": roc_auc(real, scores),
                    f"tpr_at_{fpr:g}_fpr": tpr_at_fpr(real, scores, fpr),
                    "detection_rate": detection_rate(scores, threshold),
                    "false_alarm_rate": detection_rate(real, threshold),
                    "mean_d_real": float(real.mean()),
                    "mean_d_adversarial": float(scores.mean()),
                    "n_real": real.size,
                    "n_adversarial": scores.size,
                }
            )
    return _ordered(pd.DataFrame(rows))


def sweep_table(clean: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy per dataset x attack x method x sigma x steps (the sigma sweep)."""
    val = clean[clean["split"] == "val"]
    rows = [
        accuracy_row(g["pred_cleaned"] == g["label"], dataset=d, attack=a, method=m, sigma=s, steps=st)
        for (d, a, m, s, st), g in val.groupby(["dataset", "attack", "method", "sigma", "steps"])
    ]
    return pd.DataFrame(
        rows, columns=["dataset", "attack", "method", "sigma", "steps", "accuracy", "ci_low", "ci_high", "n"]
    )
