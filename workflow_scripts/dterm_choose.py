"""Choose each method's setting on the validation split (stable settings only), and write the
choice with the validation numbers it came from; the test cleaning jobs read this file."""

import json

import pandas as pd

from cowboy_core.evaluation import attach_flip_rates, choose_setting
from cowboy_core.io import write_text
from cowboy_core.workflow.runtime import start_job

start_job(snakemake)


def read(paths: list[str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


validation = attach_flip_rates(read(snakemake.input.own), read(snakemake.input.flips))  # the first GAN's
choice = choose_setting(validation, max_flip_rate=snakemake.params.max_flip_rate)
choice |= {"gan": snakemake.wildcards.gan, "split": "val", "sources": list(map(str, snakemake.input.own))}
write_text(snakemake.output[0], json.dumps(choice, indent=1, default=str))
