"""Issue 22's "which should I use", across runs: every run's committed "which defence" points
in one table and one figure (clean against converged robust accuracy, a panel per epsilon).
The first run's bare classifiers set the goal; other runs' points are drawn unpaired."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_pipeline.plots import save_figure, which_defence_figure
from cowboy_pipeline.runtime import finish_job, start_job
from cowboy_pipeline.which import reference_runs, summary_points

start_job(snakemake)
labels, files = snakemake.params.labels, snakemake.input
runs = [(label, pd.read_csv(path)) for label, path in zip(labels, files, strict=True)]
points = summary_points(runs)
write_dataframe(points, snakemake.output.table)
save_figure(which_defence_figure(points, reference_runs(runs)), snakemake.output.figure)
finish_job()
