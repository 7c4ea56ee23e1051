"""D-scores and classifier predictions for real and every attack's images, at one GAN checkpoint."""

import pandas as pd

from cowboy_core.detection import discriminator_logits, scores_from_logits
from cowboy_core.io import load_tensors, write_dataframe
from cowboy_core.training import predict
from cowboy_pipeline.runtime import finish_job, gan_step, load_checked, load_split, start_job

device = start_job(snakemake)
wc = snakemake.wildcards
images, labels, index, meta = load_split(snakemake.input.data, wc.split)
(classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
(discriminator,) = load_checked(snakemake.input.gan, meta, device, "discriminator")
ckpt = gan_step(snakemake.input.gan)  # the step, also for the GAN validation chose
frames = []
sources = [("real", images)]
for path in snakemake.input.attacks:
    tensors, meta = load_tensors(path)  # read each attack file once
    sources.append((meta["attack"], tensors["adversarial"]))
for source, x in sources:
    logits = discriminator_logits(discriminator, x, device=device)
    frames.append(
        pd.DataFrame(
            {
                "dataset": wc.dataset,
                "split": wc.split,
                "ckpt": ckpt,
                "source": source,
                "index": index.numpy(),
                "label": labels.numpy(),
                "pred": predict(classifier, x, device=device).cpu().numpy(),
                "d_logit": logits.cpu().numpy(),
                "d_score": scores_from_logits(logits).cpu().numpy(),
            }
        )
    )
write_dataframe(pd.concat(frames, ignore_index=True), snakemake.output[0])
finish_job()
