"""PGD adversarial training (Madry et al.) of the project's classifier, one setting of
adversarial_training.grid: the same architecture, steps and optimizer as train_classifier,
every minibatch replaced by its PGD version at the setting's epsilon and steps."""

from cowboy_core.io import save_models
from cowboy_core.models import Classifier
from cowboy_core.training import pgd_adversary, predict, train_classifier
from cowboy_pipeline.runtime import LOG, load_split, start_job

device = start_job(snakemake)
params, setting = snakemake.params.classifier, snakemake.params.setting
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
    adversary=pgd_adversary(setting["epsilon"], setting["steps"]),
)
val_x, val_y, _, _ = load_split(snakemake.input[0], "heldout")
accuracy = (predict(model, val_x, device=device).cpu() == val_y).float().mean().item()
LOG.info("setting %s: held-out clean accuracy %.4f", snakemake.wildcards.setting, accuracy)
save_models(
    snakemake.output[0],
    {"classifier": model},
    {
        "dataset": meta["dataset"],
        "steps": params["steps"],
        "adversarial_training": {"setting": snakemake.wildcards.setting, **setting},
        "val_accuracy": accuracy,
    },
)
