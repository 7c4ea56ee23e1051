"""Table 2 as a paired test: cowboy minus Defense-GAN on the same test images, per attack,
at the paper's settings and at the card's."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_pipeline.runtime import finish_job, start_job
from cowboy_pipeline.tables import paired_methods, table2_rows

start_job(snakemake)
inp, params = snakemake.input, snakemake.params
clean = pd.concat([pd.read_parquet(path) for path in inp.clean], ignore_index=True)
card_clean = pd.concat([pd.read_parquet(path) for path in inp.card_clean], ignore_index=True)
rows = table2_rows(clean, card_clean, params.sigma, params.steps)
write_dataframe(paired_methods(rows, seed=params.seed), snakemake.output[0])
finish_job()
