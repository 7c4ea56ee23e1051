"""Stack per-dataset (or per-job) tables into one CSV."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_core.workflow.runtime import start_job

start_job(snakemake)
read = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
frames = [read["." + str(path).rsplit(".", 1)[-1]](path) for path in snakemake.input]
write_dataframe(pd.concat(frames, ignore_index=True), snakemake.output[0])
