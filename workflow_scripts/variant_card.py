"""A variant's defence card (issue 22): G, D, for an encoder start E, the threshold the main
card calibrates, and the setting the chooser picked from the variant's grid."""

from cowboy_core import Cowboy, Execution
from cowboy_core.io import load_models
from cowboy_core.settings import Settings
from cowboy_pipeline.cards import calibrate, gan_and_choice, save_chosen_card
from cowboy_pipeline.runtime import finish_job, start_job

device = start_job(snakemake)
generator, discriminator, chosen = gan_and_choice(snakemake.input, device)
settings = Settings(**snakemake.params.settings[str(chosen["setting"])])
encoder = (
    load_models(snakemake.input.encoder[0], device=device)[0]["encoder"] if snakemake.input.encoder else None
)
sources = {
    "gan": snakemake.input.gan,
    "val_scores": snakemake.input.val_scores,
    "choice": snakemake.input.choice,
    # The classifier variant_grid measured the choice with (cowboy_pipeline.cards.classifier_record).
    "classifier": snakemake.params.classifier,
}
save_chosen_card(
    Cowboy(generator, discriminator, settings, execution=Execution(device=device), encoder=encoder),
    snakemake.output[0],
    chosen=chosen,
    calibration=calibrate(snakemake.input.val_scores, snakemake.params.detection),
    sources=sources | ({"encoder": snakemake.input.encoder[0]} if snakemake.input.encoder else {}),
    detection=snakemake.params.detection,
)
finish_job()
