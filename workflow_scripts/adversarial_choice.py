"""Choose the adversarially trained classifier for one robustness epsilon on validation: for
each trained setting, clean accuracy and accuracy under PGD at that epsilon (random start,
the setting-free validation budget) on the first validation images; the best mean of the two
wins (the card's objective). Writes the whole grid and the chosen model, its provenance in
the file's metadata."""

import pandas as pd
import torch

from cowboy_core.io import load_models, save_models, write_dataframe
from cowboy_core.training import pgd_adversary, predict
from cowboy_pipeline.choice import choose
from cowboy_pipeline.runtime import LOG, finish_job, load_split, start_job
from cowboy_pipeline.statistics import wilson_interval

device = start_job(snakemake)
params = snakemake.params
images, labels, _, meta = load_split(snakemake.input.data, "val")
images, labels = images[: params.images].to(device), labels[: params.images].to(device)
shape = {"classifier": {"channels": meta["channels"], "image_size": meta["image_size"]}}


def accuracy(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float, float]:
    correct = (predict(model, x, device=device) == labels).cpu()
    return (float(correct.float().mean()), *wilson_interval(int(correct.sum()), len(correct)))


rows = []
for name, path in zip(params.grid, snakemake.input.grid, strict=True):
    model = load_models(path, device=device, expect=shape)[0]["classifier"].eval()
    clean, clean_low, clean_high = accuracy(model, images)
    attack = pgd_adversary(params.epsilon, params.steps)
    attacked = attack(model, images, labels, torch.Generator().manual_seed(params.seed))
    robust, low, high = accuracy(model, attacked)
    LOG.info("%s at epsilon %g: clean %.4f, PGD-%d %.4f", name, params.epsilon, clean, params.steps, robust)
    rows.append(
        {"setting": name, **params.grid[name], "eval_epsilon": params.epsilon, "n": len(labels)}
        | {"accuracy_clean": clean, "clean_ci_low": clean_low, "clean_ci_high": clean_high}
        | {"accuracy_attack": robust, "attack_ci_low": low, "attack_ci_high": high}
        | {"objective": (clean + robust) / 2, "path": path}
    )
grid = choose(pd.DataFrame(rows), objective="objective", constraints={}, tie_break=["steps", "setting"])
grid = grid.assign(objective_name="mean of clean and PGD accuracy", validation_steps=params.steps)
write_dataframe(grid.drop(columns="path"), snakemake.output.table)
row = grid[grid["chosen"]].iloc[0]
models, saved = load_models(row["path"], device="cpu")
provenance = {
    "chosen_for_epsilon": params.epsilon,
    "objective": row["objective"],
    "choice": snakemake.output.table,
}
save_models(snakemake.output.model, models, {**saved, "choice": provenance})
LOG.info(
    "epsilon %g: %s (objective %.4f) -> %s",
    params.epsilon,
    row["setting"],
    row["objective"],
    snakemake.output.model,
)
finish_job()
