"""The evaluated images: a validation subset (held out of training) and the test subset."""

from cowboy_core.data import IMAGE_SHAPES, DatasetName, heldout_split, load_images, subset_indices
from cowboy_core.io import save_tensors
from cowboy_pipeline.runtime import finish_job, start_job

start_job(snakemake)
params, split = snakemake.params, snakemake.params.split
name = DatasetName.parse(snakemake.wildcards.dataset)
train_x, train_y = load_images(name, train=True, root=params.data_root)
test_x, test_y = load_images(name, train=False, root=params.data_root)
_, heldout_idx = heldout_split(name, train_x.shape[0], split["validation_size"], params.seed)
val_idx = heldout_idx[: split["validation_attack_size"]]
if split["test_size"] is not None and split["test_size"] > test_x.shape[0]:
    raise ValueError(
        f"test_size {split['test_size']} exceeds the {test_x.shape[0]} test images of {name.value}"
    )
test_idx = subset_indices(test_x.shape[0], split["test_size"], params.seed)
shape = IMAGE_SHAPES[name]
save_tensors(
    snakemake.output[0],
    {
        "val_images": train_x[val_idx],
        "val_labels": train_y[val_idx],
        "val_index": val_idx,
        "test_images": test_x[test_idx],
        "test_labels": test_y[test_idx],
        "test_index": test_idx,
    },
    {"dataset": name.value, "channels": shape.channels, "image_size": shape.size},
)
finish_job()
