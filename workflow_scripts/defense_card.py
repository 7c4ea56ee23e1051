"""The defence card users load: G, D, the calibrated threshold and the cleaning settings the
validation chooser picked (results/defense/{dataset}.choice.csv), with where each came from."""

from cowboy_core import Cowboy, Execution
from cowboy_core.settings import Settings
from cowboy_pipeline.cards import calibrate, gan_and_choice, save_chosen_card
from cowboy_pipeline.runtime import finish_job, start_job

device = start_job(snakemake)
generator, discriminator, chosen = gan_and_choice(snakemake.input, device)
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
        # The classifier card_grid measured the choice with (cowboy_pipeline.cards.classifier_record).
        "classifier": f"results/models/{snakemake.wildcards.dataset}/classifier.safetensors",
    },
    detection=snakemake.params.detection,
)
finish_job()
