"""How chaotic the deployed cleaning is, and what that does to its gradients (section 4 of
the robustness issue): one row per dataset and cleaning method."""

import pandas as pd

from cowboy_core import Cowboy, Execution
from cowboy_core.diagnostics import chaos_report
from cowboy_core.io import write_dataframe
from cowboy_pipeline.runtime import finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
images, _, _, meta = load_split(snakemake.input.data, "test")
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
execution = Execution.from_env(device=device)
defense = Cowboy.load(snakemake.input.card, execution=execution, method=wc.method, **params.overrides)
report = chaos_report(classifier.eval(), defense, images[: params.images].to(device), seed=params.seed)
settings = {
    "sigma": defense.settings.sigma,
    "steps": defense.settings.steps,
    "lr": defense.settings.lr,
    "optimizer": defense.settings.optimizer,
}
row = {"dataset": wc.dataset, "method": wc.method, "settings": wc.settings, **settings, **report}
write_dataframe(pd.DataFrame([row]), snakemake.output[0])
finish_job()
