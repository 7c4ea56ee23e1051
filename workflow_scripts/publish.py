"""Copy pipeline outputs, unchanged, to where the committed reproduction keeps them."""

import shutil

from cowboy_core.io import atomic_path
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
for source, target in zip(snakemake.input, snakemake.output, strict=True):
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
finish_job()
