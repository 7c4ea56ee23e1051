"""Evaluation of a defence: intervals, per-sample rows of a cleaning run, and stream metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .cleaning import CleaningResult, Cowboy
from .detection import discriminator_logits, scores_from_logits
from .training import predict


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sound at 0 and 1, unlike Wald)."""
    if total <= 0:
        return (math.nan, math.nan)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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


def stream_metrics(
    labels: np.ndarray,
    is_adversarial: np.ndarray,
    predictions: np.ndarray,
    flagged: np.ndarray,
    rejected: np.ndarray,
) -> dict[str, float]:
    """A defended classifier on a mixed stream: accuracy (a rejection is wrong) with its 95%
    interval, on the clean part (the cost of false alarms) and on the adversarial part; the
    accuracy counting rejections as correct; the detector's rates."""
    labels, adv = np.asarray(labels), np.asarray(is_adversarial, dtype=bool)
    flagged, rejected = np.asarray(flagged, dtype=bool), np.asarray(rejected, dtype=bool)
    correct = (np.asarray(predictions) == labels) & ~rejected

    def mean(values: np.ndarray, mask: np.ndarray) -> float:
        return float(values[mask].mean()) if mask.any() else math.nan

    low, high = wilson_interval(int(correct.sum()), int(correct.size))
    everything = np.ones_like(adv)
    return {
        "stream_accuracy": mean(correct, everything),
        "ci_low": low,
        "ci_high": high,
        "clean_part_accuracy": mean(correct, ~adv),
        "adversarial_part_accuracy": mean(correct, adv),
        "accuracy_with_abstention": mean(correct | rejected, everything),
        "false_alarm_rate": mean(flagged, ~adv),
        "detection_rate": mean(flagged, adv),
        "n": int(labels.size),
    }


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
            row = _accuracy(ran["defended"], **labels, attack=attack)
            rows.append(row | {"worst_case_so_far": float(so_far.mean()) if counted else math.nan})
    for (defense, policy, seed, epsilon), group in worst_case(per_image).groupby(keys, sort=True):
        row = _accuracy(
            group["defended"], defense=defense, policy=policy, seed=seed, epsilon=epsilon, attack="worst_case"
        )
        rows.append(row | {"worst_case_so_far": row["robust_accuracy"]})
    return pd.DataFrame(rows)


def _accuracy(defended: pd.Series, **keys: Any) -> dict[str, Any]:
    k, n = int(defended.sum()), int(defended.size)
    low, high = wilson_interval(k, n)
    return {**keys, "robust_accuracy": k / n, "ci_low": low, "ci_high": high, "n": n}


def _check(
    defense: str, name: str, rule: str, left: pd.Series, right: pd.Series, sign: int, epsilon: float
) -> dict[str, Any]:
    """Compare two per-image outcomes on the images both ran on: ``sign`` +1 passes when
    left <= right + noise, -1 when left >= right - noise (noise: half a 95% Wilson interval)."""
    common = left.index.intersection(right.index)
    a, b = float(left[common].mean()), float(right[common].mean())
    low, high = wilson_interval(round(b * len(common)), len(common))
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
    """The worst case with one more attack, on the images it ran on: what it finds beyond
    every other attack."""
    common = worst.index.intersection(extra.index)
    return pd.concat([worst[common], extra[common]], axis=1).min(axis=1)


def carlini_checks(per_image: pd.DataFrame, *, epsilon: float) -> pd.DataFrame:
    """Carlini et al.'s (2019) checks at ``epsilon``, per defence, under clean-all at the
    deployer's fixed seed. Each compares two attacks on the images both ran on."""
    rows = []
    data = per_image[(per_image["seed"] == "fixed") & np.isclose(per_image["epsilon"], epsilon)]
    for defense, frame in data[data["policy"] == "clean-all"].groupby("defense", sort=True):
        by_attack = {a: g.set_index("image")["defended"].dropna() for a, g in frame.groupby("attack")}
        empty = pd.Series(dtype=float)
        gradient = [a for a in by_attack if a not in ("square", "clean") and not a.startswith("check_")]
        worst = pd.concat([by_attack[a] for a in gradient], axis=1).min(axis=1)
        doubled, unbounded = (
            by_attack.get("check_bpda_apgd_ce_2x", empty),
            by_attack.get("check_unbounded", empty),
        )
        single, transfer = by_attack.get("bpda_single_step", empty), by_attack.get("transfer_apgd_ce", empty)
        d = str(defense)

        rows += [
            _check(
                d,
                "iterative beats single-step",
                "iterative <= single step + noise",
                doubled,
                single,
                1,
                epsilon,
            ),
            _check(
                d,
                "doubling steps and restarts changes nothing",
                "worst case with the 2x attack >= without - noise",
                _with_attack(worst, doubled),
                worst,
                -1,
                epsilon,
            ),
            _check(
                d,
                "adaptive no weaker than transfer",
                "adaptive <= transfer + noise",
                doubled,
                transfer,
                1,
                epsilon,
            ),
            _check(
                d,
                "gradient-free no stronger than gradients",
                "worst case with Square >= without - noise",
                _with_attack(worst, by_attack.get("square", empty)),
                worst,
                -1,
                epsilon,
            ),
        ]
        accuracy = float(unbounded.mean()) if len(unbounded) else math.nan
        rows.append(
            {
                "defense": d,
                "epsilon": 1.0,
                "check": "unbounded budget reaches 0",
                "rule": "accuracy <= 0.05",
                "left": accuracy,
                "right": 0.0,
                "noise": 0.0,
                "n": len(unbounded),
                "passed": bool(len(unbounded)) and accuracy <= 0.05,
            }
        )
    return pd.DataFrame(rows)


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


