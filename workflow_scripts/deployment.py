"""The deployed DefendedClassifier, under each policy, on streams of half clean, half attacked
test images: one stream per attack.

Every stream's rows are cleaned once and shared by the three policies, and the clean half
(the same seeded rows in every stream) is cleaned once for all streams: an input's cleaning
depends on nothing but itself and the seed, so the answers are the same bits as calling each
policy on the stream. A sample of each stream is defended again from scratch, and the job
fails if one logit differs (cowboy_pipeline.deployment)."""

import pandas as pd

from cowboy_core import DefendedClassifier, Execution
from cowboy_core.defended import stream_attacked
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_pipeline.deployment import clean_rows, mixed, stream_rows
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
images, labels, _, meta = load_split(snakemake.input.data, "test")
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
deployed = DefendedClassifier.load(
    snakemake.input.card, classifier, seed=params.seed, execution=Execution.from_env(device=device)
)
attacked = stream_attacked(images.shape[0], seed=params.seed)
LOG.info("cleaning the %d clean rows that every stream shares", int((~attacked).sum()))
cleaned_originals = clean_rows(deployed.defense, images, ~attacked, params.seed)
rows, curves = [], []
for path in snakemake.input.attacks:
    tensors, attack_meta = load_tensors(path)
    if attack_meta["attack"] == "none":
        continue
    LOG.info("%s: cleaning the %d attacked rows", attack_meta["attack"], int(attacked.sum()))
    streams = mixed(
        deployed.defense, images, cleaned_originals, tensors["adversarial"], attacked, params.seed
    )
    keys = {"dataset": wc.dataset, "attack": attack_meta["attack"]}
    attack_rows, curve = stream_rows(deployed, classifier, streams, labels, seed=params.seed, keys=keys)
    rows += attack_rows
    curves.append(curve)
write_dataframe(pd.DataFrame(rows), snakemake.output.table)
write_dataframe(pd.concat(curves, ignore_index=True), snakemake.output.curve)
finish_job()
