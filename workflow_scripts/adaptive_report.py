"""results/adaptive.csv and the robust-accuracy-against-epsilon figure."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_core.workflow.plots import robustness_curves, save_figure
from cowboy_core.workflow.runtime import start_job

start_job(snakemake)
table = pd.concat([pd.read_parquet(path) for path in snakemake.input], ignore_index=True)
table = table.sort_values(["dataset", "defense", "attack", "epsilon"]).reset_index(drop=True)
write_dataframe(table, snakemake.output.table)
save_figure(robustness_curves(table), snakemake.output.figure)