def paired_comparison(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    strata: np.ndarray | None = None,
    margin: float = 0.02,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Method a against method b on the same images (say cowboy minus Defense-GAN).

    The accuracy difference with a 95% paired-bootstrap interval (images resampled within each
    stratum, such as a GAN seed); McNemar's exact test on the discordant pairs, pooled over
    strata (under no difference each discordant pair is a fair coin, in every stratum); and
    TOST equivalence within +-``margin`` (two one-sided t-tests on the per-image differences).
    """
    from scipy import stats

    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired outcomes need equal, non-empty shapes; got {a.shape} and {b.shape}")
    groups = np.zeros(a.size, dtype=int) if strata is None else np.unique(strata, return_inverse=True)[1]
    diff = a - b
    rng = np.random.default_rng(seed)
    boot = np.zeros(resamples)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        picks = rng.integers(0, members.size, size=(resamples, members.size))
        boot += diff[members][picks].sum(axis=1)
    boot /= a.size
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    discordant = a_only + b_only
    mcnemar = stats.binomtest(a_only, discordant, 0.5).pvalue if discordant else 1.0
    if np.all(diff == diff[0]):  # no spread: the one-sided tests are decided by the mean alone
        tost = 0.0 if -margin < diff[0] < margin else 1.0
    else:
        lower = stats.ttest_1samp(diff, -margin, alternative="greater").pvalue
        upper = stats.ttest_1samp(diff, margin, alternative="less").pvalue
        tost = float(max(lower, upper))
    low, high = np.quantile(boot, [0.025, 0.975])
    return {
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "a_only_correct": a_only,
        "b_only_correct": b_only,
        "mcnemar_p": float(mcnemar),
        "tost_p": tost,
        "equivalent": bool(tost < 0.05),
        "n": int(a.size),
    }


def cleaning_curve(
    defense: Cowboy,
    classifier: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int,
    record_at: list[int],
    flip_images: int = 0,
) -> pd.DataFrame:
    """Per image and recorded step: whether the cleaned image is classified right, D(G(z_m))
    and the loss; for the first ``flip_images`` images also whether cleaning the image alone
    (same z0) changes the prediction, since a defence whose answer depends on its batch
    neighbours is not well defined."""
    n, r = x.shape[0], defense.restarts
    z0 = defense.initial_latents(n, seed)
    result = defense.clean_detailed(x, latents=z0, record_at=record_at)
    alone: dict[int, list[torch.Tensor]] = {s: [] for s in result.snapshots}
    for i in range(min(flip_images, n)):
        single = defense.clean_detailed(x[i : i + 1], latents=z0[i * r : (i + 1) * r], record_at=record_at)
        for s, images in single.snapshots.items():
            alone[s].append(predict(classifier, images, device=defense.device).cpu())
    frames = []
    for s, cleaned in result.snapshots.items():
        pred = predict(classifier, cleaned, device=defense.device).cpu()
        flipped = np.full(n, np.nan)
        if alone[s]:
            flipped[: len(alone[s])] = (torch.cat(alone[s]) != pred[: len(alone[s])]).numpy()
        d_cleaned = scores_from_logits(
            discriminator_logits(defense.discriminator, cleaned, device=defense.device)
        )
        frames.append(
            pd.DataFrame(
                {
                    "image": np.arange(n),
                    "steps": s,
                    "correct": (pred == labels.cpu()).numpy(),
                    "d_cleaned": d_cleaned.cpu().numpy(),
                    "loss": result.snapshot_loss[s].cpu().numpy(),
                    "flipped_alone": flipped,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


SETTING_KEYS = ["method", "lam", "optimizer", "lr", "restarts", "steps"]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number JSON can hold."""
    return value.item() if hasattr(value, "item") else value


def attach_flip_rates(validation: pd.DataFrame, flips: pd.DataFrame) -> pd.DataFrame:
    """``validation`` with each setting's flip rate (alone vs in a batch) measured in ``flips``
    (another GAN's grid: cleaning images one at a time is too slow to repeat per GAN)."""
    rates = flips.groupby(SETTING_KEYS, as_index=False)["flipped_alone"].mean()
    return validation.drop(columns="flipped_alone").merge(rates, on=SETTING_KEYS, how="left")


def choose_setting(validation: pd.DataFrame, *, max_flip_rate: float = 0.01) -> dict[str, Any]:
    """Per method, the validation-best setting among the stable ones (flip rate alone vs in a
    batch at most ``max_flip_rate``); ties go to fewer steps. Returns the choice and the
    numbers it was made from: every setting's accuracy, interval and flip rate, and the best
    setting without the stability filter (what stability costs)."""
    # A setting's rows from two runs (say the grid and the long run) are the same computation.
    validation = validation.drop_duplicates(subset=["gan", "image", *SETTING_KEYS])
    grid = (
        validation.groupby(SETTING_KEYS, as_index=False)
        .agg(
            accuracy=("correct", "mean"),
            n=("correct", "size"),
            flip_rate=("flipped_alone", "mean"),
            mean_d_cleaned=("d_cleaned", "mean"),
        )
        .sort_values(["method", "accuracy", "steps"], ascending=[True, False, True])
    )
    intervals = [
        wilson_interval(round(a * n), int(n)) for a, n in zip(grid["accuracy"], grid["n"], strict=True)
    ]
    grid["ci_low"], grid["ci_high"] = zip(*intervals, strict=True) if intervals else ([], [])
    chosen: dict[str, Any] = {}
    for method, rows in grid.groupby("method", sort=True):
        stable = rows[rows["flip_rate"].fillna(1.0) <= max_flip_rate]
        best = (stable if len(stable) else rows).iloc[0]
        chosen[str(method)] = {
            "setting": {k: _plain(best[k]) for k in SETTING_KEYS if k != "method"},
            "validation_accuracy": float(best["accuracy"]),
            "flip_rate": float(best["flip_rate"]),
            "stable_setting_found": bool(len(stable)),
            "best_without_stability_filter": {
                k: _plain(rows.iloc[0][k]) for k in [*SETTING_KEYS[1:], "accuracy", "flip_rate"]
            },
        }
    return {"max_flip_rate": max_flip_rate, "chosen": chosen, "validation": grid.to_dict("records")}


def paired_table(
    rows: pd.DataFrame, *, by: list[str], pool: list[str] | None = None, margin: float = 0.02
) -> pd.DataFrame:
    """Cowboy minus Defense-GAN on the same images (:func:`paired_comparison`), per group of
    ``by``, per GAN, and pooled over the GANs in ``pool`` (all by default) with the GAN as a
    stratum; with each method's mean D(G(z)) of the cleaned images (if D never moves, the D
    term is inert)."""
    out = []
    for key, group in rows.groupby(by, sort=True):
        keys = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        wide = group.pivot_table(index=["gan", "image"], columns="method", values=["correct", "d_cleaned"])
        if {("correct", "cowboy"), ("correct", "defense_gan")} - set(wide.columns):
            continue
        gans = wide.index.get_level_values("gan")
        for gan in [*sorted(set(gans)), "pooled"]:
            pooled = gans.isin(pool if pool is not None else list(gans))
            part = wide[pooled] if gan == "pooled" else wide[gans == gan]
            if part.empty:
                continue
            strata = part.index.get_level_values("gan").to_numpy()
            stats = paired_comparison(
                part[("correct", "cowboy")].to_numpy(),
                part[("correct", "defense_gan")].to_numpy(),
                strata=strata,
                margin=margin,
            )
            d = {f"mean_d_{m}": float(part[("d_cleaned", m)].mean()) for m in ("cowboy", "defense_gan")}
            stats["accuracy_cowboy"], stats["accuracy_defense_gan"] = (
                stats.pop("accuracy_a"),
                stats.pop("accuracy_b"),
            )
            stats["cowboy_only_correct"], stats["defense_gan_only_correct"] = (
                stats.pop("a_only_correct"),
                stats.pop("b_only_correct"),
            )
            out.append({**keys, "gan": gan, **stats, **d})
    return pd.DataFrame(out)
