"""The deployed card, exactly as users load it, on the chooser's validation images (clean and
under the calibration attack): cleaned in the batch, in another chunking and after a 1e-4
perturbation (every image), and on its own (the first card.deployed_alone_images of each kind,
null: every image; each costs a whole padded chunk). The chooser itself cleans only
card.alone_images alone; this checks the winner's batch invariance on many more."""

from cowboy_core import Cowboy, Execution
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_pipeline.choice import deployed_flips
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
params = snakemake.params
images, _, _, meta = load_split(snakemake.input.data, "val")
attacked = load_tensors(snakemake.input.attack)[0]["adversarial"]
n = params.card["images"]
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
defense = Cowboy.load(snakemake.input.card, execution=Execution.from_env(device=device))
table, max_change = deployed_flips(
    classifier.eval(),
    defense,
    images[:n].to(device),
    attacked[:n].to(device),
    alone=params.card.get("alone") or n,
    seed=params.seed,
    perturbation=params.card["perturbation"],
)
for row in table.itertuples():
    LOG.info("%s, %s images: %d flips in %d", row.comparison, row.kind, row.flips, row.images)
table = table.assign(dataset=snakemake.wildcards.dataset, pixels_max_change_alone=max_change)
write_dataframe(table, snakemake.output[0])
finish_job()
