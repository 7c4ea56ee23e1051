"""The defence card users load: G, D, the calibrated threshold and the cleaning settings the
validation chooser picked (results/defense/{dataset}.choice.csv), with where each came from."""

import sys

from cowboy_core import Cowboy, Execution
from cowboy_core.settings import Settings
from cowboy_pipeline.cards import NoStableSetting, calibrate, chosen_row, save_chosen_card
from cowboy_pipeline.runtime import load_checked, load_split, start_job

device = start_job(snakemake)
_, _, _, meta = load_split(snakemake.input.data, "val")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
try:
    chosen = chosen_row(snakemake.input.choice)
except NoStableSetting as err:
    sys.stderr.write(f"cowboy: {err}\n")
    sys.exit(2)
keys = ("method", "optimizer", "lr", "steps", "sigma", "restarts")
settings = {key: chosen[key].item() if hasattr(chosen[key], "item") else chosen[key] for key in keys}
settings |= snakemake.params.fixed
save_chosen_card(
    Cowboy(generator, discriminator, Settings(**settings), execution=Execution(device=device)),
    snakemake.output[0],
    chosen=chosen,
    calibration=calibrate(snakemake.input.val_scores, snakemake.params.detection),
    sources={
        "gan": snakemake.input.gan,
        "val_scores": snakemake.input.val_scores,
        "choice": snakemake.input.choice,
    },
    detection=snakemake.params.detection,
)
