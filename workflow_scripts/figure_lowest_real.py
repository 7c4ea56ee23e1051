"""Figure 4: the real test images that D scores lowest, per dataset."""

import pandas as pd
import torch

from cowboy_pipeline.plots import grids_figure, save_figure
from cowboy_pipeline.runtime import finish_job, load_split, start_job

start_job(snakemake)
n = snakemake.params.images
panels = []
for data_path, score_path in zip(snakemake.input.data, snakemake.input.test_scores, strict=True):
    images, _, index, meta = load_split(data_path, "test")
    scores = pd.read_parquet(score_path)
    real = scores[scores["source"] == "real"].nsmallest(n, "d_score")
    position = {int(i): k for k, i in enumerate(index.tolist())}
    picked = torch.stack([images[position[int(i)]] for i in real["index"]])
    low, high = real["d_score"].min(), real["d_score"].max()
    panels.append(
        (f"{meta['dataset']}: lowest D among real test images (D in [{low:.3f}, {high:.3f}])", picked)
    )
save_figure(grids_figure(panels, "Figure 4: real images that D scores lowest"), snakemake.output[0])
finish_job()
