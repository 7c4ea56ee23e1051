"""Our Table 1/2 numbers for one dataset beside the paper's (docs/reproduction)."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_core.paper import comparison_table
from cowboy_core.runtime import start_job

start_job(snakemake)
accuracy = pd.read_csv(snakemake.input.accuracy)
write_dataframe(comparison_table(accuracy, snakemake.params.dataset), snakemake.output[0])
