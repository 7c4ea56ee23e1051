"""One setting of the discriminator study: clean one attack's images (the first n) and record,
per image and snapshot, the classifier's verdict, D(G(z)), the loss and the alone-vs-batch flip.
The setting comes from the wildcards, or from the validation choice (input "chosen")."""

import json
from pathlib import Path

from cowboy_core import Cowboy, Execution
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_core.settings import Settings
from cowboy_pipeline.discriminator_study import cleaning_curve
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
_, labels, index, meta = load_split(snakemake.input.data, wc.split)
x = load_tensors(snakemake.input.adversarial)[0]["adversarial"][: params.images]
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
if hasattr(snakemake.input, "chosen"):  # named inputs are attributes
    setting = json.loads(Path(snakemake.input.chosen).read_text())["chosen"][wc.method]["setting"]
    record = [setting["steps"]]
else:
    setting = {
        "d_weight": float(wc.d_weight),
        "optimizer": wc.optimizer,
        "lr": float(wc.lr),
        "restarts": int(wc.restarts),
    }
    setting["steps"] = int(wc.run_steps)
    record = [s for s in params.record_steps if s <= setting["steps"]]
LOG.info("%s: %s", wc.method, setting)
defense = Cowboy(
    generator,
    discriminator,
    Settings(method=wc.method, **setting),
    execution=Execution.from_env(device=device),
)
keys = {"dataset": wc.dataset, "split": wc.split, "attack": wc.attack, "gan": wc.gan, "method": wc.method}
rows = cleaning_curve(
    defense,
    classifier,
    x,
    labels[: params.images],
    seed=params.seed,
    record_at=record,
    flip_images=params.flip_images,
)
rows = rows.assign(
    **keys, **{k: setting[k] for k in ("d_weight", "optimizer", "lr", "restarts")}, run_steps=setting["steps"]
)
rows["index"] = index.numpy()[rows["image"].to_numpy()]
write_dataframe(rows, snakemake.output[0])
finish_job()
