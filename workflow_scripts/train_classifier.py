"""Train the target classifier on the training split (validation images held out)."""

from cowboy_core.io import save_models
from cowboy_core.models import Classifier
from cowboy_core.training import predict, train_classifier
from cowboy_pipeline.runtime import LOG, load_split, start_job

device = start_job(snakemake)
params = snakemake.params.classifier
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
)
val_x, val_y, _, _ = load_split(snakemake.input[0], "heldout")
accuracy = (predict(model, val_x, device=device).cpu() == val_y).float().mean().item()
LOG.info("held-out validation accuracy %.4f", accuracy)
save_models(
    snakemake.output[0],
    {"classifier": model},
    {"dataset": meta["dataset"], "steps": params["steps"], "val_accuracy": accuracy},
)
