"""Training images minus a seeded held-out validation split (uint8 safetensors)."""

from cowboy_core.data import IMAGE_SHAPES, DatasetName, heldout_split, load_images
from cowboy_core.io import save_tensors
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
params = snakemake.params
name = DatasetName.parse(snakemake.wildcards.dataset)
images, labels = load_images(name, train=True, root=params.data_root)
train_idx, heldout_idx = heldout_split(name, images.shape[0], params.split["validation_size"], params.seed)
shape = IMAGE_SHAPES[name]
save_tensors(
    snakemake.output[0],
    {
        "train_images": images[train_idx],
        "train_labels": labels[train_idx],
        "train_index": train_idx,
        "heldout_images": images[heldout_idx],
        "heldout_labels": labels[heldout_idx],
        "heldout_index": heldout_idx,
    },
    {"dataset": name.value, "channels": shape.channels, "image_size": shape.size},
)
finish_job()
