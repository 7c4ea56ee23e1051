"""Exact contracts of the data loaders, the defended classifier, the cleaning and the descent
loop: the edges the second mutation run found untested (docs/quality/mutation.md), and each
refusal's whole line, as in test_exact_contracts.py."""

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier
from cowboy_core.card import CardError
from cowboy_core.data import DataNotFoundError, load_images, to_unit_range
from cowboy_core.defended import mixed_stream
from cowboy_core.models import Classifier, freeze

from .conftest import refusal, saved_card

# -- data --------------------------------------------------------------------------------


class _Recorder:
    """Stands in for a torchvision dataset class and records how it was called."""

    calls: ClassVar[list[dict[str, Any]]] = []
    channels_last = False

    def __init__(self, root: str, **kwargs: Any) -> None:
        type(self).calls.append({"root": root, **kwargs})
        self.data: Any = torch.zeros(2, 28, 28, dtype=torch.uint8)  # MNIST's layout
        self.targets: Any = torch.zeros(2, dtype=torch.int64)
        if "split" in kwargs:  # SVHN's: numpy, channels first
            self.data = np.zeros((2, 3, 32, 32), dtype=np.uint8)
        elif type(self).channels_last:  # CIFAR-10's: numpy, channels last, a list of labels
            self.data, self.targets = np.zeros((2, 32, 32, 3), dtype=np.uint8), [0, 0]
        self.labels = np.zeros(2, dtype=np.int64)


class _CifarRecorder(_Recorder):
    channels_last = True


LOADERS = [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("svhn", "SVHN"), ("cifar10", "CIFAR10")]


@pytest.mark.parametrize("name, cls", LOADERS)
def test_loaders_pass_split_root_and_download_to_torchvision(name, cls, monkeypatch, tmp_path):
    from torchvision import datasets

    monkeypatch.setattr(datasets, cls, _CifarRecorder if cls == "CIFAR10" else _Recorder)
    monkeypatch.chdir(tmp_path)
    _Recorder.calls = []
    for train in (True, False):
        load_images(name, train=train, download=True, debian_source=tmp_path / "absent")
    split = [{"train": True}, {"train": False}] if cls != "SVHN" else [{"split": "train"}, {"split": "test"}]
    assert _Recorder.calls == [{"root": "data", **s, "download": True} for s in split]


def test_missing_data_names_the_dataset_the_split_and_the_fix(tmp_path):
    for train, split in ((True, "train"), (False, "test")):
        message = refusal(DataNotFoundError, load_images, "cifar10", train=train, root=tmp_path)
        assert message.startswith(f"cifar10 ({split}) not found under {tmp_path.resolve()}: ")
        assert message.endswith(
            "To fix: allow downloads (download: true) on a machine with internet access, or place "
            "torchvision's files for it under the data root."
        )
    message = refusal(
        DataNotFoundError,
        load_images,
        "fashion_mnist",
        train=True,
        root=tmp_path,
        debian_source=tmp_path / "absent",
    )
    assert message.endswith(
        "To fix: install Debian's offline copy with `apt-get install -y dataset-fashion-mnist`, "
        "or allow downloads (download: true) on a machine with internet access."
    )
    assert refusal(ValueError, load_images, "gaussians", train=True) == (
        "the two-Gaussians toy has no images; cowboy_pipeline.toy draws its points"
    )


def test_staging_debians_files_leaves_another_jobs_temporary_file_alone(tmp_path):
    import gzip

    source = tmp_path / "debian"
    source.mkdir()
    (source / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"labels"))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    writing = raw / ".t10k-labels-idx1-ubyte.other-job.tmp"
    writing.write_bytes(b"half")
    from cowboy_core.data import _stage_debian_fashion_mnist

    _stage_debian_fashion_mnist(tmp_path / "data", source)
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == b"labels" and writing.exists()


def test_pixels_in_any_dtype_map_to_float32():
    assert to_unit_range(torch.full((1, 2), 255.0, dtype=torch.float64)).dtype == torch.float32


# -- the defended classifier ---------------------------------------------------------------


def test_an_odd_stream_attacks_exactly_half_rounded_down():
    stream, attacked = mixed_stream(torch.zeros(5, 1), torch.ones(5, 1), seed=3)
    assert int(attacked.sum()) == 2 and torch.equal(stream[:, 0].bool(), attacked)


def test_defended_classifier_defaults_to_seed_0_and_passes_its_execution_on(tiny_gan, images, tmp_path):
    from cowboy_core.execution import Execution

    path, _ = saved_card(tmp_path, *tiny_gan, images, steps=3)
    classifier = freeze(Classifier(channels=1, image_size=28))
    execution = Execution(device="cpu", batch_size=3)
    loaded = DefendedClassifier.load(path, classifier, "clean-all", execution=execution)
    assert loaded.seed == 0 and loaded.defense.execution is execution
    explicit = DefendedClassifier(classifier, Cowboy.load(path, execution=execution), "clean-all", seed=0)
    assert DefendedClassifier(classifier, Cowboy.load(path), "clean-all").seed == explicit.seed == 0
    assert torch.equal(loaded.defend(images)[0], explicit.defend(images)[0])


def test_a_classifier_that_returns_one_number_per_image_is_refused(tiny_gan, images, tmp_path):
    path, _ = saved_card(tmp_path, *tiny_gan, images, steps=3)

    class OneNumber(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).sum(dim=1)

    assert refusal(ValueError, DefendedClassifier.load, Path(path), OneNumber()) == (
        "the classifier must return (N, classes) logits, got (2,)"
    )


