"""Load a dataset, hold out a validation split, pick the test subset; save as uint8 safetensors."""

from cowboy_core.config import TEST_SET_SIZES
from cowboy_core.data import IMAGE_SHAPES, DatasetName, load_images, split_indices, subset_indices
from cowboy_core.io import save_tensors
from cowboy_core.runtime import start_job

start_job(snakemake)
params = snakemake.params
name = DatasetName.parse(snakemake.wildcards.dataset)
ds = params.dataset

train_x, train_y = load_images(name, train=True, root=params.data_root, download=params.download)
test_x, test_y = load_images(name, train=False, root=params.data_root, download=params.download)
train_idx, val_idx = split_indices(train_x.shape[0], ds["validation_size"], params.seed)
val_idx = val_idx[: ds["validation_attack_size"]]
test_size = ds["test_size"]
if test_size is not None and test_size > test_x.shape[0]:
    raise ValueError(f"test_size {test_size} exceeds the {test_x.shape[0]} test images of {name.value}")
test_idx = subset_indices(test_x.shape[0], test_size, params.seed)
shape = IMAGE_SHAPES[name]
save_tensors(
    snakemake.output[0],
    {
        "train_images": train_x[train_idx],
        "train_labels": train_y[train_idx],
        "train_index": train_idx,
        "val_images": train_x[val_idx],
        "val_labels": train_y[val_idx],
        "val_index": val_idx,
        "test_images": test_x[test_idx],
        "test_labels": test_y[test_idx],
        "test_index": test_idx,
    },
    {
        "dataset": name.value,
        "channels": shape.channels,
        "image_size": shape.size,
        "full_test_size": TEST_SET_SIZES[name.value],
    },
)
