"""Train the encoder E of the encoder start (issue 22) after the GAN, G frozen: real training
images reconstructed through G, plus the latent cycle ||E(G(z)) - z||^2."""

import torch

from cowboy_core.io import save_models
from cowboy_core.models import DCGANEncoder
from cowboy_core.training import train_encoder
from cowboy_pipeline.runtime import LOG, finish_job, load_checked, load_split, start_job

device = start_job(snakemake)
params = snakemake.params.encoder
images, _, _, meta = load_split(snakemake.input.data, "train")
(generator,) = load_checked(snakemake.input.gan, meta, device, "generator")
encoder = DCGANEncoder(
    channels=meta["channels"],
    image_size=meta["image_size"],
    latent_dim=generator.latent_dim,
    width=params["width"],
)
train_encoder(
    encoder,
    generator,
    images,
    steps=params["steps"],
    batch_size=params["batch_size"],
    lr=params["lr"],
    cycle_weight=params["cycle_weight"],
    seed=snakemake.params.seed,
    device=device,
    progress=True,
)
held_out, _, _, _ = load_split(snakemake.input.data, "heldout")
with torch.no_grad():
    x = held_out[:512].to(device)
    error = float((generator(encoder(x)) - x).square().flatten(1).sum(1).mean())
LOG.info("held-out reconstruction error ||G(E(x)) - x||^2: %.3f", error)
save_models(
    snakemake.output[0],
    {"encoder": encoder},
    {"dataset": meta["dataset"], "gan": snakemake.input.gan, **params, "heldout_reconstruction_error": error},
)
finish_job()
