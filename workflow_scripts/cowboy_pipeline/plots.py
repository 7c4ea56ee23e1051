"""The paper's figures, drawn with matplotlib (Agg) and written atomically as PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cowboy_core.io import atomic_path

from .statistics import paired_comparison
from .suite_paths import VARIANT_PREFIX
from .which import BARE, THIS_RUN, datasets_of, goal_region


def save_figure(figure: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def image_grid(images: torch.Tensor, columns: int = 8) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H, columns*W[, C]) array in [0, 1]."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    n, c, h, w = x.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = torch.ones(c, rows * (h + 2), columns * (w + 2))
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, col * (w + 2) + 1 : col * (w + 2) + 1 + w] = x[i]
    array = canvas.permute(1, 2, 0).numpy()
    return array[..., 0] if c == 1 else array


def score_violins(scores: pd.DataFrame) -> Figure:
    """Figure 3: D-scores of real test inputs and of each attack, one panel per dataset."""
    datasets = list(dict.fromkeys(scores["dataset"]))
    width = max(4.5, 0.55 * scores["source"].nunique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(width * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        sub = scores[scores["dataset"] == dataset]
        sources = list(dict.fromkeys(sub["source"]))
        data = [sub[sub["source"] == s]["d_score"].to_numpy() for s in sources]
        ax.violinplot(data, showmedians=True)
        ax.set_xticks(range(1, len(sources) + 1), sources, rotation=45, ha="right")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(dataset)
        ax.set_ylabel("D(x)")
    fig.suptitle("Figure 3: discriminator scores, real vs adversarial")
    return fig


def grids_figure(panels: Sequence[tuple[str, torch.Tensor]], title: str, columns: int = 8) -> Figure:
    """Rows of image grids with labels (Figures 4 and 5)."""
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(columns * 0.9, 1.4 * len(panels) + 0.6), squeeze=False, layout="constrained"
    )
    for ax, (label, images) in zip(axes[:, 0], panels, strict=True):
        grid = image_grid(images, columns)
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def cleaning_grid(
    rows: Sequence[tuple[str, Sequence[torch.Tensor]]], columns: Sequence[str], title: str, per_cell: int = 4
) -> Figure:
    """Figure 5 as a table of images: one row per attack, one column per state (original,
    adversarial, cleaned by each method), ``per_cell`` images in a square block per cell."""
    side = max(1, math.isqrt(per_cell))
    fig, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(1.7 * len(columns) + 0.8, 1.7 * len(rows) + 0.7),
        squeeze=False,
        layout="constrained",
    )
    for r, (label, cells) in enumerate(rows):
        for c, images in enumerate(cells):
            grid = image_grid(images[: side * side], side)
            ax = axes[r, c]
            ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=10)
    fig.suptitle(title)
    return fig


METHOD_TITLES = {"cowboy": "cleaned by cowboy", "defense_gan": "cleaned by Defense-GAN"}


def figure5_pages(
    grids: Sequence[tuple[dict[str, str], dict[str, torch.Tensor]]],
) -> dict[str, tuple[list[tuple[str, list[torch.Tensor]]], list[str]]]:
    """Figure 5's pages from the cleaning jobs' grids (metadata, tensors): per attack label
    ("" for the matched budgets, "std", ...), the rows (dataset / attack) and the column
    titles. The original and adversarial images come from the first method's grid; every
    method cleaned the same images."""
    methods = list(dict.fromkeys(meta["method"] for meta, _ in grids))
    cells: dict[tuple[str, str], dict[str, dict[str, torch.Tensor]]] = {}
    for meta, tensors in grids:
        cells.setdefault((meta["dataset"], meta["attack"]), {})[meta["method"]] = tensors
    columns = ["original", "adversarial", *(METHOD_TITLES.get(m, f"cleaned by {m}") for m in methods)]
    pages: dict[str, tuple[list[tuple[str, list[torch.Tensor]]], list[str]]] = {}
    for (dataset, attack), by_method in cells.items():
        first = by_method[methods[0]]
        row = [first["original"], first["adversarial"], *(by_method[m]["cleaned"] for m in methods)]
        label = attack.partition("-")[2]
        pages.setdefault(label, ([], columns))[0].append((f"{dataset}\n{attack}", row))
    return pages


def gan_quality_cleaning(curves: pd.DataFrame) -> Figure:
    """Figure 6: cleaned accuracy against GAN training steps, one line per cleaning-step count."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        sub = curves[curves["dataset"] == dataset]
        for steps, line in sub.groupby("steps"):
            ax.errorbar(
                line["ckpt"],
                line["accuracy"],
                yerr=[line["accuracy"] - line["ci_low"], line["ci_high"] - line["accuracy"]],
                marker="o",
                capsize=2,
                label=f"{steps} cleaning steps",
            )
        ax.set_xlabel("GAN training steps")
        ax.set_ylabel("accuracy after cleaning")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 6: effect of GAN quality on cleaning")
    return fig


