"""The paper's claim 2 on the two-Gaussians toy, measured (section 3.3, Figures 1-2)."""

import pytest

from cowboy_pipeline.toy import run_toy

pytestmark = pytest.mark.slow  # trains the toy's three models (about a minute)


@pytest.fixture(scope="module")
def toy():
    return run_toy(
        samples=2000,
        classifier_steps=300,
        gan_steps=3000,
        epsilon=3.0,
        sigma=0.5,
        cleaning_steps=200,
        cleaning_lr=0.05,
        seed=0,
    )


def test_discriminator_scores_real_above_fgsm(toy):
    m = toy.metrics
    assert m["mean_d_real"] > m["mean_d_perturbed"]
    assert m["roc_auc"] > 0.6


def test_fgsm_moves_points_off_the_manifold_and_cleaning_brings_them_back(toy):
    m = toy.metrics
    assert m["distance_perturbed"] > m["distance_real"]
    assert m["distance_cleaned"] < m["distance_perturbed"]
    assert m["accuracy_perturbed"] < m["accuracy_real"]
