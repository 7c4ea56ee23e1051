import math

import pytest
import torch
import torch.nn.functional as F

from cowboy_core import Cowboy
from cowboy_core.models import DCGANDiscriminator, freeze


def test_cleaning_lowers_the_objective(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, sigma=1.0, steps=30, lr=0.05, restarts=2)
    result = defense.clean_detailed(images, seed=3, record_at=[0])
    assert result.images.shape == images.shape
    assert torch.all(result.loss < result.snapshot_loss[0])
    assert result.images.min() >= -1 and result.images.max() <= 1


def test_defense_gan_gradient_is_the_reconstruction_gradient(tiny_gan, images):
    g, d = tiny_gan
    sigma = 0.7
    baseline = Cowboy(g, d, sigma=sigma, method="defense_gan", fold_bn=False)
    cowboy = Cowboy(g, d, sigma=sigma, method="cowboy", fold_bn=False)
    z = torch.randn(images.shape[0], g.latent_dim, requires_grad=True)

    def grad(loss: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(loss.sum(), z)[0]

    def recon() -> torch.Tensor:
        return (g(z) - images).square().flatten(1).sum(1) / (2 * sigma**2)

    def d_term() -> torch.Tensor:
        return -F.logsigmoid(d(g(z)))

    assert torch.allclose(grad(baseline.loss(z, images)[0]), grad(recon()), atol=1e-5)
    assert torch.allclose(grad(cowboy.loss(z, images)[0]), grad(recon() + d_term()), atol=1e-5)
    assert not torch.allclose(grad(recon() + d_term()), grad(recon()), atol=1e-5)


def test_best_restart_has_lowest_loss(tiny_gan, images):
    g, d = tiny_gan
    multi = Cowboy(g, d, steps=5, restarts=4).clean_detailed(images, seed=0)
    # Recompute L for the chosen latents: it must equal the reported loss.
    loss, fake = Cowboy(g, d, steps=5).loss(multi.latents, images)
    assert torch.allclose(loss, multi.loss, atol=1e-4)
    assert torch.allclose(fake, multi.images, atol=1e-5)


def test_result_does_not_depend_on_batch_size(tiny_gan, images):
    g, d = tiny_gan
    a = Cowboy(g, d, steps=8, restarts=3, batch_size=4096).clean(images, seed=1)
    b = Cowboy(g, d, steps=8, restarts=3, batch_size=3).clean(images, seed=1)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_every_optimizer_descends(tiny_gan, images, optimizer):
    g, d = tiny_gan
    result = Cowboy(g, d, steps=20, lr=0.02, optimizer=optimizer).clean_detailed(images, record_at=[0])
    assert result.loss.mean() < result.snapshot_loss[0].mean()


def test_early_stop_freezes_rows_and_reports_steps(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, steps=200, lr=1e-6, early_stop_tol=0.5, check_every=10)
    result = defense.clean_detailed(images, record_at=[100])
    assert torch.all(result.steps_run < 200)
    assert result.snapshots[100].shape == images.shape


def test_bf16_stays_close_to_fp32(tiny_gan, images):
    g, d = tiny_gan
    a = Cowboy(g, d, steps=5, precision="fp32").clean(images)
    b = Cowboy(g, d, steps=5, precision="bf16", channels_last=True).clean(images)
    assert (a - b).abs().max() < 0.1


def test_detect_uses_threshold(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, threshold=2.0)
    assert defense.detect(images).all()
    scores = defense.score(images)
    assert scores.dtype == torch.float64 and torch.all((scores > 0) & (scores < 1))
    with pytest.raises(ValueError, match="threshold"):
        Cowboy(g, d).detect(images)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(2, 3, 28, 28), r"shape \(N, 1, 28, 28\)"),
        (torch.zeros(2, 28, 28), "shape"),
        (torch.full((2, 1, 28, 28), 200.0), r"x / 127.5 - 1"),
        (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "dtype"),
        (torch.zeros(0, 1, 28, 28), "empty"),
    ],
)
def test_bad_inputs_are_refused(tiny_gan, bad, message):
    g, d = tiny_gan
    defense = Cowboy(g, d, threshold=0.5)
    for call in (defense.clean, defense.score, defense.detect):
        with pytest.raises(ValueError, match=message):
            call(bad)


def test_mismatched_pair_is_refused(tiny_gan):
    g, _ = tiny_gan
    other_d = freeze(DCGANDiscriminator(channels=3, image_size=32, width=8))
    with pytest.raises(ValueError, match="do not match"):
        Cowboy(g, other_d)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sigma": 0},
        {"sigma": -1},
        {"sigma": math.inf},
        {"steps": -1},
        {"lr": 0},
        {"restarts": 0},
        {"method": "magic"},
        {"optimizer": "sgdx"},
    ],
)
def test_bad_hyperparameters_are_refused(tiny_gan, kwargs):
    g, d = tiny_gan
    with pytest.raises(ValueError):
        Cowboy(g, d, **kwargs)


def test_clean_works_inside_no_grad(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, steps=4)
    expected = defense.clean(images)
    with torch.no_grad():
        assert torch.equal(defense.clean(images), expected)
