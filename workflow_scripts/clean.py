"""Clean one attack's images with cowboy or Defense-GAN; classify; write per-sample rows."""

from cowboy_core import Cowboy, Execution
from cowboy_core.io import load_tensors, save_tensors, write_dataframe
from cowboy_core.settings import Settings
from cowboy_pipeline.runtime import LOG, load_checked, load_split, stable_offset, start_job
from cowboy_pipeline.statistics import per_sample_rows

wc, params = snakemake.wildcards, snakemake.params
device = start_job(snakemake, seed_offset=stable_offset(wc.dataset, wc.split, wc.attack))
images, labels, index, meta = load_split(snakemake.input.data, wc.split)
attack_tensors, attack_meta = load_tensors(snakemake.input.adversarial)
adversarial = attack_tensors["adversarial"]
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
defense = Cowboy(
    generator,
    discriminator,
    Settings(sigma=float(wc.sigma), steps=int(wc.run_steps), method=wc.method, **params.cleaning),
    execution=Execution.from_env(device=device, progress=True),
)
LOG.info("cleaning %s with %s", wc.attack, defense.settings)
# The same z0 for every method and attack: Table 2 compares the methods on paired starts.
result = defense.clean_detailed(adversarial, seed=params.seed, record_at=params.record_steps)
rows = per_sample_rows(
    defense,
    classifier,
    images,
    adversarial,
    labels,
    result,
    dataset=wc.dataset,
    split=wc.split,
    attack=wc.attack,
    epsilon=float(attack_meta["epsilon"]),
    method=wc.method,
    sigma=float(wc.sigma),
    ckpt=int(wc.ckpt),
    index=index.numpy(),
)
n = params.grid_images
grid = {"original": images[:n], "adversarial": adversarial[:n], "cleaned": result.images[:n]}
save_tensors(snakemake.output.grid, grid, {"dataset": wc.dataset, "attack": wc.attack, "method": wc.method})
write_dataframe(rows, snakemake.output.table)
