"""Detect-then-clean on a stream of half clean, half adversarial test images."""

import numpy as np
import pandas as pd

from cowboy_core.evaluation import stream_metrics
from cowboy_core.io import write_dataframe
from cowboy_core.runtime import start_job

start_job(snakemake)
params = snakemake.params
frames = [pd.read_parquet(path) for path in snakemake.input.clean]
clean = pd.concat(frames, ignore_index=True)
clean = clean[np.isclose(clean["sigma"], params.sigma) & (clean["steps"] == params.steps)]
thresholds = pd.read_csv(snakemake.input.detection).groupby("dataset")["threshold"].first()
rows = []
for dataset, by_dataset in clean.groupby("dataset", sort=False):
    threshold = float(thresholds[dataset])
    real = by_dataset[by_dataset["attack"] == "none"].set_index("index").sort_index()
    # Each test image enters the stream once: a seeded half as itself, the rest attacked.
    rng = np.random.default_rng(params.seed)
    attacked = pd.Series(rng.permutation(len(real)) < len(real) // 2, index=real.index)
    for attack, adv in by_dataset[by_dataset["attack"] != "none"].groupby("attack", sort=False):
        adv = adv.set_index("index").loc[real.index]
        is_adv = attacked.to_numpy()
        metrics = stream_metrics(
            labels=real["label"].to_numpy(),
            is_adversarial=is_adv,
            flagged=np.where(is_adv, adv["d_adversarial"] < threshold, real["d_original"] < threshold),
            pred_raw=np.where(is_adv, adv["pred_adversarial"], real["pred_original"]),
            pred_cleaned=np.where(is_adv, adv["pred_cleaned"], real["pred_cleaned"]),
        )
        undefended = np.where(is_adv, adv["pred_adversarial"], real["pred_original"]) == real["label"]
        rows.append(
            {
                "dataset": dataset,
                "attack": attack,
                "threshold": threshold,
                **metrics,
                "undefended_stream_accuracy": float(undefended.mean()),
            }
        )
write_dataframe(pd.DataFrame(rows), snakemake.output[0])
