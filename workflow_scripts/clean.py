"""Clean one attack's images with cowboy or Defense-GAN at the paper's protocol (the cleaning
section's settings; sigma and steps from the wildcards); classify; write per-sample rows."""

from cowboy_core import Cowboy, Execution
from cowboy_core.io import save_tensors, write_dataframe
from cowboy_core.settings import Settings
from cowboy_pipeline.cleaning_rows import clean_attack
from cowboy_pipeline.runtime import (
    LOG,
    finish_job,
    gan_step,
    load_checked,
    load_split,
    stable_offset,
    start_job,
)

wc, params = snakemake.wildcards, snakemake.params
device = start_job(snakemake, seed_offset=stable_offset(wc.dataset, wc.split, wc.attack))
images, labels, index, meta = load_split(snakemake.input.data, wc.split)
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
defense = Cowboy(
    generator,
    discriminator,
    Settings(sigma=float(wc.sigma), steps=int(wc.run_steps), method=wc.method, **params.cleaning),
    execution=Execution.from_env(device=device, progress=True),
)
LOG.info("cleaning %s with %s", wc.attack, defense.settings)
rows, adversarial, result = clean_attack(
    defense,
    classifier,
    (images, labels, index),
    snakemake.input.adversarial,
    seed=params.seed,
    record_steps=params.record_steps,
    dataset=wc.dataset,
    split=wc.split,
    attack=wc.attack,
    method=wc.method,
    sigma=float(wc.sigma),
    ckpt=gan_step(snakemake.input.gan),  # the step, also for the GAN validation chose
)
n = params.grid_images
grid = {"original": images[:n], "adversarial": adversarial[:n], "cleaned": result.images[:n]}
save_tensors(snakemake.output.grid, grid, {"dataset": wc.dataset, "attack": wc.attack, "method": wc.method})
write_dataframe(rows, snakemake.output.table)
finish_job()
