"""Stack per-dataset (or per-job) tables into one CSV."""

from cowboy_core.io import write_dataframe
from cowboy_pipeline.runtime import finish_job, read_tables, start_job

start_job(snakemake)
write_dataframe(read_tables(snakemake.input), snakemake.output[0])
finish_job()
