"""Adaptive attacks (BPDA + EOT, detector-aware) and the mixed-stream accounting."""

import numpy as np
import pytest
import torch

from cowboy_core import Cowboy
from cowboy_core.adaptive import AdaptiveSpec, bpda_eot_pgd, defended_predictions
from cowboy_core.evaluation import stream_metrics
from cowboy_core.models import Classifier, freeze
from cowboy_core.training import train_classifier


def test_stream_accounting_on_a_hand_made_case():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    adversarial = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    flagged = np.array([0, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    # Final predictions (cleaned where flagged): clean part 0 ok, 1 wrong, 2 ok, 3 wrong;
    # adversarial part 4 ok, 5 ok, 6 wrong, 7 wrong.
    predictions = np.array([0, 9, 2, 9, 0, 1, 9, 9])
    m = stream_metrics(labels, adversarial, predictions, flagged, np.zeros(8, dtype=bool))
    assert m["clean_part_accuracy"] == 0.5
    assert m["adversarial_part_accuracy"] == 0.5
    assert m["stream_accuracy"] == 0.5 and m["ci_low"] < 0.5 < m["ci_high"]
    assert m["false_alarm_rate"] == 0.25
    assert m["detection_rate"] == 0.75
    # Under "reject" the flagged rows abstain: wrong for accuracy, right "with abstention".
    r = stream_metrics(labels, adversarial, predictions, flagged, flagged)
    assert r["stream_accuracy"] == 2 / 8  # rows 0, 2
    assert r["accuracy_with_abstention"] == 6 / 8  # rows 0, 1, 2, 4, 5, 7


@pytest.fixture(scope="module")
def setup(request):
    torch.manual_seed(0)
    x = torch.rand(48, 1, 28, 28) * 2 - 1
    y = (x[:, :, :14].mean(dim=(1, 2, 3)) > x[:, :, 14:].mean(dim=(1, 2, 3))).long()
    classifier = freeze(
        train_classifier(Classifier(channels=1, image_size=28, width=4), x, y, steps=60, batch_size=16)
    )
    return classifier, x[:16], y[:16]


def test_bpda_gradients_flow_and_adaptive_beats_transfer(setup, tiny_gan):
    classifier, x, y = setup
    g, d = tiny_gan
    defense = Cowboy(g, d, steps=3, lr=0.05)
    spec = AdaptiveSpec(epsilon=0.3, steps=5, eot=2)
    adaptive = bpda_eot_pgd(classifier, defense, x, y, spec, seed=1)
    transfer = bpda_eot_pgd(classifier, None, x, y, spec, seed=1)
    assert not torch.equal(adaptive, x)  # the BPDA gradient moved the input
    assert (adaptive - x).abs().max() <= 0.6 + 1e-5 and adaptive.abs().max() <= 1
    acc_adaptive = (defended_predictions(classifier, defense, adaptive) == y).float().mean()
    acc_transfer = (defended_predictions(classifier, defense, transfer) == y).float().mean()
    assert acc_adaptive <= acc_transfer


def test_detector_aware_attack_raises_d(setup, tiny_gan):
    classifier, x, y = setup
    g, d = tiny_gan
    defense = Cowboy(g, d, steps=2)
    plain = bpda_eot_pgd(classifier, defense, x, y, AdaptiveSpec(epsilon=0.1, steps=3), seed=0)
    aware = bpda_eot_pgd(
        classifier, defense, x, y, AdaptiveSpec(epsilon=0.1, steps=3, detector_weight=100.0), seed=0
    )
    assert defense.score(aware).mean() > defense.score(plain).mean()


def test_bad_adaptive_spec():
    with pytest.raises(ValueError):
        AdaptiveSpec(epsilon=0)
