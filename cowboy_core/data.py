"""Datasets as tensors in [-1, 1]: MNIST, Fashion-MNIST, CIFAR-10, SVHN and the two-Gaussians toy.

Images come back as ``float32`` tensors of shape (N, C, H, W) scaled to [-1, 1], the only
preprocessing the paper applies, with ``int64`` labels.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .choices import Choice
from .io import atomic_path

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DatasetName(Choice, what="dataset"):
    """The paper's datasets, plus the toy of Figures 1 and 2."""

    MNIST = "mnist"
    FASHION_MNIST = "fashion_mnist"
    CIFAR10 = "cifar10"
    SVHN = "svhn"
    GAUSSIANS = "gaussians"


@dataclass(frozen=True)
class ImageShape:
    channels: int
    size: int


IMAGE_SHAPES = {
    DatasetName.MNIST: ImageShape(1, 28),
    DatasetName.FASHION_MNIST: ImageShape(1, 28),
    DatasetName.CIFAR10: ImageShape(3, 32),
    DatasetName.SVHN: ImageShape(3, 32),
}


class DataNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to get it."""


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float32 in [-1, 1]."""
    return images.to(torch.float32).div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 pixels, for PNGs and compact storage."""
    return images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def _stage_debian_fashion_mnist(root: Path, source: Path) -> None:
    # torchvision's download=False reads the extracted IDX files; Debian ships gzipped ones
    # with other checksums than torchvision's mirror, so extract them ourselves.
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in sorted(source.glob("*-ubyte.gz")):
        target = raw / gz.name[: -len(".gz")]
        if not target.exists():
            # Unique temporary names: two jobs may stage the same files at once.
            with atomic_path(target, clear_stale=False) as tmp, gzip.open(gz, "rb") as fin:
                tmp.write_bytes(fin.read())


def _install_hint(name: DatasetName) -> str:
    if name is DatasetName.FASHION_MNIST:
        return (
            "install Debian's offline copy with `apt-get install -y dataset-fashion-mnist`, "
            "or allow downloads (download: true) on a machine with internet access"
        )
    return (
        "allow downloads (download: true) on a machine with internet access, or place "
        "torchvision's files for it under the data root"
    )


def load_images(
    name: str | DatasetName,
    *,
    train: bool,
    root: str | Path = "data",
    download: bool = False,
    debian_source: Path = DEBIAN_FASHION_MNIST,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a torchvision image dataset as uint8 images (N, C, H, W) and labels.

    Raises:
        DataNotFoundError: with the command that installs or fetches the data.
    """
    from torchvision import datasets

    dataset = DatasetName.parse(name)
    root = Path(root)
    if dataset is DatasetName.GAUSSIANS:
        raise ValueError("the two-Gaussians toy has no images; cowboy_pipeline.toy draws its points")
    if dataset is DatasetName.FASHION_MNIST and debian_source.is_dir():
        _stage_debian_fashion_mnist(root, debian_source)
    try:
        if dataset is DatasetName.MNIST:
            ds = datasets.MNIST(str(root), train=train, download=download)
            images, labels = ds.data.unsqueeze(1), ds.targets
        elif dataset is DatasetName.FASHION_MNIST:
            ds = datasets.FashionMNIST(str(root), train=train, download=download)
            images, labels = ds.data.unsqueeze(1), ds.targets
        elif dataset is DatasetName.CIFAR10:
            # CIFAR-10's official format is pickled numpy; torchvision verifies the files'
            # MD5 against the official release before it unpickles them.
            cifar = datasets.CIFAR10(str(root), train=train, download=download)
            images = torch.from_numpy(np.ascontiguousarray(cifar.data.transpose(0, 3, 1, 2)))
            labels = torch.tensor(cifar.targets)
        else:
            svhn = datasets.SVHN(str(root), split="train" if train else "test", download=download)
            images = torch.from_numpy(np.ascontiguousarray(svhn.data))
            labels = torch.from_numpy(svhn.labels.astype(np.int64))
    except RuntimeError as err:
        split = "train" if train else "test"
        raise DataNotFoundError(
            f"{dataset.value} ({split}) not found under {root.resolve()}: {err}. "
            f"To fix: {_install_hint(dataset)}."
        ) from err
    return images.to(torch.uint8).contiguous(), labels.to(torch.int64).contiguous()


def split_indices(n: int, validation_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of a training set into (train, validation) indices.

    Hyperparameters (sigma, steps, lr, epsilons) are chosen on the validation part,
    never on the test images that are reported.
    """
    if not 0 <= validation_size < n:
        raise ValueError(f"validation_size must be in [0, {n}), got {validation_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[validation_size:].sort().values, perm[:validation_size].sort().values


def subset_indices(n: int, size: int | None, seed: int) -> torch.Tensor:
    """A seeded subset of ``size`` indices out of ``n`` (all of them when size is None)."""
    if size is None or size == n:
        return torch.arange(n)
    if not 0 < size <= n:
        raise ValueError(f"subset size must be in (0, {n}], got {size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:size].sort().values
