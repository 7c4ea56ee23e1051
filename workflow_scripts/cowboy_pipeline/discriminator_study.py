"""The discriminator study's measurements and tables: the validation grid per image, the
setting chosen on validation, and cowboy against Defense-GAN on the same test images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cowboy_core.cleaning import Cowboy
from cowboy_core.detection import discriminator_logits, scores_from_logits
from cowboy_core.restarts import initial_latents
from cowboy_core.training import predict

from .choice import choose
from .statistics import paired_comparison, wilson_interval


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
    n, r = x.shape[0], defense.settings.restarts
    z0 = initial_latents(n, defense.settings.restarts, defense.latent_dim, seed)
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


SETTING_KEYS = ["method", "d_weight", "optimizer", "lr", "restarts", "steps"]


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
        picked = choose(
            rows, objective="accuracy", constraints={"flip_rate": max_flip_rate}, tie_break=["steps"]
        )
        stable = picked[picked["chosen"]]
        # No stable setting: the study still needs one per method, so it takes the best and
        # says so in "stable_setting_found" (the card's chooser refuses instead).
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
