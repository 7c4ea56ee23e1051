"""The 5,000-step column of Tables 1-2 beside the tables' steps, and the whole curve."""

from cowboy_core.io import write_dataframe
from cowboy_pipeline.paper_steps import curve, summary
from cowboy_pipeline.runtime import finish_job, read_tables, start_job

start_job(snakemake)
curve_table = curve(read_tables(list(snakemake.input)))
write_dataframe(curve_table, snakemake.output.curve)
write_dataframe(
    summary(curve_table, snakemake.params.table_steps, snakemake.params.paper_steps), snakemake.output.table
)
finish_job()
