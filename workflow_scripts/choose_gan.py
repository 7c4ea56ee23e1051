"""Choose the GAN the pipeline uses among gan.candidates, on validation (cowboy_pipeline/
gan_choice.py states the rule); write every candidate's row and a copy of the chosen GAN."""

import shutil

from cowboy_core.io import atomic_path, write_dataframe
from cowboy_pipeline.gan_choice import choose_gan, chosen_step, outcomes
from cowboy_pipeline.runtime import LOG, finish_job, read_tables, start_job

start_job(snakemake)
params = snakemake.params.choice
by_gan = outcomes(read_tables(snakemake.input.validation), params["candidates"], params["steps"])
table = choose_gan(by_gan, seed=snakemake.params.seed).assign(dataset=snakemake.wildcards.dataset)
for row in table.itertuples():
    LOG.info(
        "GAN step %d: accuracy %.4f, minus the shortest %+.4f [%+.4f, %+.4f]%s",
        row.gan_steps, row.accuracy, row.difference, row.difference_low, row.difference_high,
        " (chosen)" if row.chosen else "",
    )  # fmt: skip
step = chosen_step(table)
source = snakemake.input.candidates[params["candidates"].index(step)]
with atomic_path(snakemake.output.weights) as tmp:
    shutil.copyfile(source, tmp)  # the same bytes: its metadata still says which step it is
write_dataframe(table, snakemake.output.choice)
finish_job()
