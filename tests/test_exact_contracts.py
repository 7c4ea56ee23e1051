"""Each refusal's exact words, and the edges the second mutation run found untested
(docs/quality/mutation.md). A refusal is a user-facing contract: it starts with the problem
and names the fix, so a test compares the whole line, not a fragment of it."""

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from cowboy_core.attacks import VAM_RETRY_XI, AttackSpec, _foolbox_attack, _vam_retry, run_attack
from cowboy_core.card import CardError, check_card, describe, read_card
from cowboy_core.choices import AttackName
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

from .conftest import refusal

# -- detection ---------------------------------------------------------------------------


def test_detection_refusals_say_the_problem_first():
    assert refusal(ValueError, checked_threshold, None) == (
        "no threshold: load a defence card, pass threshold=... or call calibrate()"
    )
    assert refusal(ValueError, lp_threshold, [], 1) == "cannot calibrate a threshold on zero scores"
    assert refusal(ValueError, lp_threshold, [0.5, -0.1], 1) == "D-scores must be non-negative probabilities"
    assert refusal(ValueError, roc_auc, [0.5], []) == (
        "ROC-AUC needs at least one real and one adversarial score"
    )
    assert refusal(ValueError, threshold_at_fpr, []) == "need at least one real score"
    weak = Calibration(threshold=0.4, p=1.0, accuracy_drop=0.05, is_adversarial=False)
    assert refusal(ValueError, weak.require_adversarial) == (
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
    assert refusal(CardError, check_card, []) == (
        "not a defence card; the pipeline writes results/defense/*.safetensors"
    )
    old = {k: v for k, v in _card().items() if k != "threshold_power"} | {"p": 1.0}
    assert refusal(CardError, check_card, old) == (
        "unknown key 'p' (now 'threshold_power': rerun the pipeline's defense_card rule) in the card; "
        f"a card has exactly {CARD_KEYS}"
    )
    assert refusal(CardError, check_card, _card(provenance=[])) == (
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
    assert refusal(CardError, read_card, path) == (
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
    assert refusal(SettingsError, check_settings, [1]) == (
        "settings must be a mapping of cleaning settings, got list"
    )
    assert refusal(SettingsError, check_settings, {"lam": 1.0}) == (
        "settings: unknown key 'lam'; "
        "known: sigma, steps, lr, restarts, method, optimizer, early_stop_tol, d_weight, start"
    )


def test_settings_store_enum_members_as_plain_strings():
    from cowboy_core.choices import Optimizer
    from cowboy_core.settings import Method

    settings = check_settings({"method": Method.DEFENSE_GAN, "optimizer": Optimizer.MOMENTUM})
    assert type(settings.method) is str and type(settings.optimizer) is str


def test_a_wrong_latent_shape_is_refused_with_the_shape_it_needs():
    assert refusal(ValueError, check_latents, torch.zeros(5, 3), 2, 3, 4) == (
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
    assert refusal(ValueError, run_attack, model, edge * 1.01, labels, AttackSpec(AttackName.FGSM, 0.1)) == (
        "images must lie in [-1, 1]; rescale uint8 pixels with x / 127.5 - 1"
    )


def test_a_malformed_classifier_record_is_refused_with_its_fix():
    assert refusal(CardError, check_card, _card(provenance={"classifier": "c.safetensors"})) == (
        "provenance.classifier = 'c.safetensors' must be {source: path, sha256: 64 hex digits}; "
        "rewrite the card with the pipeline"
    )


def test_describe_writes_an_empty_list_inside_a_list_as_brackets():
    card = _card(provenance={"runs": [[], "a"]})
    assert describe(card).splitlines()[-3:] == ["  runs:", "    []", "    - a"]


def test_the_vam_retry_keeps_what_it_finds_per_image_and_says_how_many_it_retried(monkeypatch, caplog):
    """Rows 0 and 2 vanished at xi=1e-6; the wider retry finds row 2 a direction but not row
    0, which comes back as the image itself. Row 1 never vanished and is kept as it was."""
    import foolbox as fb

    x = torch.zeros(3, 1, 2, 2)
    adv = torch.full_like(x, 0.3)
    adv[[0, 2]] = float("nan")

    class _Retry:
        def __init__(self, **_: Any) -> None: ...

        def __call__(self, fmodel, images, labels, epsilons):  # type: ignore[no-untyped-def]
            again = images + 0.1
            again[0] = float("nan")
            return None, again, None

    monkeypatch.setattr(fb.attacks, "VirtualAdversarialAttack", _Retry)
    with caplog.at_level("WARNING"):
        out = _vam_retry(None, x, torch.zeros(3), adv, AttackSpec(AttackName.VAM, epsilon=0.1, steps=1))
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], adv[1]) and torch.equal(out[2], x[2] + 0.1)
    assert caplog.messages == [f"VAM: 2 images had no KL gradient at xi=1e-6; retried at xi={VAM_RETRY_XI:g}"]
