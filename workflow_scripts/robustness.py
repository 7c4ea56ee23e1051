"""Every attack of the suite on the deployed defence (or the bare classifier) at one epsilon:
per image, policy and seed, whether the deployed DefendedClassifier still defends it. A job
attacks its images (params.images: a shard's [start, stop), else all of the run's) or, for a
sharded run, gathers its shards' rows (input.shards)."""

import pandas as pd

from cowboy_core import Cowboy, Execution, Job
from cowboy_core.io import write_dataframe
from cowboy_core.suite import run_suite
from cowboy_pipeline.robustness import cleaning_method, earlier_broken, suite_at
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params


def attack() -> pd.DataFrame:
    """This job's images under the suite, with dataset indices as image numbers."""
    cfg, scale = params.robustness, params.scale  # budgets x scale
    # A main run (scale 1, or one climbed above it) attacks every image; the check, double_images.
    main_run = scale == 1 or getattr(params, "all_images", False)
    size = cfg["size"] if main_run else min(cfg["double_images"], cfg["size"])
    start, stop = getattr(params, "images", (0, size))
    images, labels, index, meta = load_split(snakemake.input.data, "test")
    images, labels, index = images[start:stop].to(device), labels[start:stop].to(device), index[start:stop]
    classifier = load_checked(snakemake.input.classifier, meta, device, "classifier")[0].eval()
    defense, method = None, cleaning_method(wc.defense)
    if method is not None:  # the deployed card, with or without the D term
        # Planned for the unrolled attack: its plain and unrolled cleanings share their chunks.
        execution = Execution.from_env(device=device, job=Job.UNROLLED)
        defense = Cowboy.load(snakemake.input.card, execution=execution, method=method)
    # A run above scale 1 starts where the run below it left these images (broken stays broken).
    earlier_run = getattr(snakemake.input, "main", None)
    broken = earlier_broken(pd.read_parquet(earlier_run), index.numpy()) if earlier_run else None
    scores = pd.read_parquet(snakemake.input.val_scores)
    epsilon = float(wc.epsilon)
    per_image = run_suite(
        classifier,
        defense,
        images,
        labels,
        epsilon=epsilon,
        suite=suite_at(cfg, scale),
        median_real_score=float(scores.loc[scores["source"] == "real", "d_score"].median()),
        checks=main_run and abs(epsilon - cfg["check_epsilon"]) < 1e-9,
        seed=params.seed,
        log=LOG.info,
        broken=broken,
        first_image=start,
    )
    per_image["image"] = index.numpy()[per_image["image"].to_numpy()]
    return per_image.assign(dataset=wc.dataset, defense=wc.defense, epsilon=epsilon, budget=scale)


# A sharded run's shards attacked every image; its own job only gathers their rows.
shards = list(getattr(snakemake.input, "shards", []))
gathered = [pd.read_parquet(path) for path in shards]
write_dataframe(pd.concat(gathered, ignore_index=True) if shards else attack(), snakemake.output[0])
finish_job()
