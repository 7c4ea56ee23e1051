"""Tables 1-2 at the paper's 5,000 plain-GD steps (the captions' setting), beside the committed
tables' steps, on a seeded subset of the test images (config ``paper_steps``).

One job per dataset, attack and method runs the paper's protocol (the cleaning section's
sigma, step size and plain GD) for ``paper_steps.steps`` steps on the first ``images`` test
images (the test split is itself a seeded subset), recording snapshots along the way. At the
table's step count a snapshot is the same bits as Table 1's cleaning of those images (the same
z0 per input, the same chunks), so the two columns are paired on the same images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cowboy_pipeline.config import canonical

if TYPE_CHECKING:
    import pandas as pd

Config = dict[str, Any]


def long_path(dataset: str, attack: str, method: str, steps: int, images: int) -> str:
    return f"results/clean_long/{dataset}/{attack}/{method}_run{steps}_n{images}.parquet"


def clean_long_files(config: Config) -> list[str]:
    """Every (dataset, attack, method) of ``paper_steps``."""
    spec = config["paper_steps"]
    return [
        long_path(ds, attack, method, spec["steps"], spec["images"])
        for ds in spec["datasets"]
        for attack in spec["attacks"]
        for method in config["cleaning"]["methods"]
    ]


def targets(config: Config) -> list[str]:
    return (
        ["results/paper_steps.csv", "results/paper_steps_curve.csv"]
        if config["paper_steps"]["datasets"]
        else []
    )


def long_params(config: Config, wildcards: Any) -> dict[str, Any]:
    """The paper's protocol: the cleaning section's settings, plain GD, one restart."""
    cleaning = config["cleaning"]
    settings = {key: cleaning[key] for key in ("sigma", "lr", "restarts", "optimizer")}
    return canonical(settings | {"early_stop_tol": None})


def record_steps(config: Config, wildcards: Any) -> list[int]:
    """The curve's snapshots: the spec's, the table's steps and the last step."""
    spec = config["paper_steps"]
    steps = {*spec["record_steps"], config["cleaning"]["steps"], int(wildcards.run_steps)}
    return sorted(s for s in steps if s <= int(wildcards.run_steps))


def curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Cleaned accuracy per dataset, attack, method and snapshot, with its Wilson interval."""
    import pandas as pd

    from cowboy_pipeline.tables import accuracy_row  # pandas and torch: not at the workflow's parse

    keys = ["dataset", "attack", "method", "steps"]
    out = [
        accuracy_row(group["pred_cleaned"] == group["label"], **dict(zip(keys, values, strict=True)))
        for values, group in rows.groupby(keys, sort=True)
    ]
    return pd.DataFrame(out)


def summary(curve_table: pd.DataFrame, table_steps: int, paper_steps: int) -> pd.DataFrame:
    """Per dataset, attack and method: the accuracy at the table's steps and at the paper's,
    their difference, and where the curve peaks (the first snapshot at its best)."""
    import pandas as pd

    rows = []
    for (dataset, attack, method), group in curve_table.groupby(["dataset", "attack", "method"], sort=True):
        by_steps = group.set_index("steps")
        short, long = by_steps.loc[table_steps], by_steps.loc[paper_steps]
        best = by_steps["accuracy"].idxmax()
        rows.append(
            {
                "dataset": dataset, "attack": attack, "method": method, "n": int(long["n"]),
                f"accuracy_{table_steps}": short["accuracy"],
                f"ci_{table_steps}": f"[{short['ci_low']:.3f}, {short['ci_high']:.3f}]",
                f"accuracy_{paper_steps}": long["accuracy"],
                f"ci_{paper_steps}": f"[{long['ci_low']:.3f}, {long['ci_high']:.3f}]",
                "difference": long["accuracy"] - short["accuracy"],
                "peak_steps": int(best), "peak_accuracy": by_steps.loc[best, "accuracy"],
            }
        )  # fmt: skip
    return pd.DataFrame(rows)