# -- cleaning ----------------------------------------------------------------------------


def test_calibration_defaults_to_the_papers_mean(tiny_gan, images):
    defense = Cowboy(*tiny_gan)
    defense.calibrate(images)
    assert defense.threshold_power == 1.0
    assert defense.threshold == pytest.approx(float(defense.score(images).double().mean()), rel=1e-12)


def test_clean_starts_from_the_latents_it_is_given(tiny_gan, images):
    from cowboy_core.settings import Settings

    defense = Cowboy(*tiny_gan, Settings(steps=2))
    latents = torch.randn(images.shape[0], defense.latent_dim, generator=torch.Generator().manual_seed(5))
    given = defense.clean(images, latents=latents)
    assert torch.equal(given, defense.clean_detailed(images, latents=latents).images)
    assert not torch.equal(given, defense.clean(images))


def test_the_unrolled_gradient_through_the_last_steps_only_differs_from_the_full_one(tiny_gan, images):
    from cowboy_core.settings import Settings

    defense = Cowboy(*tiny_gan, Settings(steps=3))
    x = images[:2].clone().requires_grad_(True)

    def gradient(**last: int) -> torch.Tensor:
        return torch.autograd.grad(defense.clean_unrolled(x, **last).sum(), x)[0]

    full = gradient()
    assert torch.equal(gradient(last=3), full) and torch.equal(gradient(last=10), full)
    assert not torch.equal(gradient(last=1), full)


def test_saving_without_a_threshold_says_to_calibrate(tiny_gan, tmp_path):
    assert refusal(ValueError, Cowboy(*tiny_gan).save, tmp_path / "card.safetensors") == (
        "a defence card needs a threshold: call calibrate() first"
    )


def test_a_card_whose_shape_g_does_not_make_is_refused(tiny_gan, images, tmp_path):
    from .conftest import tamper

    path, _ = saved_card(tmp_path, *tiny_gan, images, steps=2)
    wrong = tamper(path, lambda card: card.update(input_shape=[1, 32, 32]))
    assert refusal(CardError, Cowboy.load, wrong) == (
        f"{wrong}: G makes (1, 28, 28), the card says [1, 32, 32]"
    )


# -- the descent loop ----------------------------------------------------------------------


def _scaled_quadratic(scales: torch.Tensor, calls: list[int]):  # type: ignore[no-untyped-def]
    def objective(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        return scales * z.square().sum(1), z

    return objective


def test_a_stopped_row_stays_put_while_the_others_descend_and_the_chunk_ends_with_the_last():
    from cowboy_core.descent import descend
    from cowboy_core.updates import GD

    calls: list[int] = []
    # Row 0 barely improves (stops at step 100, compared at 50); row 1 halves z each step.
    objective = _scaled_quadratic(torch.tensor([1e-9, 0.25]), calls)
    run = descend(
        objective,
        GD(lr=1.0),
        torch.ones(2, 3),
        torch.zeros(2, 1),
        steps=120,
        record=[100, 120],
        early_stop_tol=0.01,
    )
    assert run.steps_run.tolist() == [100, 120]
    assert torch.equal(run.snapshots[120][0], run.snapshots[100][0])  # row 0 froze at its stop
    assert run.snapshots[120][1].abs().max() < 1e-30  # row 1 went on: 0.5^120
    calls.clear()
    both_stop = _scaled_quadratic(torch.tensor([1e-9, 1e-9]), calls)
    descend(both_stop, GD(lr=1.0), torch.ones(2, 3), torch.zeros(2, 1), steps=300, early_stop_tol=0.01)
    assert len(calls) == 100  # no objective runs once every row has stopped


def test_a_descent_keeps_no_graph_unless_asked():
    from cowboy_core.descent import descend
    from cowboy_core.updates import GD

    z0 = torch.ones(2, 3)
    run = descend(_scaled_quadratic(torch.ones(2), []), GD(lr=0.1), z0, torch.zeros(2, 1), steps=3)
    assert not run.snapshots[3].requires_grad


def test_with_settings_changes_the_settings_and_keeps_everything_else(tiny_gan, images, tmp_path):
    from cowboy_core.settings import SettingsError

    path, card = saved_card(tmp_path, *tiny_gan, images, steps=3)
    loaded = Cowboy.load(path)
    loaded.threshold_power = 2.0
    other = loaded.with_settings(lr=0.01, steps=2)
    assert (other.settings.lr, other.settings.steps, other.settings.sigma) == (0.01, 2, loaded.settings.sigma)
    assert other.sources == loaded.sources and other.execution is loaded.execution
    assert (other.threshold, other.threshold_power, other.card) == (card.threshold, 2.0, loaded.card)
    assert torch.equal(other.clean(images), Cowboy(*tiny_gan, other.settings).clean(images))
    assert refusal(SettingsError, loaded.with_settings, lr=-1.0) == (
        "changes.lr = -1.0 is out of range; it must be a finite number > 0"
    )


def test_every_cleaning_entry_point_defaults_to_seed_0(tiny_gan, images):
    from cowboy_core.settings import Settings

    defense = Cowboy(*tiny_gan, Settings(steps=2))
    seeded = defense.clean(images, seed=0)
    assert not torch.equal(seeded, defense.clean(images, seed=1))  # the seed matters here
    assert torch.equal(defense.clean(images), seeded)
    assert torch.equal(defense.clean_detailed(images).images, seeded)
    assert torch.equal(defense.clean_unrolled(images), seeded)
