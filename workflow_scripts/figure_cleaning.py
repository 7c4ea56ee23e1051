"""Figure 5: original, adversarial and cleaned images (cowboy and Defense-GAN), one row per
attack; the matched budgets on one page, each labelled budget ("-std") on its own."""

from pathlib import Path

from cowboy_core.io import load_tensors
from cowboy_pipeline.plots import cleaning_grid, figure5_pages, save_figure
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
pages = figure5_pages([load_tensors(path)[::-1] for path in snakemake.input.grids])
for output in snakemake.output:
    label = Path(output).stem.removeprefix("fig5_cleaning").removeprefix("_")
    rows, columns = pages[label]
    budget = f"'-{label}' budgets" if label else "matched budgets"
    title = f"Figure 5: original, adversarial and cleaned images ({budget})"
    save_figure(cleaning_grid(rows, columns, title), output)
finish_job()
