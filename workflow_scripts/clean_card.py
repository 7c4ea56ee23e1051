"""Tables 1-2 at the deployed card's settings: clean every attack's test images with the
card (cowboy or Defense-GAN on the card's G and D), in one process, and write the rows with
method "{method}_card" beside the paper's protocol."""

import pandas as pd

from cowboy_core import Cowboy, Execution
from cowboy_core.io import write_dataframe
from cowboy_pipeline.cleaning_rows import clean_attack
from cowboy_pipeline.runtime import LOG, finish_job, gan_step, load_checked, load_split, start_job

wc, params = snakemake.wildcards, snakemake.params
device = start_job(snakemake)
images, labels, index, meta = load_split(snakemake.input.data, "test")
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
execution = Execution.from_env(device=device, progress=True)
defense = Cowboy.load(snakemake.input.card, execution=execution, method=wc.method)
LOG.info("cleaning %d attacks with the card's %s", len(params.attacks), defense.settings)
ckpt = gan_step(snakemake.input.gan)  # the step of the card's G and D
frames = []
for attack, attack_file in zip(params.attacks, snakemake.input.adversarial, strict=True):
    rows, _, _ = clean_attack(
        defense,
        classifier,
        (images, labels, index),
        attack_file,
        seed=params.seed,
        record_steps=[defense.settings.steps],
        dataset=wc.dataset,
        split="test",
        attack=attack,
        method=f"{wc.method}_card",
        sigma=float(defense.settings.sigma),
        ckpt=ckpt,
    )
    frames.append(rows)
write_dataframe(pd.concat(frames, ignore_index=True), snakemake.output[0])
finish_job()
