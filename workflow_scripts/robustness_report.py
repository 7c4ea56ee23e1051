"""results/robustness.csv (per defence, policy, seed, attack and epsilon, with the per-image
worst case), the convergence check, Carlini et al.'s checks, the chaos table, the robustness
figure, and which defence to pick (clean against converged robust accuracy, issue 22)."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_pipeline.plots import robustness_curves, save_figure, which_defence_figure
from cowboy_pipeline.robustness import carlini_checks, convergence_table, robustness_table
from cowboy_pipeline.runtime import finish_job, start_job
from cowboy_pipeline.which import THIS_RUN, defence_points, earlier_points

start_job(snakemake)
per_image = pd.concat([pd.read_parquet(path) for path in snakemake.input.robustness], ignore_index=True)
tables = []
for dataset, frame in per_image.groupby("dataset", sort=False):
    tables.append(robustness_table(frame).assign(dataset=dataset))
table = pd.concat(tables, ignore_index=True)
write_dataframe(table, snakemake.output.table)
doubled = pd.concat([pd.read_parquet(path) for path in snakemake.input.doubled], ignore_index=True)
convergence = [
    convergence_table(per_image[per_image["dataset"] == d], frame).assign(dataset=d)
    for d, frame in doubled.groupby("dataset", sort=False)
]
convergence = pd.concat(convergence, ignore_index=True)
write_dataframe(convergence, snakemake.output.convergence)
points = [
    defence_points(frame, convergence[convergence["dataset"] == d]).assign(dataset=d)
    for d, frame in per_image.groupby("dataset", sort=False)
]
points = pd.concat(points, ignore_index=True).assign(run=THIS_RUN)
attacked = set(points["defense"])  # this run's own: an earlier run adds only the others
for earlier in snakemake.params.earlier_runs:  # committed aggregates: drawn, not paired
    checked = earlier["convergence"]
    table = pd.read_csv(earlier["table"])
    extra = earlier_points(
        table[table["epsilon"].isin(points["epsilon"])],  # this run's budgets only
        None if checked is None else pd.read_csv(checked),
        earlier["label"],
        attacked=attacked,
    )
    points = pd.concat([points, extra], ignore_index=True)
write_dataframe(points, snakemake.output.which)
save_figure(which_defence_figure(points), snakemake.output.which_figure)
checks = [
    carlini_checks(f, epsilon=snakemake.params.check_epsilon).assign(dataset=d)
    for d, f in per_image.groupby("dataset")
]
write_dataframe(pd.concat(checks, ignore_index=True), snakemake.output.checks)
chaos = [pd.read_csv(p) for p in snakemake.input.chaos]  # none where the run attacks no card
chaos = (
    pd.concat(chaos, ignore_index=True) if chaos else pd.DataFrame(columns=["dataset", "method", "settings"])
)
write_dataframe(chaos, snakemake.output.chaos)
save_figure(robustness_curves(table), snakemake.output.figure)
finish_job()