def gan_quality_detection(means: pd.DataFrame) -> Figure:
    """Figure 7: mean D-score of real and adversarial inputs against GAN training steps."""
    datasets = list(dict.fromkeys(means["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        sub = means[means["dataset"] == dataset]
        for source, line in sub.groupby("source"):
            ax.plot(line["ckpt"], line["d_score"], marker="o", label=str(source))
        ax.set_xlabel("GAN training steps")
        ax.set_ylabel("mean D(x)")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 7: effect of GAN quality on detection")
    return fig


def surface(
    grid_x: np.ndarray,
    grid_y: np.ndarray,
    values: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    title: str,
    colorbar: str,
    extra: np.ndarray | None = None,
) -> Figure:
    """A 2-D heat map with data points on top (Figures 1 and 2)."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    mesh = ax.pcolormesh(grid_x, grid_y, values, shading="auto", cmap="coolwarm", vmin=0, vmax=1)
    fig.colorbar(mesh, ax=ax, label=colorbar)
    ax.scatter(points[:, 0], points[:, 1], c=labels, s=3, cmap="bwr", edgecolors="none", alpha=0.6)
    if extra is not None:
        ax.scatter(extra[:, 0], extra[:, 1], s=5, c="k", marker="x", label="FGSM-perturbed")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title)
    ax.set_aspect("equal")
    return fig


def robustness_curves(table: pd.DataFrame) -> Figure:
    """Worst-case robust accuracy against epsilon, one line per policy (deployer's fixed seed),
    one panel per defence, with 95% Wilson intervals; the undefended classifier in every panel."""
    worst = table[(table["attack"] == "worst_case") & (table["seed"] == "fixed")]
    defenses = [d for d in ("cowboy", "defense_gan") if d in set(worst["defense"])]
    fig, axes = plt.subplots(
        1, max(1, len(defenses)), figsize=(5.5 * max(1, len(defenses)), 4), squeeze=False
    )
    undefended = worst[worst["defense"] == "none"].sort_values("epsilon")
    for ax, defense in zip(axes[0], defenses, strict=False):
        sub = worst[worst["defense"] == defense]
        lines = [(f"{policy}", g) for policy, g in sub.groupby("policy")] + [("undefended", undefended)]
        for label, line in lines:
            line = line.sort_values("epsilon")
            ax.errorbar(
                line["epsilon"],
                line["robust_accuracy"],
                # Wilson bounds can sit a rounding error inside an accuracy of 0 or 1.
                yerr=[
                    (line["robust_accuracy"] - line["ci_low"]).clip(lower=0),
                    (line["ci_high"] - line["robust_accuracy"]).clip(lower=0),
                ],
                marker="o",
                capsize=2,
                linestyle="--" if label == "undefended" else "-",
                label=label + (" (rejections count as correct)" if label == "reject" else ""),
            )
        ax.axhline(0.1, color="grey", linewidth=0.8, label="chance (10 classes)")
        ax.set_xlabel("L-inf epsilon ([0, 1] pixel units)")
        ax.set_ylabel("robust accuracy, worst case over attacks")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(defense)
        ax.legend(fontsize=7)
    fig.suptitle("Robust accuracy of the deployed defence under the strongest attack per image")
    return fig


def discriminator_study_figure(validation: pd.DataFrame) -> Figure:
    """Validation: cowboy (one line per d_weight) minus Defense-GAN at the same optimizer, step
    size and step count, paired on the same images and z0, pooled over GAN seeds, with 95%
    paired-bootstrap intervals; one panel per optimizer (R = 1)."""
    single = validation[validation["restarts"] == 1].drop_duplicates(
        subset=["gan", "image", "method", "d_weight", "optimizer", "lr", "steps"]
    )
    optimizers = single[["optimizer", "lr"]].drop_duplicates().sort_values(["optimizer", "lr"]).to_numpy()
    fig, axes = plt.subplots(
        1, max(1, len(optimizers)), figsize=(5 * max(1, len(optimizers)), 4), squeeze=False
    )
    for ax, (optimizer, lr) in zip(axes[0], optimizers, strict=False):
        runs = single[(single["optimizer"] == optimizer) & (single["lr"] == lr)]
        base = runs[runs["method"] == "defense_gan"].set_index(["gan", "image", "steps"])["correct"]
        for d_weight, line in runs[runs["method"] == "cowboy"].groupby("d_weight"):
            line = line.set_index(["gan", "image", "steps"])["correct"]
            common = line.index.intersection(base.index)
            points = []
            for steps in sorted(set(common.get_level_values("steps"))):
                at = common[common.get_level_values("steps") == steps]
                stats = paired_comparison(
                    line[at].to_numpy(),
                    base[at].to_numpy(),
                    strata=at.get_level_values("gan").to_numpy(),
                    resamples=2000,
                )
                points.append((steps, stats["difference"], stats["ci_low"], stats["ci_high"]))
            if points:
                steps_, diff, low, high = map(np.array, zip(*points, strict=True))
                ax.plot(steps_, diff, marker="o", label=f"d_weight {d_weight:g}")
                ax.fill_between(steps_, low, high, alpha=0.15)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("cleaning steps")
        ax.set_ylabel("accuracy: cowboy - Defense-GAN (validation)")
        ax.set_title(f"{optimizer}, step size {lr:g}")
        ax.legend(fontsize=7)
    fig.suptitle("Does the discriminator term help? Paired difference on the validation split")
    return fig


def which_defence_figure(points: pd.DataFrame, references: Mapping[str, str] | None = None) -> Figure:
    """Issue 22's "which should I use": clean accuracy (x) against worst-case robust accuracy
    (y), a row of panels per dataset and one panel per epsilon, one point per defence with 95%
    intervals both ways; a hollow marker where the doubling check says the attack has not
    converged (an upper bound), a square for another run's point than the dataset's reference
    run's (``references``, by dataset; this run's by default: unpaired with it), and the
    goal's region shaded where the reference run gives it."""
    points = points if "run" in points else points.assign(run=THIS_RUN)
    points = points.assign(dataset=datasets_of(points, per_row=True))
    datasets = datasets_of(points)
    columns = max(points.groupby("dataset")["epsilon"].nunique())
    fig, axes = plt.subplots(
        len(datasets), columns, figsize=(5.6 * columns, 7.0 * len(datasets)), squeeze=False
    )
    colors = point_colors(points)
    for row_axes, dataset in zip(axes, datasets, strict=True):
        own = points[points["dataset"] == dataset]
        reference = (references or {}).get(dataset, THIS_RUN)
        epsilons = sorted(own["epsilon"].unique())
        for ax in row_axes[len(epsilons) :]:
            ax.set_axis_off()
        for ax, epsilon in zip(row_axes, epsilons, strict=False):
            _which_panel(ax, own, epsilon, reference, colors)
            where = f"{dataset}, " if dataset else ""
            ax.set_title(f"{where}L-inf epsilon {epsilon:g}, n = {int(own['n'].max())} test images")
    fig.suptitle(
        "Which defence? Clean against robust accuracy\n"
        "(hollow: the attack has not converged; square: another run's committed point, unpaired)"
    )
    fig.tight_layout()
    return fig


def _which_panel(
    ax: Axes, points: pd.DataFrame, epsilon: float, reference: str, colors: dict[tuple[str, str], str]
) -> None:
    corner = goal_region(points, epsilon, reference)
    if corner is not None:
        ax.add_patch(Rectangle(corner, 1.0 - corner[0], 1.02 - corner[1], color="C2", alpha=0.12))
        ax.text(corner[0] + 0.01, 1.0, "goal", va="top", fontsize=8, color="C2")
    for row in points[points["epsilon"] == epsilon].itertuples():
        _draw_point(ax, row, colors[(row.defense, row.run)], reference)
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("robust accuracy, worst case over the suite")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    # Below the axes: inside them the legend hid the adversarial-training point.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13))


def point_colors(points: pd.DataFrame) -> dict[tuple[str, str], str]:
    """A colour per (defence, run), the same in every panel, and no two alike. One defence
    drawn by several runs keeps one colour unless two of its runs share a panel (the cards at
    the paper's and the chosen settings do; one variant attacked at 0.1 in one run and at 0.3
    in another does not). Past ten colours, tab20's twenty."""
    shared = {defense for defense, rows in points.groupby("defense") if rows.duplicated("epsilon").any()}
    pairs = list(dict.fromkeys(zip(points["defense"], points["run"], strict=True)))

    def key(defense: str, run: str) -> tuple[str, str]:
        return (defense, run if defense in shared else "")

    distinct = list(dict.fromkeys(key(*pair) for pair in pairs))
    palette = [f"C{i}" for i in range(10)] if len(distinct) <= 10 else _TAB20
    if len(distinct) > len(palette):
        raise ValueError(f"{len(distinct)} defences to draw; the figure tells apart at most {len(palette)}")
    index = {k: i for i, k in enumerate(distinct)}
    return {pair: palette[index[key(*pair)]] for pair in pairs}


_TAB20 = [to_hex(color) for color in plt.get_cmap("tab20").colors]  # type: ignore[attr-defined]


def _draw_point(ax: Axes, row: Any, color: str, reference: str) -> None:
    ax.errorbar(
        row.clean_accuracy,
        row.robust_accuracy,
        xerr=[
            [max(0.0, row.clean_accuracy - row.clean_ci_low)],
            [max(0.0, row.clean_ci_high - row.clean_accuracy)],
        ],
        yerr=[
            [max(0.0, row.robust_accuracy - row.robust_ci_low)],
            [max(0.0, row.robust_ci_high - row.robust_accuracy)],
        ],
        marker="o" if row.run == reference else "s",
        markerfacecolor=color if row.converged else "white",
        color=color,
        capsize=2,
        label=_point_label(row, reference),
    )


_DEFENCE_NAMES = {
    "none": "bare classifier",
    "adversarial": "PGD adversarial training",
    "adversarial_cowboy": "adversarial training + cowboy",
    "defense_gan": "Defense-GAN",
}


def defence_name(defense: str) -> str:
    """The legend's name for a suite defence. The raw names misled ("adversarial
    (undefended)" read as no defence at all); a variant keeps its name from variants.cards."""
    if defense.startswith(VARIANT_PREFIX):
        return f"variant {defense.removeprefix(VARIANT_PREFIX)}"
    return _DEFENCE_NAMES.get(defense, defense)


def _point_label(row: Any, reference: str) -> str:
    details = [] if row.defense in BARE else [str(row.policy)]
    details += [] if row.run == reference else [str(row.run)]
    budget = getattr(row, "budget", math.nan)
    details += [] if math.isnan(budget) else [f"budget x{budget:g}"]
    label = defence_name(row.defense) + (f" ({', '.join(details)})" if details else "")
    return label + ("" if row.converged else ", not converged")
