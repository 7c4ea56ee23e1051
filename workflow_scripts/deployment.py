"""The deployed DefendedClassifier, under each policy, on streams of half clean, half attacked
test images: one stream per attack."""

import numpy as np
import pandas as pd

from cowboy_core import DefendedClassifier, Execution, Policy
from cowboy_core.defended import mixed_stream
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_core.training import predict
from cowboy_pipeline.robustness import operating_curve
from cowboy_pipeline.runtime import load_checked, load_split, start_job
from cowboy_pipeline.statistics import stream_metrics

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
images, labels, _, meta = load_split(snakemake.input.data, "test")
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
deployed = DefendedClassifier.load(
    snakemake.input.card, classifier, seed=params.seed, execution=Execution.from_env(device=device)
)
rows, curves = [], []
for path in snakemake.input.attacks:
    tensors, attack_meta = load_tensors(path)
    if attack_meta["attack"] == "none":
        continue
    stream, is_adversarial = mixed_stream(images, tensors["adversarial"], seed=params.seed)
    pred_raw = predict(classifier, stream, device=device).cpu()
    undefended = (pred_raw == labels).float().mean().item()
    for policy in Policy:
        model = DefendedClassifier(classifier, deployed.defense, policy, seed=params.seed)
        logits, report = model.defend(stream)
        metrics = stream_metrics(
            labels.numpy(),
            is_adversarial.numpy(),
            logits.argmax(dim=1).cpu().numpy(),
            report.flagged.cpu().numpy(),
            report.rejected.cpu().numpy(),
        )
        keys = {"dataset": wc.dataset, "attack": attack_meta["attack"], "policy": policy.value}
        extra = {"threshold": deployed.defense.threshold, "undefended_stream_accuracy": undefended}
        rows.append(keys | metrics | extra)
        if policy is Policy.CLEAN_ALL:  # every cleaned prediction, for every threshold at once
            scores = report.scores.cpu().numpy()
            grid = sorted({*np.quantile(scores, np.linspace(0, 1, 41)), deployed.defense.threshold, np.inf})
            args = (
                labels.numpy(),
                is_adversarial.numpy(),
                scores,
                pred_raw.numpy(),
                logits.argmax(1).cpu().numpy(),
            )
            curves.append(
                operating_curve(*args, np.array(grid)).assign(dataset=wc.dataset, attack=keys["attack"])
            )
write_dataframe(pd.DataFrame(rows), snakemake.output.table)
write_dataframe(pd.concat(curves, ignore_index=True), snakemake.output.curve)
