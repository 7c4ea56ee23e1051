"""Undefended validation accuracy per attack and epsilon (to match attack strength honestly)."""

import pandas as pd

from cowboy_core.attacks import AttackSpec, run_attack
from cowboy_core.choices import AttackName
from cowboy_core.io import write_dataframe
from cowboy_core.training import predict
from cowboy_pipeline.runtime import finish_job, load_checked, load_split, start_job
from cowboy_pipeline.statistics import wilson_interval

device = start_job(snakemake)
params = snakemake.params
images, labels, _, meta = load_split(snakemake.input.data, "val")
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
rows = []
for name, spec in params.attacks.items():  # unlabelled attacks only: a label is another budget
    attack = AttackName.parse(name)
    grid = params.sweep["vam_epsilons"] if attack is AttackName.VAM else params.sweep["epsilons"]
    for epsilon in grid:
        adversarial = run_attack(
            classifier,
            images,
            labels,
            AttackSpec(attack, epsilon, spec["steps"], spec["rel_stepsize"]),
            device=device,
        )
        correct = int((predict(classifier, adversarial, device=device).cpu() == labels).sum())
        low, high = wilson_interval(correct, len(labels))
        rows.append(
            {
                "dataset": snakemake.wildcards.dataset,
                "attack": name,
                "epsilon": epsilon,
                "norm": attack.norm,
                "val_accuracy": correct / len(labels),
                "ci_low": low,
                "ci_high": high,
                "n": len(labels),
            }
        )
write_dataframe(pd.DataFrame(rows), snakemake.output[0])
finish_job()
