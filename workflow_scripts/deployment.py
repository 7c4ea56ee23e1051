"""The deployed DefendedClassifier, under each policy, on streams of half clean, half attacked
test images: one stream per attack.

Every stream's rows are cleaned once and shared by the three policies, and the clean half
(the same seeded rows in every stream) is cleaned once for all streams: an input's cleaning
depends on nothing but itself and the seed, so the answers are the same bits as calling each
policy on the stream. A sample of each stream is defended again from scratch, and the job
fails if one logit differs."""

import numpy as np
import pandas as pd
import torch

from cowboy_core import Cowboy, DefendedClassifier, Execution, Policy
from cowboy_core.defended import mixed_stream, stream_attacked
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_core.training import predict
from cowboy_pipeline.robustness import operating_curve
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job
from cowboy_pipeline.statistics import stream_metrics

CHECKED_ROWS = 48  # rows of each stream defended again from scratch, under every policy


def clean_rows(defense: Cowboy, x: torch.Tensor, rows: torch.Tensor, seed: int) -> torch.Tensor:
    """``x`` with ``rows`` cleaned (the other rows are never read)."""
    out = x.clone()
    out[rows] = defense.clean(x[rows], seed=seed).to(out.dtype).cpu()
    return out


def check_sample(model: DefendedClassifier, stream: torch.Tensor, logits: torch.Tensor) -> None:
    """Fail unless the sample's logits, defended from scratch, are the shared ones' bits."""
    sample = torch.from_numpy(np.linspace(0, stream.shape[0] - 1, CHECKED_ROWS).round().astype(np.int64))
    fresh = model.defend(stream[sample])[0].cpu()
    shared = logits[sample].cpu()
    if not (
        torch.equal(fresh.isnan(), shared.isnan()) and torch.equal(fresh.nan_to_num(), shared.nan_to_num())
    ):
        raise RuntimeError(f"policy {model.policy.value}: the shared cleaning changed an answer")


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
    stream, is_adversarial = mixed_stream(images, tensors["adversarial"], seed=params.seed)
    LOG.info("%s: cleaning the %d attacked rows", attack_meta["attack"], int(attacked.sum()))
    cleaned_adversarial = clean_rows(deployed.defense, tensors["adversarial"], attacked, params.seed)
    cleaned, _ = mixed_stream(cleaned_originals, cleaned_adversarial, seed=params.seed)  # same rows
    pred_raw = predict(classifier, stream, device=device).cpu()
    undefended = (pred_raw == labels).float().mean().item()
    for policy in Policy:
        model = DefendedClassifier(classifier, deployed.defense, policy, seed=params.seed)
        logits, report = model.defend(stream, cleaned=cleaned)
        check_sample(model, stream, logits)
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
finish_job()
