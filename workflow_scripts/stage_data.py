"""Stage a dataset on the submit host (a local rule): the only job that may download it."""

import hashlib
import json

from cowboy_core.data import DatasetName, load_images
from cowboy_core.io import write_text
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
params = snakemake.params
name = DatasetName.parse(snakemake.wildcards.dataset)
record = {"dataset": name.value, "data_root": params.data_root}
for split, train in (("train", True), ("test", False)):
    images, labels = load_images(name, train=train, root=params.data_root, download=params.download)
    digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
    record[split] = {"images": int(images.shape[0]), "sha256": digest}
write_text(snakemake.output[0], json.dumps(record, indent=2) + "\n")
finish_job()
