"""Figures 1 and 2: the two-Gaussians toy's classifier surface and D's score surface."""

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_pipeline.plots import save_figure, surface
from cowboy_pipeline.runtime import finish_job, start_job
from cowboy_pipeline.toy import evaluate_on_grid, run_toy

device = start_job(snakemake)
toy = snakemake.params.toy
result = run_toy(
    samples=toy["samples"],
    classifier_steps=toy["classifier_steps"],
    gan_steps=toy["gan_steps"],
    epsilon=toy["epsilon"],
    sigma=toy["sigma"],
    cleaning_steps=toy["cleaning_steps"],
    cleaning_lr=toy["cleaning_lr"],
    seed=snakemake.params.seed,
    device=device,
)
points, labels = result.points.numpy(), result.labels.numpy()
gx, gy, prob = evaluate_on_grid(result.classifier)
save_figure(
    surface(
        gx, gy, prob, points, labels, "Figure 1: classifier P(class 1) on two Gaussians", "P(class 1 | x)"
    ),
    snakemake.output.classifier,
)
gx, gy, dscore = evaluate_on_grid(result.discriminator)
save_figure(
    surface(
        gx,
        gy,
        dscore,
        points,
        labels,
        "Figure 2: discriminator score D(x)",
        "D(x)",
        extra=result.perturbed.numpy()[:100],
    ),
    snakemake.output.discriminator,
)
write_dataframe(pd.DataFrame([result.metrics]), snakemake.output.metrics)
finish_job()
