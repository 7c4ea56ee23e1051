"""What each public piece promises, down to its edges and its messages: written against the
mutants that survived the first mutation run (docs/quality/mutation.md)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cowboy_core import DefendedClassifier
from cowboy_core.attacks import AttackSpec
from cowboy_core.choices import AttackName, parse_attack
from cowboy_core.data import (
    DataNotFoundError,
    load_images,
    split_indices,
    subset_indices,
    to_uint8,
    to_unit_range,
)
from cowboy_core.defended import Policy, apply_policy
from cowboy_core.detection import (
    calibrate_threshold,
    checked_threshold,
    detection_rate,
    lp_threshold,
    roc_auc,
    threshold_at_fpr,
    tpr_at_fpr,
)
from cowboy_core.models import Classifier, freeze
from cowboy_core.settings import SettingsError, check_settings
from cowboy_core.updates import Adam, Backtracking, Momentum, rule_for

from .conftest import saved_card


def test_settings_accept_only_known_methods_and_optimizers_as_strings():
    assert check_settings({"method": "defense_gan", "optimizer": "adam"}).optimizer == "adam"
    for key, bad in (("method", "magic"), ("optimizer", "sgdx"), ("optimizer", 3), ("method", None)):
        with pytest.raises(SettingsError, match=f"settings.{key}"):
            check_settings({key: bad})


def test_update_rules_state_their_stability_limits_and_step_in_zs_dtype():
    assert Momentum(lr=0.1, beta=0.9).stability_limit == pytest.approx(3.8)  # 2 (1 + beta)
    assert math.isnan(Adam(lr=0.1).stability_limit) and rule_for("gd", 0.1).stability_limit == 2.0
    z = torch.zeros(3, 2, dtype=torch.float64)
    sizes = rule_for("gd", 0.25).step_size(z)
    assert sizes.dtype == torch.float64 and sizes.tolist() == [0.25] * 3


def test_backtracking_halves_until_the_armijo_condition_holds():
    """L(z) = ||z||^2, g = 2z: L(z - t g) = (1 - 2t)^2 L(z) <= L(z) - t/2 ||g||^2 = (1 - 2t) L(z)
    holds for t <= 1/2 (equality at 1/2). From lr = 1 the first accepted step is exactly 1/2."""
    rule = Backtracking(lr=1.0)
    z = torch.tensor([[1.0, -2.0], [0.5, 0.5]], dtype=torch.float64)

    def loss(points):
        return points.square().sum(1)

    rule.begin(z, loss)
    moved = rule.step(z, 2 * z, loss(z), 0)
    assert rule.step_size(z).tolist() == [0.5, 0.5] and torch.equal(moved, torch.zeros_like(z))
    assert Backtracking(lr=1.0).growth == 2.0 and Backtracking(lr=1.0).max_halvings == 20


def test_adam_moves_against_the_gradient_by_lr_on_its_first_step():
    rule = Adam(lr=0.1)
    z = torch.zeros(2, 3)
    rule.begin(z, lambda points: points.square().sum(1))
    step = rule.step(z, torch.ones(2, 3), torch.zeros(2), 0)
    assert torch.allclose(step, torch.full((2, 3), -0.1), atol=1e-6)


def test_attack_names_parse_with_their_labels():
    assert parse_attack("fgsm") == (AttackName.FGSM, "") and parse_attack("pgd-std") == (
        AttackName.PGD,
        "std",
    )
    assert parse_attack("none") == (None, "")
    with pytest.raises(ValueError, match="at least 1"):
        AttackSpec(AttackName.PGD, epsilon=0.1, steps=0)


def test_detection_edges_and_messages():
    assert roc_auc(torch.tensor([[0.9, 0.8]]), np.array([[0.1], [0.2]])) == 1.0  # any shape, flattened
    assert roc_auc([0.5], [0.5]) == 0.5  # a tie counts one half
    with pytest.raises(ValueError, match="one real and one adversarial"):
        roc_auc([], [0.1])
    assert math.isnan(detection_rate(np.array([]), 0.5)) and detection_rate([0.1, 0.6], 0.5) == 0.5
    with pytest.raises(ValueError, match="at least one real score"):
        threshold_at_fpr([], 0.05)
    assert tpr_at_fpr([0.9, 0.8, 0.7, 0.6], [0.1, 0.65, 0.95], fpr=0.25) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="zero scores"):
        lp_threshold([], 1.0)
    with pytest.raises(ValueError, match="no threshold"):
        checked_threshold(None)
    with pytest.raises(ValueError, match="out of range"):
        checked_threshold(1.0)


def test_calibration_keeps_p_and_refuses_an_attack_that_is_not_adversarial():
    calibration = calibrate_threshold([0.2, 0.4], p=2.0, accuracy_clean=0.9, accuracy_adversarial=0.3)
    assert calibration.p == 2.0 and calibration.threshold == pytest.approx(math.sqrt((0.04 + 0.16) / 2))
    weak = calibrate_threshold([0.2, 0.4], accuracy_clean=0.9, accuracy_adversarial=0.8)
    with pytest.raises(ValueError, match="20"):
        weak.require_adversarial()


def test_pixels_map_to_the_unit_range_and_back_exactly():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    unit = to_unit_range(pixels)
    assert unit.dtype == torch.float32 and unit.min() == -1 and unit.max() == 1
    assert torch.equal(to_uint8(unit), pixels)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]  # clamped, not wrapped


def test_missing_data_names_the_command_that_installs_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="download: true"):
        load_images("cifar10", train=False, root=tmp_path)
    with pytest.raises(DataNotFoundError, match="dataset-fashion-mnist"):
        load_images("fashion_mnist", train=False, root=tmp_path, debian_source=tmp_path / "absent")


@pytest.fixture
def card(tmp_path, tiny_gan, images):
    return saved_card(tmp_path, *tiny_gan, images, steps=2)


def test_defended_classifier_loads_a_card_for_a_classifier_that_fits_it(card, images):
    path, defense = card
    torch.manual_seed(0)
    classifier = freeze(Classifier(channels=1, image_size=28, width=4))
    model = DefendedClassifier.load(path, classifier, "clean-all", seed=3, steps=1)
    assert model.seed == 3 and model.defense.settings.steps == 1 and model.last_report is None
    logits = model(images)
    expected = classifier(model.defense.clean(images, seed=3))
    assert logits.shape == (len(images), 10) and torch.allclose(logits, expected, atol=1e-5)
    assert bool(model.last_report.cleaned.all()) and torch.equal(
        model.last_report.scores, defense.score(images)
    )
    rgb = freeze(Classifier(channels=3, image_size=32, width=4))
    with pytest.raises(ValueError, match="cannot take the card's inputs"):
        DefendedClassifier.load(path, rgb)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Flatten(0))
    with pytest.raises(ValueError, match=r"\(N, classes\) logits"):
        DefendedClassifier.load(path, flat)


def test_apply_policy_cleans_with_the_given_seed_and_reports_the_scores(card, images):
    _, defense = card
    inputs, report = apply_policy(defense, images, Policy.CLEAN_ALL, seed=5)
    assert torch.equal(inputs, defense.clean(images, seed=5)) and not torch.equal(
        inputs, defense.clean(images)
    )
    assert torch.equal(report.scores, defense.score(images)) and not report.rejected.any()
    default, _ = apply_policy(defense, images, "clean-all")
    assert torch.equal(default, defense.clean(images, seed=0))


@pytest.mark.parametrize("policy", list(Policy))
def test_a_shared_cleaning_gives_each_policy_the_same_bits_and_is_what_it_uses(card, images, policy):
    _, defense = card
    defense.threshold = float(defense.score(images).median())  # some rows flagged, some not
    once = defense.clean(images, seed=2)
    fresh, fresh_report = apply_policy(defense, images, policy, seed=2)
    shared, shared_report = apply_policy(defense, images, policy, seed=2, cleaned=once)
    assert torch.equal(fresh, shared) and torch.equal(fresh_report.flagged, shared_report.flagged)
    assert 0 < int(fresh_report.flagged.sum()) <= len(images)
    marked = torch.full_like(once, 0.25)  # not a cleaning: shows which rows come from ``cleaned``
    inputs, report = apply_policy(defense, images, policy, seed=2, cleaned=marked)
    taken = report.cleaned.view(-1, 1, 1, 1)
    assert torch.equal(inputs, torch.where(taken, marked, images))
    assert bool(report.cleaned.any()) == (policy is not Policy.REJECT)
    with pytest.raises(ValueError, match="cleaned must have the inputs' shape"):
        apply_policy(defense, images, policy, cleaned=once[:1])


def test_the_deployed_classifier_reads_the_shared_cleaning_it_is_given(card, images):
    _, defense = card
    torch.manual_seed(0)
    classifier = freeze(Classifier(channels=1, image_size=28, width=4))
    defended = DefendedClassifier(classifier, defense, "clean-all", seed=2)
    marked = torch.full_like(images, 0.25)  # not a cleaning: shows that the logits read it
    logits, report = defended.defend(images, cleaned=marked)
    with torch.no_grad():
        assert torch.equal(logits, defense.execution.map_rows(classifier, marked).float())
    assert report.cleaned.all() and not torch.equal(logits, defended.defend(images)[0])


def test_mnist_and_cifar10_load_each_split_in_torchvisions_formats(tmp_path, monkeypatch):
    import pickle

    from torchvision.datasets import cifar

    from .fixtures.torchvision_files import write_cifar10, write_mnist

    write_mnist(tmp_path, train=12, test=5)
    write_cifar10(tmp_path, per_batch=3)
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())  # our files
    train, train_labels = load_images("mnist", train=True, root=tmp_path)
    test, test_labels = load_images("mnist", train=False, root=tmp_path)
    assert train.shape == (12, 1, 28, 28) and test.shape == (5, 1, 28, 28) and train.dtype == torch.uint8
    assert train_labels.dtype == torch.int64 and test_labels.shape == (5,)
    rgb, rgb_labels = load_images("cifar10", train=False, root=tmp_path)
    batch = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    assert rgb.shape == (3, 3, 32, 32) and rgb_labels.tolist() == batch["labels"]
    assert torch.equal(rgb[0], torch.from_numpy(batch["data"][0].reshape(3, 32, 32)))  # channels first
    assert load_images("cifar10", train=True, root=tmp_path)[0].shape == (15, 3, 32, 32)  # five batches


def test_subsets_are_seeded_sorted_and_in_range():
    subset = subset_indices(100, 10, seed=2)
    assert len(set(subset.tolist())) == 10 and subset.tolist() == sorted(subset.tolist())
    assert int(subset.min()) >= 0 and int(subset.max()) < 100
    assert torch.equal(subset_indices(100, 10, seed=2), subset) and not torch.equal(
        subset_indices(100, 10, seed=3), subset
    )
    assert subset_indices(100, 1, seed=0).shape == (1,) and subset_indices(7, 7, seed=0).tolist() == list(
        range(7)
    )
    for bad in (0, 101):
        with pytest.raises(ValueError, match=r"subset size must be in \(0, 100\]"):
            subset_indices(100, bad, seed=0)
    with pytest.raises(ValueError, match=r"validation_size must be in \[0, 10\)"):
        split_indices(10, 10, seed=0)
