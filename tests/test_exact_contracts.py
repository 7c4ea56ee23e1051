"""Each refusal's exact words, and the edges the second mutation run found untested
(docs/quality/mutation.md). A refusal is a user-facing contract: it starts with the problem
and names the fix, so a test compares the whole line, not a fragment of it."""

import math
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier
from cowboy_core.attacks import AttackName, AttackSpec, _foolbox_attack, run_attack
from cowboy_core.card import CardError, check_card, describe, read_card
from cowboy_core.data import DataNotFoundError, load_images, to_unit_range
from cowboy_core.defended import mixed_stream
from cowboy_core.detection import (
    Calibration,
    _as_numpy,
    attack_is_adversarial,
    calibrate_threshold,
    checked_threshold,
    detection_rate,
    lp_threshold,
    roc_auc,
    threshold_at_fpr,
    tpr_at_fpr,
)
from cowboy_core.io import save_models
from cowboy_core.models import Classifier, freeze
from cowboy_core.restarts import check_latents
from cowboy_core.settings import SettingsError, check_settings
from cowboy_core.updates import Adam, Backtracking

from .conftest import saved_card


def _message(error: type[Exception], call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# -- detection ---------------------------------------------------------------------------


def test_detection_refusals_say_the_problem_first():
    assert _message(ValueError, checked_threshold, None) == (
        "no threshold: load a defence card, pass threshold=... or call calibrate()"
    )
    assert _message(ValueError, lp_threshold, [], 1) == "cannot calibrate a threshold on zero scores"
    assert _message(ValueError, lp_threshold, [0.5, -0.1], 1) == "D-scores must be non-negative probabilities"
    assert _message(ValueError, roc_auc, [0.5], []) == (
        "ROC-AUC needs at least one real and one adversarial score"
    )
    assert _message(ValueError, threshold_at_fpr, []) == "need at least one real score"
    weak = Calibration(threshold=0.4, p=1.0, accuracy_drop=0.05, is_adversarial=False)
    assert _message(ValueError, weak.require_adversarial) == (
        "the calibration attack lowers accuracy by only 0.050, less than the 20% drop that makes "
        "its samples adversarial (footnote 2); raise its epsilon or pick a stronger calibration attack"
    )


def test_lp_threshold_computes_in_float64_whatever_the_input_dtype():
    scores = np.array([0.1, 0.2, 0.7, 0.33], dtype=np.float32)
    exact = math.fsum(float(s) ** 7 for s in scores) / 4
    for given in (scores, torch.from_numpy(scores)):
        assert lp_threshold(given, 7) == pytest.approx(exact ** (1 / 7), rel=1e-14, abs=0)


def test_lp_threshold_accepts_zero_scores_and_averages_all_zeros_to_zero():
    assert lp_threshold([0.0, 0.5], 1) == 0.25
    assert lp_threshold([0.0, 0.0], 2) == 0.0


def test_scores_become_flat_float64_arrays():
    for given in (torch.ones(2, 3, dtype=torch.float32), np.ones((2, 3), dtype=np.float32), [[1.0, 1.0]]):
        flat = _as_numpy(given)
        assert flat.dtype == np.float64 and flat.ndim == 1


def test_an_attack_that_cuts_exactly_the_minimum_drop_is_adversarial():
    assert attack_is_adversarial(0.75, 0.5, min_drop=0.25)
    accuracies = {"accuracy_clean": 0.9, "accuracy_adversarial": 0.8}
    assert calibrate_threshold([0.2], **accuracies, min_drop=0.05).is_adversarial
    assert not calibrate_threshold([0.2], **accuracies).is_adversarial  # the default drop is 0.2


def test_calibration_with_one_accuracy_missing_judges_nothing():
    calibration = calibrate_threshold([0.2, 0.4], accuracy_clean=0.9)
    assert calibration.accuracy_drop is None and calibration.is_adversarial is None


def test_fpr_defaults_to_five_percent_and_an_fpr_of_one_flags_everything():
    real = np.linspace(0.01, 1.0, 100)
    assert threshold_at_fpr(real) == threshold_at_fpr(real, 0.05) == real[5]
    assert tpr_at_fpr(real, real) == tpr_at_fpr(real, real, 0.05) == 0.05
    assert threshold_at_fpr([0.2, 0.4], fpr=1.0) == math.inf


def test_the_detection_rate_of_no_scores_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(detection_rate([], 0.5))


# -- card --------------------------------------------------------------------------------

CARD_KEYS = "input_shape, provenance, settings, threshold, threshold_power"


def _card(**edits: Any) -> dict[str, Any]:
    card = {
        "input_shape": [1, 28, 28],
        "threshold": 0.5,
        "threshold_power": 1.0,
        "settings": {},
        "provenance": {},
    }
    return {**card, **edits}


def test_card_refusals_say_the_problem_first():
    assert _message(CardError, check_card, []) == (
        "not a defence card; the pipeline writes results/defense/*.safetensors"
    )
    old = {k: v for k, v in _card().items() if k != "threshold_power"} | {"p": 1.0}
    assert _message(CardError, check_card, old) == (
        "unknown key 'p' (now 'threshold_power': rerun the pipeline's defense_card rule) in the card; "
        f"a card has exactly {CARD_KEYS}"
    )
    assert _message(CardError, check_card, _card(provenance=[])) == (
        "provenance must be a mapping; rewrite the card with the pipeline"
    )


def test_a_card_threshold_of_one_and_an_empty_dimension_are_refused():
    with pytest.raises(CardError, match=r"^threshold = 1 is out of range"):
        check_card(_card(threshold=1))
    with pytest.raises(CardError, match=r"^input_shape = \[0, 28, 28\] must be"):
        check_card(_card(input_shape=[0, 28, 28]))


def test_a_file_with_g_and_d_but_no_card_header_is_not_a_card(tiny_gan, tmp_path):
    path = tmp_path / "models.safetensors"
    save_models(path, {"generator": tiny_gan[0], "discriminator": tiny_gan[1]}, {})
    assert _message(CardError, read_card, path) == (
        f"{path}: not a defence card; the pipeline writes results/defense/*.safetensors"
    )


def test_describe_lays_out_nested_provenance_two_spaces_per_level():
    card = _card(
        settings={"steps": 50},
        provenance={"rule": {"objective": "mean", "grid": ["a", "b"]}, "empty": [], "seed": 0},
    )
    assert describe(card) == "\n".join(
        [
            "input shape: (1, 28, 28)",
            "threshold:   0.5 (L^p average of D, p = 1)",
            "settings:",
            "  steps: 50",
            "provenance:",
            "  rule:",
            "    objective: mean",
            "    grid:",
            "      - a",
            "      - b",
            "  empty: []",
            "  seed: 0",
        ]
    )


# -- settings, restarts --------------------------------------------------------------------


def test_settings_refusals_name_the_type_and_every_known_key():
    assert _message(SettingsError, check_settings, [1]) == (
        "settings must be a mapping of cleaning settings, got list"
    )
    assert _message(SettingsError, check_settings, {"lam": 1.0}) == (
        "settings: unknown key 'lam'; "
        "known: sigma, steps, lr, restarts, method, optimizer, early_stop_tol, d_weight, start"
    )


def test_settings_store_enum_members_as_plain_strings():
    from cowboy_core.settings import Method, Optimizer

    settings = check_settings({"method": Method.DEFENSE_GAN, "optimizer": Optimizer.MOMENTUM})
    assert type(settings.method) is str and type(settings.optimizer) is str


def test_a_wrong_latent_shape_is_refused_with_the_shape_it_needs():
    assert _message(ValueError, check_latents, torch.zeros(5, 3), 2, 3, 4) == (
        "latents must have shape (6, 4), got (5, 3)"
    )


# -- update rules ------------------------------------------------------------------------


def _quadratic(curvature: float):  # type: ignore[no-untyped-def]
    return lambda z: 0.5 * curvature * z.square().sum(dim=1)


def _backtracking_steps(rule: Backtracking, curvature: float, updates: int) -> list[float]:
    z = torch.ones(1, 2, dtype=torch.float64)
    row_loss = _quadratic(curvature)
    rule.begin(z, row_loss)
    taken = []
    for step in range(updates):
        z = rule.step(z, curvature * z, row_loss(z), step)
        taken.append(float(rule.step_size(z)[0]))
    return taken


def test_backtracking_grows_the_last_accepted_step_before_halving_it():
    # On 1.5 z^2 the Armijo condition (c = 1/2) accepts t <= 1/3. From lr = 1: 1, 1/2, 1/4.
    # Next: 1/4 grown by 3 is 3/4, halved to 3/8, then 3/16: growth from the last step, not lr.
    rule = Backtracking(lr=1.0, growth=3.0)
    assert _backtracking_steps(rule, curvature=3.0, updates=2) == [0.25, 0.1875]


def test_a_row_that_stayed_put_starts_again_from_lr():
    rule = Backtracking(lr=1.0, max_halvings=1)  # one trial at t = 1: rejected, the row stays
    assert _backtracking_steps(rule, curvature=3.0, updates=1) == [0.0]
    rule.max_halvings = 20
    z = torch.ones(1, 2, dtype=torch.float64)
    rule.step(z, 3.0 * z, _quadratic(3.0)(z), 1)
    assert float(rule.step_size(z)[0]) == 0.25


def test_backtracking_keeps_its_steps_in_zs_dtype():
    rule = Backtracking(lr=0.1)  # 0.1 rounds differently in float32: a float32 step would show
    z = torch.ones(1, 2, dtype=torch.float64)
    rule.begin(z, _quadratic(1.0))
    assert rule.step_size(z).dtype == torch.float64 and float(rule.step_size(z)[0]) == 0.1
    rule.step(z, z, _quadratic(1.0)(z), 0)
    assert float(rule.step_size(z)[0]) == 0.1  # grown to 0.2, capped at lr: 0.1 exactly


def test_adam_defaults_to_beta_0_9_and_uses_the_beta_it_is_given():
    def two_steps(rule: Adam) -> torch.Tensor:
        z = torch.zeros(1, 1, dtype=torch.float64)
        rule.begin(z, _quadratic(1.0))
        for step, grad in enumerate((1.0, 3.0)):
            z = rule.step(z, torch.full_like(z, grad), z.sum(), step)
        return z

    default = two_steps(Adam(lr=0.1))
    assert torch.equal(default, two_steps(Adam(lr=0.1, beta=0.9)))
    assert not torch.equal(default, two_steps(Adam(lr=0.1, beta=0.5)))


def test_adam_steps_downhill_even_when_the_gradient_is_below_its_epsilon():
    rule = Adam(lr=0.1)
    z = torch.zeros(1, 1, dtype=torch.float64)
    rule.begin(z, _quadratic(1.0))
    assert float(rule.step(z, torch.full_like(z, 1e-12), z.sum(), 0)) < 0


# -- attacks -----------------------------------------------------------------------------


def test_iterative_attacks_take_the_relative_step_size_they_are_given():
    for name in (AttackName.BIM, AttackName.PGD, AttackName.MIM):
        assert _foolbox_attack(AttackSpec(name, 0.1, steps=3, rel_stepsize=0.07)).rel_stepsize == 0.07


def test_images_on_the_range_bounds_are_accepted_and_outside_them_refused():
    model = freeze(Classifier(channels=1, image_size=28))
    edge = torch.tensor([-1.0, 1.0]).repeat(2, 392).view(2, 1, 28, 28)
    labels = torch.tensor([0, 1])
    assert run_attack(model, edge, labels, AttackSpec(AttackName.FGSM, 0.1)).shape == edge.shape
    assert _message(ValueError, run_attack, model, edge * 1.01, labels, AttackSpec(AttackName.FGSM, 0.1)) == (
        "images must lie in [-1, 1]; rescale uint8 pixels with x / 127.5 - 1"
    )


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
        message = _message(DataNotFoundError, load_images, "cifar10", train=train, root=tmp_path)
        assert message.startswith(f"cifar10 ({split}) not found under {tmp_path.resolve()}: ")
        assert message.endswith(
            "To fix: allow downloads (download: true) on a machine with internet access, or place "
            "torchvision's files for it under the data root."
        )
    message = _message(
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
    assert _message(ValueError, load_images, "gaussians", train=True) == (
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

    assert _message(ValueError, DefendedClassifier.load, Path(path), OneNumber()) == (
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
    assert _message(ValueError, Cowboy(*tiny_gan).save, tmp_path / "card.safetensors") == (
        "a defence card needs a threshold: call calibrate() first"
    )


def test_a_card_whose_shape_g_does_not_make_is_refused(tiny_gan, images, tmp_path):
    from .conftest import tamper

    path, _ = saved_card(tmp_path, *tiny_gan, images, steps=2)
    wrong = tamper(path, lambda card: card.update(input_shape=[1, 32, 32]))
    assert _message(CardError, Cowboy.load, wrong) == (
        f"{wrong}: G makes (1, 28, 28), the card says [1, 32, 32]"
    )


def test_describe_writes_an_empty_list_inside_a_list_as_brackets():
    card = _card(provenance={"runs": [[], "a"]})
    assert describe(card).splitlines()[-3:] == ["  runs:", "    []", "    - a"]


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
