"""One dataset's Tables 1-2 beside the paper's numbers, as CSV and Markdown, and its figures
(docs/reproduction)."""

import shutil
from pathlib import Path

import pandas as pd

from cowboy_core.io import write_dataframe, write_text
from cowboy_pipeline.report import comparison_table, markdown_report
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
inp, params = snakemake.input, snakemake.params
accuracy = pd.read_csv(inp.accuracy)
write_dataframe(comparison_table(accuracy, params.dataset, dict(params.epsilons)), snakemake.output.table)

timings = []
for tsv in sorted(Path("results/benchmarks").rglob("*.tsv")):
    frame = pd.read_csv(tsv, sep="\t")
    frame["rule"] = tsv.relative_to("results/benchmarks").parts[0]
    timings.append(frame)
report = markdown_report(
    params.dataset,
    accuracy,
    pd.read_csv(inp.detection),
    pd.read_csv(inp.sweep),
    pd.read_csv(inp.deployment),
    dict(params.epsilons),
    pd.concat(timings, ignore_index=True) if timings else None,
    pd.read_csv(inp.paired),
)
write_text(snakemake.output.markdown, report)

figures = Path(snakemake.output.figures)
figures.mkdir(parents=True, exist_ok=True)
for png in snakemake.input.figures:
    shutil.copyfile(png, figures / Path(png).name)
finish_job()
