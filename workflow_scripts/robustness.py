"""Every attack of the suite on the deployed defence (or the bare classifier) at one epsilon:
per image, policy and seed, whether the deployed DefendedClassifier still defends it."""

import pandas as pd

from cowboy_core import Cowboy, Execution
from cowboy_core.io import write_dataframe
from cowboy_core.suite import Suite, run_suite
from cowboy_pipeline.robustness import cleaning_method, earlier_broken
from cowboy_pipeline.runtime import LOG, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
cfg, scale = params.robustness, params.scale  # budgets x scale
# A main run (scale 1, or one climbed above it) attacks every image; the check, double_images.
main_run = scale == 1 or getattr(params, "all_images", False)
size = cfg["size"] if main_run else min(cfg["double_images"], cfg["size"])
images, labels, index, meta = load_split(snakemake.input.data, "test")
images, labels, index = images[:size].to(device), labels[:size].to(device), index[:size]
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
classifier.eval()
defense = None
method = cleaning_method(wc.defense)
if method is not None:  # the deployed card, with or without the D term
    defense = Cowboy.load(snakemake.input.card, execution=Execution.from_env(device=device), method=method)
# A run above scale 1 starts where the run below it left these images (broken stays broken).
earlier_run = getattr(snakemake.input, "main", None)
broken = earlier_broken(pd.read_parquet(earlier_run), index.numpy()) if earlier_run else None
scores = pd.read_parquet(snakemake.input.val_scores)
median_real = float(scores.loc[scores["source"] == "real", "d_score"].median())
epsilon = float(wc.epsilon)
per_image = run_suite(
    classifier,
    defense,
    images,
    labels,
    epsilon=epsilon,
    suite=Suite(**{key: cfg[key] for key in Suite.__dataclass_fields__}).scaled(scale),
    median_real_score=median_real,
    checks=main_run and abs(epsilon - cfg["check_epsilon"]) < 1e-9,
    seed=params.seed,
    log=LOG.info,
    broken=broken,
)
per_image["image"] = index.numpy()[per_image["image"].to_numpy()]
per_image = per_image.assign(dataset=wc.dataset, defense=wc.defense, epsilon=epsilon, budget=scale)
write_dataframe(per_image, snakemake.output[0])
