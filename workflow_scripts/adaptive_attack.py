"""Standard and adaptive (BPDA + EOT, detector-aware) attacks on one defence at one epsilon."""

import sys

import pandas as pd

from cowboy_core import Cowboy
from cowboy_core.adaptive import AdaptiveSpec, bpda_eot_pgd, defended_predictions
from cowboy_core.evaluation import wilson_interval
from cowboy_core.io import load_models, write_dataframe
from cowboy_core.runtime import load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
cfg = params.adaptive  # params.cleaning stays in the rule as a rerun trigger
images, labels, _, meta = load_split(snakemake.input.data, "test")
images, labels = images[: cfg["size"]].to(device), labels[: cfg["size"]].to(device)
classifier = load_models(snakemake.input.classifier, device=device)[0]["classifier"].eval()
gan = load_models(snakemake.input.gan, device=device)[0]
threshold = float(pd.read_csv(snakemake.input.detection).query("dataset == @wc.dataset")["threshold"].iloc[0])
defense = None
if wc.defense != "none":
    defense = Cowboy.from_config(
        gan["generator"],
        gan["discriminator"],
        snakemake.config["cleaning"],
        sigma=params.sigma,
        steps=params.steps,
        method=wc.defense,
        device=device,
        threshold=threshold,
    )
detector = Cowboy(gan["generator"], gan["discriminator"], steps=1, device=device, threshold=threshold)
epsilon = float(wc.epsilon)
kinds = {"standard": (None, AdaptiveSpec(epsilon, steps=cfg["steps"]))}
if defense is not None:
    kinds["adaptive"] = (defense, AdaptiveSpec(epsilon, steps=cfg["steps"], eot=cfg["eot"]))
    kinds["adaptive_detector_aware"] = (
        defense,
        AdaptiveSpec(epsilon, steps=cfg["steps"], eot=cfg["eot"], detector_weight=cfg["detector_weight"]),
    )
if abs(epsilon - cfg.get("check_epsilon", -1)) < 1e-12:
    # Carlini et al.'s checks: a single step must not beat the iterative attack, and doubling
    # the iterations must not raise robust accuracy (convergence).
    target = defense if defense is not None else None
    kinds["check_single_step"] = (
        target,
        AdaptiveSpec(epsilon, steps=1, rel_stepsize=1.0, eot=cfg["eot"], random_start=False),
    )
    kinds["check_double_steps"] = (target, AdaptiveSpec(epsilon, steps=2 * cfg["steps"], eot=cfg["eot"]))
rows = []
for kind, (attacked, spec) in kinds.items():
    print(f"{wc.dataset} {wc.defense} eps={epsilon} {kind}: {spec}", file=sys.stderr, flush=True)
    adversarial = bpda_eot_pgd(classifier, attacked, images, labels, spec, seed=params.seed)
    predictions = defended_predictions(classifier, defense, adversarial, seed=params.seed + 1)
    correct = int((predictions == labels).sum())
    low, high = wilson_interval(correct, len(labels))
    flagged = detector.detect(adversarial)
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
            "detection_rate": float(flagged.float().mean()),
            "mean_d_score": float(detector.score(adversarial).mean()),
            "n": len(labels),
        }
    )
write_dataframe(pd.DataFrame(rows), snakemake.output[0])
