"""Figure 3: violins of D-scores for real test images and each attack."""

import pandas as pd

from cowboy_pipeline.plots import save_figure, score_violins
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
scores = pd.concat([pd.read_parquet(p) for p in snakemake.input.test_scores], ignore_index=True)
save_figure(score_violins(scores), snakemake.output[0])
finish_job()
