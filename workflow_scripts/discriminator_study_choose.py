"""Choose each method's setting on the validation split (stable settings only), and write the
choice with the validation numbers it came from; the test cleaning jobs read this file."""

import json

from cowboy_core.io import write_text
from cowboy_pipeline.discriminator_study import attach_flip_rates, choose_setting
from cowboy_pipeline.runtime import finish_job, read_tables, start_job

start_job(snakemake)
# Flip rates come from the first GAN's grid: cleaning images one at a time is too slow to repeat.
flips = read_tables(snakemake.input.flips)
validation = attach_flip_rates(read_tables(snakemake.input.own), flips)
choice = choose_setting(validation, max_flip_rate=snakemake.params.max_flip_rate)
choice |= {"gan": snakemake.wildcards.gan, "split": "val", "sources": list(map(str, snakemake.input.own))}
write_text(snakemake.output[0], json.dumps(choice, indent=1, default=str))
finish_job()
