"""Train the target classifier on the training split (validation images held out); with a
``setting`` param (rule train_adversarial), PGD adversarial training (Madry et al.) at its
epsilon and steps: the same architecture, steps and optimizer, each minibatch attacked."""

from cowboy_core.io import save_models
from cowboy_core.models import Classifier
from cowboy_core.training import pgd_adversary, predict, train_classifier
from cowboy_pipeline.runtime import LOG, finish_job, load_split, start_job

device = start_job(snakemake)
params = snakemake.params.classifier
setting = getattr(snakemake.params, "setting", None)
images, labels, _, meta = load_split(snakemake.input[0], "train")
model = Classifier(channels=meta["channels"], image_size=meta["image_size"], width=params["width"])
train_classifier(
    model,
    images,
    labels,
    steps=params["steps"],
    batch_size=params["batch_size"],
    lr=params["lr"],
    seed=snakemake.params.seed,
    device=device,
    progress=True,
    adversary=pgd_adversary(setting["epsilon"], setting["steps"]) if setting else None,
)
val_x, val_y, _, _ = load_split(snakemake.input[0], "heldout")
accuracy = (predict(model, val_x, device=device).cpu() == val_y).float().mean().item()
LOG.info("held-out validation accuracy %.4f", accuracy)
adversarial = {"adversarial_training": {"setting": snakemake.wildcards.setting, **setting}} if setting else {}
save_models(
    snakemake.output[0],
    {"classifier": model},
    {"dataset": meta["dataset"], "steps": params["steps"], **adversarial, "val_accuracy": accuracy},
)
finish_job()
