"""Clean the first n test images of one attack at the paper's protocol for the paper's 5,000
steps (cowboy or Defense-GAN), recording the accuracy-against-steps curve on the way."""

from cowboy_core import Cowboy, Execution
from cowboy_core.io import write_dataframe
from cowboy_core.settings import Settings
from cowboy_pipeline.cleaning_rows import clean_attack
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, stable_offset, start_job

wc, params = snakemake.wildcards, snakemake.params
# The same seed as rule clean's job for this attack: the same z0, so the table's snapshot is paired.
device = start_job(snakemake, seed_offset=stable_offset(wc.dataset, "test", wc.attack))
images, labels, index, meta = load_split(snakemake.input.data, "test")
n = int(wc.n)
if n > images.shape[0]:
    raise ValueError(f"paper_steps.images: {n} exceeds the {images.shape[0]} test images of {wc.dataset}")
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
settings = Settings(steps=int(wc.run_steps), method=wc.method, **params.cleaning)
defense = Cowboy(
    generator, discriminator, settings, execution=Execution.from_env(device=device, progress=True)
)
LOG.info("cleaning the first %d images of %s with %s", n, wc.attack, defense.settings)
rows, _, _ = clean_attack(
    defense,
    classifier,
    (images[:n], labels[:n], index[:n]),
    snakemake.input.adversarial,
    seed=params.seed,
    record_steps=params.record_steps,
    first=n,
    dataset=wc.dataset,
    attack=wc.attack,
    method=wc.method,
)
write_dataframe(rows, snakemake.output[0])
finish_job()
