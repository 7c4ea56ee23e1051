"""Clean one attack's images with cowboy or Defense-GAN; classify; write per-sample rows."""

import pandas as pd

from cowboy_core import Cowboy
from cowboy_core.detection import discriminator_logits, scores_from_logits
from cowboy_core.io import load_models, load_tensors, save_tensors, write_dataframe
from cowboy_core.runtime import load_split, stable_offset, start_job
from cowboy_core.training import predict

wc = snakemake.wildcards
device = start_job(snakemake, seed_offset=stable_offset(wc.dataset, wc.split, wc.attack))
p = snakemake.params.cleaning
images, labels, index, meta = load_split(snakemake.input.data, wc.split)
attack_tensors, attack_meta = load_tensors(snakemake.input.adversarial)
adversarial = attack_tensors["adversarial"]
shape = {"channels": meta["channels"], "image_size": meta["image_size"]}
classifier = load_models(
    snakemake.input.classifier,
    device=device,
    expect={"classifier": shape},
)[0]["classifier"]
gan = load_models(snakemake.input.gan, device=device, expect={"generator": shape})[0]
defense = Cowboy.from_config(
    gan["generator"],
    gan["discriminator"],
    snakemake.config["cleaning"],
    sigma=float(wc.sigma),
    steps=int(wc.steps),
    method=wc.method,
    device=device,
    progress=True,
)
print(
    f"cleaning {wc.dataset}/{wc.split}/{wc.attack} with {wc.method} sigma={wc.sigma} "
    f"steps={wc.steps} ckpt={wc.ckpt}",
    file=__import__("sys").stderr,
)
# The same z0 for every method and attack: Table 2 compares the methods on paired starts.
result = defense.clean_detailed(
    adversarial,
    seed=snakemake.params.seed,
    record_at=p["record_steps"],
)
base = {
    "dataset": wc.dataset,
    "split": wc.split,
    "attack": wc.attack,
    "epsilon": float(attack_meta["epsilon"]),
    "method": wc.method,
    "sigma": float(wc.sigma),
    "ckpt": int(wc.ckpt),
    "index": index.numpy(),
    "label": labels.numpy(),
    "pred_original": predict(classifier, images, device=device).cpu().numpy(),
    "pred_adversarial": predict(classifier, adversarial, device=device).cpu().numpy(),
    "d_original": defense.score(images).cpu().numpy(),
    "d_adversarial": defense.score(adversarial).cpu().numpy(),
}
frames = []
for steps, cleaned in result.snapshots.items():
    d_clean = scores_from_logits(discriminator_logits(defense.discriminator, cleaned, device=device))
    frames.append(
        pd.DataFrame(
            {
                **base,
                "steps": steps,
                "pred_cleaned": predict(classifier, cleaned, device=device).cpu().numpy(),
                "d_cleaned": d_clean.cpu().numpy(),
                "loss": result.snapshot_loss[steps].cpu().numpy(),
                "steps_run": result.steps_run.clamp(max=steps).cpu().numpy(),
            }
        )
    )
n = snakemake.params.grid_images
save_tensors(
    snakemake.output.grid,
    {
        "original": images[:n],
        "adversarial": adversarial[:n],
        "cleaned": result.images[:n],
    },
    {"dataset": wc.dataset, "attack": wc.attack, "method": wc.method},
)
write_dataframe(pd.concat(frames, ignore_index=True), snakemake.output.table)
