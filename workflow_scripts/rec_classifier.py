"""Defense-GAN's "Rec" classifier (issue 22): the classifier fine-tuned on G's
reconstructions of training images, cleaned by the chosen card, so that it sees at training
time what clean-all shows it at test time."""

import torch

from cowboy_core import Cowboy, Execution
from cowboy_core.data import subset_indices
from cowboy_core.io import load_models, save_models
from cowboy_core.training import predict, train_classifier
from cowboy_pipeline.runtime import LOG, finish_job, load_split, start_job

device = start_job(snakemake)
params, architecture = snakemake.params.rec, snakemake.params.classifier
images, labels, _, meta = load_split(snakemake.input.data, "train")
chosen = subset_indices(images.shape[0], min(params["images"], images.shape[0]), snakemake.params.seed)
defense = Cowboy.load(snakemake.input.card, execution=Execution.from_env(device=device, progress=True))
cleaned = defense.clean(images[chosen].to(device), seed=snakemake.params.seed).cpu()
models, saved = load_models(snakemake.input.classifier, device=device)
classifier = models["classifier"]
train_classifier(
    classifier,
    cleaned,
    labels[chosen],
    steps=params["steps"],
    batch_size=architecture["batch_size"],
    lr=params["lr"],
    seed=snakemake.params.seed,
    device=device,
    progress=True,
)
val_x, val_y, _, _ = load_split(snakemake.input.data, "heldout")
val_x = val_x[:1000]
with torch.no_grad():
    val_clean = defense.clean(val_x.to(device), seed=snakemake.params.seed)
accuracy = (predict(classifier, val_clean, device=device).cpu() == val_y[:1000]).float().mean().item()
LOG.info("held-out accuracy on cleaned images: %.4f", accuracy)
save_models(
    snakemake.output[0],
    {"classifier": classifier},
    {**saved, "rec": {**params, "card": snakemake.input.card}, "val_accuracy_cleaned": accuracy},
)
finish_job()
