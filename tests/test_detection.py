import math

import numpy as np
import pytest
import torch

from cowboy_core.detection import (
    attack_is_adversarial,
    calibrate_threshold,
    detection_rate,
    lp_threshold,
    roc_auc,
    threshold_at_fpr,
    tpr_at_fpr,
)

SCORES = torch.tensor([0.1, 0.2, 0.4, 0.9])


def test_threshold_is_mean_at_p1_and_max_at_inf():
    assert lp_threshold(SCORES, 1) == pytest.approx(0.4)
    assert lp_threshold(SCORES, math.inf) == pytest.approx(0.9)
    between = lp_threshold(SCORES, 4)
    assert 0.4 < between < 0.9
    assert between == pytest.approx(float((SCORES.double() ** 4).mean() ** 0.25))
    assert lp_threshold(SCORES, 1e6) == pytest.approx(0.9, rel=1e-5)  # no underflow at large p


def test_threshold_refuses_bad_p_and_empty():
    with pytest.raises(ValueError, match="p must be"):
        lp_threshold(SCORES, 0.5)
    with pytest.raises(ValueError, match="zero scores"):
        lp_threshold(torch.tensor([]), 1)


def test_roc_auc_matches_hand_computation():
    # Pairs (real, adv): real above adv counts 1, ties 1/2.
    real = np.array([0.9, 0.8, 0.3])
    adv = np.array([0.3, 0.1])
    # 0.9>0.3,0.9>0.1,0.8>0.3,0.8>0.1,0.3=0.3 (1/2),0.3>0.1 -> 5.5 / 6
    assert roc_auc(real, adv) == pytest.approx(5.5 / 6)
    assert roc_auc([1.0], [0.0]) == 1.0
    assert roc_auc([0.0], [1.0]) == 0.0


def test_tpr_at_fpr_flags_at_most_that_many_real():
    real = np.linspace(0.5, 1.0, 100)
    adv = np.array([0.1, 0.2, 0.52, 0.9])
    t = threshold_at_fpr(real, 0.05)
    assert detection_rate(real, t) <= 0.05
    assert tpr_at_fpr(real, adv, 0.05) == pytest.approx(0.75)


def test_calibration_follows_footnote_2():
    assert attack_is_adversarial(0.9, 0.7)
    assert not attack_is_adversarial(0.9, 0.75)
    strong = calibrate_threshold(SCORES, accuracy_clean=0.9, accuracy_adversarial=0.1)
    assert strong.threshold == pytest.approx(0.4) and strong.is_adversarial
    assert strong.require_adversarial() is strong
    weak = calibrate_threshold(SCORES, accuracy_clean=0.9, accuracy_adversarial=0.8)
    assert weak.is_adversarial is False and weak.accuracy_drop == pytest.approx(0.1)
    with pytest.raises(ValueError, match="footnote 2"):
        weak.require_adversarial()
    assert calibrate_threshold(SCORES).is_adversarial is None  # no accuracies: nothing to check


def test_paired_comparison_on_known_cases():
    from cowboy_pipeline.statistics import paired_comparison

    rng = np.random.default_rng(0)
    b = rng.random(2000) < 0.6
    same = paired_comparison(b, b.copy())
    assert same["difference"] == 0 and same["mcnemar_p"] == 1.0 and same["equivalent"]
    better = b.copy()
    better[np.flatnonzero(~b)[:200]] = True  # a fixes 200 of b's errors, breaks none
    result = paired_comparison(better, b, strata=np.arange(2000) % 3)
    assert result["difference"] == pytest.approx(0.1)
    assert result["ci_low"] > 0.08 and result["mcnemar_p"] < 1e-10 and not result["equivalent"]
    assert result["a_only_correct"] == 200 and result["b_only_correct"] == 0
    noisy = paired_comparison(rng.random(100) < 0.5, rng.random(100) < 0.5)
    assert noisy["ci_low"] < noisy["difference"] < noisy["ci_high"] and not noisy["equivalent"]
