"""The deployable face: DefendedClassifier and the `cowboy` command line."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier
from cowboy_core.cli import main
from cowboy_core.io import save_models
from cowboy_core.models import Classifier, freeze
from cowboy_core.settings import Settings

from .conftest import saved_card


@pytest.fixture
def checkpoint(tmp_path, tiny_gan):
    g, d = tiny_gan
    path = tmp_path / "gan.safetensors"
    save_models(path, {"generator": g, "discriminator": d}, {"step": 1})
    return path


@pytest.fixture
def image_file(tmp_path):
    pixels = torch.randint(
        0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    path = tmp_path / "x.npy"
    np.save(path, pixels.numpy())
    return path, pixels.float() / 127.5 - 1


def test_clean_matches_the_library(tmp_path, checkpoint, image_file, tiny_gan):
    path, x = image_file
    out = tmp_path / "clean.npy"
    args = [
        "clean",
        "--gan",
        str(checkpoint),
        "--images",
        str(path),
        "--out",
        str(out),
        "--steps",
        "4",
        "--sigma",
        "0.8",
        "--seed",
        "7",
        "--quiet",
    ]
    assert main(args) == 0
    g, d = tiny_gan
    expected = Cowboy(g, d, Settings(sigma=0.8, steps=4)).clean(x, seed=7)
    assert torch.allclose(torch.from_numpy(np.load(out)), expected, atol=1e-6)


def test_score_and_detect_write_tables(tmp_path, checkpoint, image_file, tiny_gan):
    path, x = image_file
    assert (
        main(["score", "--gan", str(checkpoint), "--images", str(path), "--out", str(tmp_path / "s.csv")])
        == 0
    )
    scores = pd.read_csv(tmp_path / "s.csv")
    g, d = tiny_gan
    assert np.allclose(scores["d_score"], Cowboy(g, d).score(x).numpy())
    detection = tmp_path / "detection.csv"
    pd.DataFrame(
        {
            "dataset": ["fashion_mnist"] * 2,
            "attack": ["fgsm", "pgd"],
            "threshold": [float(scores["d_score"].median())] * 2,
        }
    ).to_csv(detection, index=False)
    out = tmp_path / "flags.parquet"
    assert (
        main(
            [
                "detect",
                "--gan",
                str(checkpoint),
                "--images",
                str(path),
                "--out",
                str(out),
                "--detection-csv",
                str(detection),
            ]
        )
        == 0
    )
    flags = pd.read_parquet(out)
    assert flags["flagged"].sum() == (scores["d_score"] < scores["d_score"].median()).sum()


def test_png_folders_round_trip(tmp_path, checkpoint, image_file):
    path, _ = image_file
    pngs = tmp_path / "pngs"
    # Writing PNGs: a threshold below every D-score cleans nothing, so the pixels come back unchanged.
    assert (
        main(
            [
                "clean",
                "--gan",
                str(checkpoint),
                "--images",
                str(path),
                "--out",
                str(pngs),
                "--threshold",
                "1e-9",
                "--quiet",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in pngs.iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    again = tmp_path / "again"
    assert (
        main(
            [
                "clean",
                "--gan",
                str(checkpoint),
                "--images",
                str(pngs),
                "--out",
                str(again),
                "--threshold",
                "1e-9",
                "--quiet",
            ]
        )
        == 0
    )
    from PIL import Image

    original = np.load(path)[:, 0]
    for i, name in enumerate(names):
        assert np.array_equal(np.asarray(Image.open(again / name)), original[i])


BAD_INPUT = {  # the case, and what its one line must say
    "missing": "no such file",
    "bad_range": "[-1, 1]",
    "wrong_shape": "shape",
    "corrupt_gan": "bad.safetensors",
    "bad_suffix": ".txt",
    "no_threshold": "threshold",
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(tmp_path, checkpoint, image_file, case, capsys):
    path, _ = image_file
    gan = checkpoint
    command = "score"
    extra: list[str] = []
    if case == "missing":
        path = tmp_path / "nope.npy"
    elif case == "bad_range":
        path = tmp_path / "f.npy"
        np.save(path, np.full((2, 1, 28, 28), 3.0, dtype=np.float32))
    elif case == "wrong_shape":
        path = tmp_path / "f.npy"
        np.save(path, np.zeros((2, 3, 32, 32), dtype=np.uint8))
    elif case == "corrupt_gan":
        gan = tmp_path / "bad.safetensors"
        gan.write_bytes(b"not a checkpoint")
    elif case == "bad_suffix":
        path = tmp_path / "x.txt"
        path.write_text("1 2 3")
    elif case == "no_threshold":
        command = "detect"
    code = main([command, "--gan", str(gan), "--images", str(path), "--out", str(tmp_path / "o.csv"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"cowboy {command}: error:")
    assert BAD_INPUT[case].lower() in err.lower(), err


@pytest.mark.slow
def test_console_script_help_is_useful():
    out = subprocess.run(
        [sys.executable, "-m", "cowboy_core.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("score", "detect", "clean", "examples"):
        assert word in out


def test_defended_classifier_policies(tiny_gan, images):
    g, d = tiny_gan
    classifier = freeze(Classifier(channels=1, image_size=28, width=4))
    scores = Cowboy(g, d).score(images)
    threshold = float(scores.median())
    defense = Cowboy(g, d, Settings(steps=3), threshold=threshold)
    flagged = scores < threshold

    model = DefendedClassifier(classifier, defense, "detect-then-clean")
    logits = model(images)
    assert logits.shape == (6, 10)
    assert torch.equal(model.last_report.flagged, flagged)
    assert torch.equal(model.last_report.cleaned, flagged)
    # Unflagged inputs are classified untouched.
    assert torch.allclose(logits[~flagged], classifier(images[~flagged]))

    rejecting = DefendedClassifier(classifier, defense, "reject")
    logits = rejecting(images)
    assert torch.isnan(logits[flagged]).all() and not torch.isnan(logits[~flagged]).any()

    everything = DefendedClassifier(classifier, Cowboy(g, d, Settings(steps=3)), "clean-all")
    all_logits = everything(images)
    assert everything.last_report.cleaned.all()
    # A flagged input starts from the z0 of its place in the batch, whatever else is flagged.
    flagged_logits = DefendedClassifier(classifier, defense, "detect-then-clean")(images)
    assert torch.allclose(flagged_logits[flagged], all_logits[flagged], atol=1e-4)
    with pytest.raises(ValueError, match="threshold"):
        DefendedClassifier(classifier, Cowboy(g, d), "reject")


@pytest.fixture
def card(tmp_path, tiny_gan, image_file):
    """A card whose threshold flags exactly the inputs scored below the median."""
    return saved_card(tmp_path, *tiny_gan, image_file[1], steps=3)


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_clean_with_a_card_cleans_only_the_flagged_unless_told_to_clean_all(
    tmp_path, card, image_file, suffix
):
    card_path, defense = card
    npy, x = image_file
    inputs = npy if suffix == ".npy" else tmp_path / "x.pt"
    if suffix == ".pt":
        torch.save(x, inputs)
    flagged = defense.detect(x)
    assert 0 < int(flagged.sum()) < len(x)
    for policy, cleaned_rows in (("detect-then-clean", flagged), ("clean-all", torch.ones_like(flagged))):
        out = tmp_path / f"{policy}.npy"
        assert main(["clean", "--defense", str(card_path), "--images", str(inputs), "--out", str(out),
                     "--policy", policy, "--quiet"]) == 0  # fmt: skip
        result = torch.from_numpy(np.load(out))
        expected = x.clone()
        expected[cleaned_rows] = defense.clean(x[cleaned_rows])
        assert torch.allclose(result, expected, atol=1e-6), policy
        assert torch.equal(result[~cleaned_rows], x[~cleaned_rows])  # unflagged inputs pass unchanged


def test_an_output_suffix_it_cannot_write_exits_2_naming_it(tmp_path, card, image_file, capsys):
    card_path, _ = card
    path, _ = image_file
    code = main(
        ["score", "--defense", str(card_path), "--images", str(path), "--out", str(tmp_path / "o.xlsx")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and ".xlsx" in err
