import gzip
import pickle

import numpy as np
import pytest
import torch

from cowboy_core.data import (
    DEBIAN_FASHION_MNIST,
    DataNotFoundError,
    load_images,
    split_indices,
    subset_indices,
    to_uint8,
    to_unit_range,
)
from cowboy_pipeline.toy import two_gaussians

from .fixtures.torchvision_files import write_idx


def test_mnist_loads_from_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 7)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    x, y = load_images("mnist", train=False, root=tmp_path)
    assert x.shape == (7, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (7,) and y.dtype == torch.int64


def test_cifar10_loads_from_python_batches(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    # Our stand-in files cannot match the official MD5s that torchvision checks.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kw: True)
    x, y = load_images("cifar10", train=True, root=tmp_path)
    assert x.shape == (20, 3, 32, 32)
    assert y.tolist()[:4] == [1, 2, 3, 4]


def test_svhn_loads_from_mat_file(tmp_path, monkeypatch):
    from scipy.io import savemat
    from torchvision.datasets import SVHN

    rng = np.random.default_rng(0)
    savemat(
        tmp_path / "test_32x32.mat",
        {
            "X": rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8),
            "y": np.array([[10], [1], [2], [3], [4]]),
        },
    )
    monkeypatch.setattr(SVHN, "_check_integrity", lambda self: True)
    x, y = load_images("svhn", train=False, root=tmp_path)
    assert x.shape == (5, 3, 32, 32)
    assert y.tolist() == [0, 1, 2, 3, 4]  # SVHN's label 10 is the digit 0


def test_missing_data_says_what_to_install(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_images("fashion_mnist", train=True, root=tmp_path, debian_source=tmp_path / "none")
    with pytest.raises(DataNotFoundError, match="download: true"):
        load_images("cifar10", train=True, root=tmp_path)
    with pytest.raises(ValueError, match="allowed: mnist, fashion_mnist"):
        load_images("imagenet", train=True, root=tmp_path)


def test_real_fashion_mnist_loads_offline(tmp_path):
    assert DEBIAN_FASHION_MNIST.is_dir(), "install it: apt-get install -y dataset-fashion-mnist"
    x_train, _y_train = load_images("fashion_mnist", train=True, root=tmp_path)
    x_test, y_test = load_images("fashion_mnist", train=False, root=tmp_path)
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(y_test).tolist() == [1000] * 10
    with gzip.open(DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz") as handle:
        first = handle.read()[8:13]
    assert y_test[:5].tolist() == list(first)


def test_scaling_round_trips():
    pixels = torch.arange(256, dtype=torch.uint8)
    unit = to_unit_range(pixels)
    assert unit.min() == -1 and unit.max() == 1
    assert torch.equal(to_uint8(unit), pixels)


def test_splits_are_seeded_and_disjoint():
    train, val = split_indices(100, 10, seed=3)
    assert not set(train.tolist()) & set(val.tolist())  # no validation image is trained on
    assert len(set(train.tolist()) | set(val.tolist())) == 100 and len(val) == 10
    assert torch.equal(split_indices(100, 10, seed=3)[1], val)
    assert subset_indices(50, None, 0).tolist() == list(range(50))
    with pytest.raises(ValueError):
        subset_indices(50, 60, 0)


def test_two_gaussians_has_the_papers_modes():
    points, labels = two_gaussians(4000, seed=0)
    for label, centre in ((1, 3.0), (0, -3.0)):
        mode = points[labels == label]
        assert torch.allclose(mode.mean(0), torch.tensor([centre, centre]), atol=0.1)
        assert torch.allclose(mode.var(0), torch.ones(2), atol=0.1)
