"""The whole DAG on MNIST and on a 3-channel dataset (CIFAR-10), from files in torchvision's
formats: every rule, figure and RGB grid must run and connect. The numbers mean nothing."""

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from cowboy_core import Cowboy, DefendedClassifier
from cowboy_core.io import load_models

from .conftest import REPO, run_snakemake
from .fixtures.torchvision_files import UNOFFICIAL_CHECKSUMS, write_cifar10, write_mnist

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("mnist_cifar10")
    write_mnist(workdir / "fixture_data", train=120, test=32)
    write_cifar10(workdir / "fixture_data", per_batch=24)
    config = yaml.safe_load((REPO / "tests" / "config" / "tiny-mnist-cifar10.yaml").read_text())
    config["data_root"] = str(workdir / "fixture_data")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    python_path = os.pathsep.join(filter(None, [str(UNOFFICIAL_CHECKSUMS), os.environ.get("PYTHONPATH")]))
    run_snakemake(workdir, "--cores", "2", "--configfile", str(path), env={"PYTHONPATH": python_path})
    return workdir


def test_every_rule_runs_on_both_image_shapes(rgb_run: Path):
    results = rgb_run / "results"
    table1 = pd.read_csv(results / "table1.csv")
    assert {c.split("/")[0] for c in table1.columns[1:]} == {"mnist", "cifar10"}
    assert set(pd.read_csv(results / "detection.csv")["dataset"]) == {"mnist", "cifar10"}
    for png in (results / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png.name
    expected = {"fig3_scores", "fig4_lowest_real", "fig5_cleaning", "fig6_gan_quality_cleaning",
                "fig7_gan_quality_detection", "robustness"}  # fmt: skip
    assert expected <= {p.stem for p in (results / "figures").glob("*.png")}
    assert (results / "reproduction" / "cifar10-results.md").exists()
    assert set(pd.read_csv(results / "deployment.csv")["dataset"]) == {"mnist", "cifar10"}


def test_rgb_defence_card_deploys(rgb_run: Path):
    card = rgb_run / "results/defense/cifar10.safetensors"
    defense = Cowboy.load(card)
    assert defense.input_shape == (3, 32, 32) and defense.threshold is not None
    classifier = load_models(rgb_run / "results/models/cifar10/classifier.safetensors")[0]["classifier"]
    model = DefendedClassifier.load(card, classifier, "clean-all")
    logits = model(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10) and model.last_report is not None and model.last_report.cleaned.all()
    mnist_classifier = load_models(rgb_run / "results/models/mnist/classifier.safetensors")[0]["classifier"]
    with pytest.raises(ValueError, match="cannot take"):
        DefendedClassifier.load(card, mnist_classifier)
