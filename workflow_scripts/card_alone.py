"""The deployed card, cleaned alone: every one of the chooser's validation images (clean and
under the calibration attack) cleaned on its own and in the batch, in another chunking and
after a 1e-4 perturbation, with the card exactly as users load it. The chooser itself cleans
only card.alone_images images alone (each one costs a whole padded chunk); this checks the
winner's batch invariance on all of them."""

import pandas as pd
import torch

from cowboy_core import Cowboy, Execution
from cowboy_core.diagnostics import cleaned_predictions
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_pipeline.runtime import LOG, load_checked, load_split, start_job
from cowboy_pipeline.statistics import wilson_interval

device = start_job(snakemake)
params = snakemake.params
images, _, _, meta = load_split(snakemake.input.data, "val")
attacked = load_tensors(snakemake.input.attack)[0]["adversarial"]
n = params.card["images"]
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
defense = Cowboy.load(snakemake.input.card, execution=Execution.from_env(device=device))
both = torch.cat([images[:n], attacked[:n]]).to(device)
seen = cleaned_predictions(
    classifier.eval(),
    defense,
    both,
    seed=params.seed,
    alone_images=2 * n,
    perturbation=params.card["perturbation"],
)
rows = []
for name, other in (("alone", seen.alone), ("rechunked", seen.rechunked), ("perturbed", seen.perturbed)):
    for kind, part in (("clean", slice(0, n)), ("attack", slice(n, 2 * n))):
        flips = int((other[part] != seen.batch[part]).sum())
        low, high = wilson_interval(flips, n)
        rows.append({"comparison": name, "kind": kind, "images": n, "flips": flips, "flip_rate": flips / n,
                     "ci_low": low, "ci_high": high})  # fmt: skip
        LOG.info("%s, %s images: %d flips in %d", name, kind, flips, n)
table = pd.DataFrame(rows).assign(
    dataset=snakemake.wildcards.dataset, pixels_max_change_alone=seen.pixels_max_change_alone
)
write_dataframe(table, snakemake.output[0])
