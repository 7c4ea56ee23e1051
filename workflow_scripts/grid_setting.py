"""One setting of a validation grid, the card's or a variant's (issue 22): clean the first
validation images and the calibration attack's versions of them, alone, in another chunking
and perturbed, and record per image what the chooser needs (measure_setting); with the
variant's classifier and, for an encoder start, its encoder."""

from cowboy_core import Cowboy, Execution
from cowboy_core.io import load_models, load_tensors, write_dataframe
from cowboy_core.settings import Settings
from cowboy_pipeline.choice import measure_setting
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
images, labels, _, meta = load_split(snakemake.input.data, "val")
attacked = load_tensors(snakemake.input.attack)[0]["adversarial"]
n = params.card["images"]
if attacked.shape[0] < n:
    raise ValueError(
        f"card.images = {n} but the calibration attack has {attacked.shape[0]} validation images; "
        "lower card.images or raise validation_attack_size"
    )
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
encoders = getattr(snakemake.input, "encoder", [])
encoder = load_models(encoders[0], device=device)[0]["encoder"] if encoders else None
variant = dict(wc.items()).get("variant")
LOG.info("%ssetting %s: %s", f"variant {variant}, " if variant else "", wc.setting, params.setting)
execution = Execution.from_env(device=device)
defense = Cowboy(generator, discriminator, Settings(**params.setting), execution=execution, encoder=encoder)
rows = measure_setting(
    classifier.eval(),
    defense,
    images[:n].to(device),
    attacked[:n].to(device),
    labels[:n],
    seed=params.seed,
    alone_images=params.card["alone_images"],
    perturbation=params.card["perturbation"],
    trajectories=params.card["trajectories"],
)
rows = rows.assign(dataset=wc.dataset, setting=wc.setting, **params.setting)
rows = rows.assign(variant=variant) if variant else rows
write_dataframe(rows, snakemake.output[0])
finish_job()
