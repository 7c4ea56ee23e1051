"""Train one segment of the GAN, from the previous saved step (or scratch) to this one."""

from cowboy_core.io import load_state, save_models, save_state
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator
from cowboy_core.training import GANTrainer
from cowboy_pipeline.runtime import finish_job, load_split, start_job

device = start_job(snakemake)
params, target = snakemake.params.gan, int(snakemake.wildcards.step)
images, _, _, meta = load_split(snakemake.input.data, "train")
shape = {"channels": meta["channels"], "image_size": meta["image_size"]}
generator = DCGANGenerator(**shape, latent_dim=params["latent_dim"], width=params["width"])
discriminator = DCGANDiscriminator(**shape, width=params["width"])
trainer = GANTrainer(
    generator,
    discriminator,
    lr=params["lr"],
    beta1=params["beta1"],
    batch_size=params["batch_size"],
    seed=snakemake.params.seed,
    device=device,
)
if snakemake.input.previous:
    trainer.load_state_dict(load_state(snakemake.input.previous))
trainer.train_until(images, target, progress=True)
save_state(snakemake.output.state, trainer.state_dict())
save_models(
    snakemake.output.weights,
    {"generator": generator, "discriminator": discriminator},
    {"dataset": meta["dataset"], "step": target},
)
finish_job()
