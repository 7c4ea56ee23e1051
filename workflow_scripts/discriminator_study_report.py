"""The discriminator study's tables and figure: the validation grid (accuracy, flip rate and
D(G(z)) per setting), and cowboy against Defense-GAN on the test split, paired, at each
method's own validation choice and at the shared fixed settings."""

import json
from pathlib import Path

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_pipeline.discriminator_study import attach_flip_rates, choose_setting, paired_table
from cowboy_pipeline.plots import discriminator_study_figure, save_figure
from cowboy_pipeline.runtime import finish_job, read_tables, start_job

start_job(snakemake)
inp, margin = snakemake.input, snakemake.params.margin
validation = read_tables(inp.validation)
first = validation[validation["flipped_alone"].notna()]  # the GAN whose grid measured the flips
grids = [
    pd.DataFrame(choose_setting(attach_flip_rates(v, first))["validation"]).assign(gan=g)
    for g, v in validation.groupby("gan")
]
write_dataframe(pd.concat(grids, ignore_index=True), snakemake.output.validation)
chosen = read_tables(inp.chosen).assign(comparison="own validation choice")
fixed = read_tables(inp.fixed)
fixed = fixed[fixed["steps"] == fixed["run_steps"]]  # the final snapshot of each fixed run
spec = ["optimizer", "lr", "restarts", "run_steps"]
d_weight = fixed.groupby(spec)["d_weight"].transform("max")  # the cowboy side of each fixed pair
fixed = fixed.assign(
    comparison="fixed: d_weight "
    + d_weight.map("{:g}".format)
    + ", "
    + fixed["optimizer"]
    + " lr "
    + fixed["lr"].map("{:g}".format)
    + ", "
    + fixed["run_steps"].astype(str)
    + " steps, R "
    + fixed["restarts"].astype(str)
)
both = pd.concat([chosen, fixed], ignore_index=True)
steps = both["gan"].str.split("_step").str[1].astype(int)
seeds = sorted(set(both.loc[steps == steps.min(), "gan"]))  # pooled: the seeds at the standard steps
table = paired_table(both, by=["comparison", "attack"], pool=seeds, margin=margin)
settings = {Path(p).parent.name: json.loads(Path(p).read_text())["chosen"] for p in inp.choices}
table["cowboy_setting"] = [
    json.dumps(settings.get(g, {}).get("cowboy", {}).get("setting")) if c.startswith("own") else ""
    for c, g in zip(table["comparison"], table["gan"], strict=True)
]
table["defense_gan_setting"] = [
    json.dumps(settings.get(g, {}).get("defense_gan", {}).get("setting")) if c.startswith("own") else ""
    for c, g in zip(table["comparison"], table["gan"], strict=True)
]
write_dataframe(table, snakemake.output.table)
save_figure(discriminator_study_figure(validation), snakemake.output.figure)
finish_job()
