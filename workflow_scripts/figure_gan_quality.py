"""Figures 6 and 7: cleaning accuracy and mean D-scores against GAN training steps."""

import pandas as pd

from cowboy_pipeline.plots import gan_quality_cleaning, gan_quality_detection, save_figure
from cowboy_pipeline.runtime import finish_job, start_job
from cowboy_pipeline.statistics import wilson_interval

start_job(snakemake)
clean = pd.concat([pd.read_parquet(p) for p in snakemake.input.clean], ignore_index=True)
rows = []
for (dataset, ckpt, steps), group in clean.groupby(["dataset", "ckpt", "steps"]):
    correct = int((group["pred_cleaned"] == group["label"]).sum())
    low, high = wilson_interval(correct, len(group))
    rows.append(
        {
            "dataset": dataset,
            "ckpt": ckpt,
            "steps": steps,
            "accuracy": correct / len(group),
            "ci_low": low,
            "ci_high": high,
        }
    )
save_figure(gan_quality_cleaning(pd.DataFrame(rows)), snakemake.output.cleaning)

scores = pd.concat([pd.read_parquet(p) for p in snakemake.input.scores], ignore_index=True)
scores = scores[scores["source"].isin(["real", snakemake.params.attack])]
means = scores.groupby(["dataset", "source", "ckpt"], as_index=False)["d_score"].mean()
save_figure(gan_quality_detection(means), snakemake.output.detection)
finish_job()
