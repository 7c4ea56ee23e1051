"""Standard and adaptive (BPDA + EOT, detector-aware) attacks on one defence at one epsilon."""

import pandas as pd

from cowboy_core import Cowboy, Execution
from cowboy_core.adaptive import attack_kinds, bpda_eot_pgd, defended_predictions
from cowboy_core.evaluation import wilson_interval
from cowboy_core.io import write_dataframe
from cowboy_core.workflow.runtime import LOG, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
cfg = params.adaptive
images, labels, _, meta = load_split(snakemake.input.data, "test")
images, labels = images[: cfg["size"]].to(device), labels[: cfg["size"]].to(device)
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
execution = Execution.from_env(device=device)
detector = Cowboy.load(snakemake.input.card, execution=execution)
defense = None
if wc.defense != "none":  # the deployed settings, with or without the D term
    defense = Cowboy.load(snakemake.input.card, execution=execution, method=wc.defense)
epsilon = float(wc.epsilon)
rows = []
for kind, spec in attack_kinds(epsilon, cfg, defended=defense is not None).items():
    LOG.info("%s %s eps=%s %s: %s", wc.dataset, wc.defense, epsilon, kind, spec)
    target = None if kind == "standard" else defense  # "standard" transfers PGD on the classifier
    adversarial = bpda_eot_pgd(classifier, target, images, labels, spec, seed=params.seed)
    predictions = defended_predictions(classifier, defense, adversarial, seed=params.seed + 1)
    correct = int((predictions == labels).sum())
    low, high = wilson_interval(correct, len(labels))
    rows.append(
        {
            "dataset": wc.dataset,
            "defense": wc.defense,
            "epsilon": epsilon,
            "attack": kind,
            "steps": spec.steps,
            "eot": spec.eot,
            "detector_weight": spec.detector_weight,
            "robust_accuracy": correct / len(labels),
            "ci_low": low,
            "ci_high": high,
            "detection_rate": float(detector.detect(adversarial).float().mean()),
            "mean_d_score": float(detector.score(adversarial).mean()),
            "n": len(labels),
        }
    )
write_dataframe(pd.DataFrame(rows), snakemake.output[0])
