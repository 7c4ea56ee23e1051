import math

import pytest
import torch
import torch.nn.functional as F

from cowboy_core import Cowboy, Execution, Objective, descend
from cowboy_core.choices import Optimizer
from cowboy_core.models import DCGANDiscriminator, freeze
from cowboy_core.restarts import initial_latents
from cowboy_core.settings import Settings
from cowboy_core.updates import GD, UPDATE_RULES, Adam, Momentum


def test_cleaning_lowers_the_objective(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(sigma=1.0, steps=30, lr=0.05, restarts=2))
    result = defense.clean_detailed(images, seed=3, record_at=[0])
    assert result.images.shape == images.shape
    assert torch.all(result.loss < result.snapshot_loss[0])
    assert result.images.min() >= -1 and result.images.max() <= 1


def test_defense_gan_gradient_is_the_reconstruction_gradient(tiny_gan, images):
    g, d = tiny_gan
    sigma = 0.7
    plain = Execution(fold_bn=False)
    baseline = Cowboy(g, d, Settings(sigma=sigma, method="defense_gan"), execution=plain)
    cowboy = Cowboy(g, d, Settings(sigma=sigma, method="cowboy"), execution=plain)
    assert baseline.objective.d_weight == 0 and cowboy.objective.d_weight == 1
    z = torch.randn(images.shape[0], g.latent_dim, requires_grad=True)

    def grad(loss: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(loss.sum(), z)[0]

    def recon() -> torch.Tensor:
        return (g(z) - images).square().flatten(1).sum(1) / (2 * sigma**2)

    def d_term() -> torch.Tensor:
        return -F.logsigmoid(d(g(z)))

    assert torch.allclose(grad(baseline.objective(z, images)[0]), grad(recon()), atol=1e-5)
    assert torch.allclose(grad(cowboy.objective(z, images)[0]), grad(recon() + d_term()), atol=1e-5)
    assert not torch.allclose(grad(recon() + d_term()), grad(recon()), atol=1e-5)


def test_best_restart_has_lowest_loss(tiny_gan, images):
    g, d = tiny_gan
    multi = Cowboy(g, d, Settings(steps=5, restarts=4)).clean_detailed(images, seed=0)
    starts = initial_latents(1, 4, g.latent_dim, seed=0)
    single = Cowboy(g, d, Settings(steps=5, restarts=1))
    # Each restart run on its own: the chosen one is the lowest, per image.
    each = torch.stack(
        [single.clean_detailed(images, latents=starts[k].repeat(len(images), 1)).loss for k in range(4)]
    )
    assert torch.allclose(multi.loss, each.min(dim=0).values, atol=1e-4)
    assert (each.max(dim=0).values > multi.loss + 1e-6).any()  # the restarts do differ
    _, fake = single.objective(multi.latents, images)
    assert torch.allclose(fake, multi.images, atol=1e-5)


def test_result_does_not_depend_on_batch_size(tiny_gan, images):
    g, d = tiny_gan
    a = Cowboy(g, d, Settings(steps=8, restarts=3), execution=Execution(batch_size=4096)).clean(
        images, seed=1
    )
    b = Cowboy(g, d, Settings(steps=8, restarts=3), execution=Execution(batch_size=3)).clean(images, seed=1)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam", "backtracking"])
def test_every_optimizer_descends(tiny_gan, images, optimizer):
    g, d = tiny_gan
    result = Cowboy(g, d, Settings(steps=20, lr=0.02, optimizer=optimizer)).clean_detailed(
        images, record_at=[0]
    )
    assert result.loss.mean() < result.snapshot_loss[0].mean()


def test_early_stop_freezes_rows_and_reports_steps(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(steps=200, lr=1e-6, early_stop_tol=0.5))
    result = defense.clean_detailed(images, record_at=[100])
    assert torch.all(result.steps_run == 100)  # compared at 50, frozen at 100
    assert result.snapshots[100].shape == images.shape


def test_update_rules_follow_their_formulas():
    z, grad = torch.ones(2, 3), torch.full((2, 3), 0.5)
    loss = torch.zeros(2)

    def row_loss(trial: torch.Tensor) -> torch.Tensor:
        return trial.square().sum(1)

    gd = GD(lr=0.1)
    gd.begin(z, row_loss)
    assert torch.allclose(gd.step(z, grad, loss, 0), z - 0.05)
    momentum = Momentum(lr=0.1, beta=0.9)
    momentum.begin(z, row_loss)
    first = momentum.step(z, grad, loss, 0)
    assert torch.allclose(momentum.step(first, grad, loss, 1), first - 0.1 * (0.9 * 0.5 + 0.5))
    adam = Adam(lr=0.1)
    adam.begin(z, row_loss)
    assert torch.allclose(adam.step(z, grad, loss, 0), z - 0.1, atol=1e-6)  # bias-corrected: one lr step
    assert set(UPDATE_RULES) == set(Optimizer)


def test_weighted_objective_is_the_paper_objective_scaled(tiny_gan, images):
    """L'(z) = 1/2 ||G(z)-x||^2 + sigma^2 (-log D) is sigma^2 times eq. (4): d_weight is the
    one place the D term's weight lives."""
    g, d = tiny_gan
    z = torch.randn(images.shape[0], g.latent_dim)
    sigma = 2.0
    paper, _ = Objective(g, d, sigma=sigma)(z, images)
    weighted, _ = Objective(g, d, sigma=1.0, d_weight=sigma**2)(z, images)
    assert torch.allclose(weighted, sigma**2 * paper, rtol=1e-5)


def test_lambda_form_weights_only_the_d_term(tiny_gan, images):
    g, d = tiny_gan
    z = torch.randn(images.shape[0], g.latent_dim)
    weighted = Cowboy(g, d, Settings(d_weight=4.0)).objective
    paper = Cowboy(g, d, Settings(sigma=2.0)).objective
    assert torch.allclose(weighted(z, images)[0], 4.0 * paper(z, images)[0], rtol=1e-5)
    baseline = Cowboy(g, d, Settings(d_weight=4.0, method="defense_gan")).objective
    assert baseline.d_weight == 0 and baseline.sigma == 1.0  # reconstruction step unchanged by d_weight
    with pytest.raises(ValueError, match="d_weight"):
        Cowboy(g, d, Settings(d_weight=-1.0))


def test_unrolled_descent_gradient_matches_finite_differences():
    """With create_graph, d G(z_m) / dx through every step is exact (double backward)."""
    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh()).double()
    d = torch.nn.Sequential(torch.nn.Linear(3, 1)).double()
    objective = Objective(g, d, sigma=1.0)
    z0 = torch.randn(2, 2, dtype=torch.float64)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    direction = torch.randn(2, 3, dtype=torch.float64)

    def cleaned(inputs: torch.Tensor, graph: bool) -> torch.Tensor:
        run = descend(objective, GD(lr=0.1), z0, inputs, steps=5, create_graph=graph)
        return g(run.snapshots[5])

    (grad,) = torch.autograd.grad((cleaned(x, True) * direction).sum(), x)
    h = 1e-6
    with torch.no_grad():
        plus = (cleaned(x + h * direction.sign(), False) * direction).sum()
        minus = (cleaned(x - h * direction.sign(), False) * direction).sum()
    assert float((grad * direction.sign()).sum()) == pytest.approx(float((plus - minus) / (2 * h)), rel=1e-5)


def test_calibrate_sets_the_lp_threshold_and_refuses_weak_attacks(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d)
    calibration = defense.calibrate(images, p=2.0)
    scores = defense.score(images)
    assert defense.threshold == pytest.approx(float(scores.square().mean().sqrt()))
    assert calibration.threshold == defense.threshold and defense.threshold_power == 2.0
    with pytest.raises(ValueError, match="footnote 2"):
        defense.calibrate(images, accuracy_clean=0.9, accuracy_adversarial=0.8)


def test_defence_card_round_trips(tiny_gan, images, tmp_path):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(sigma=0.5, steps=7, restarts=2, optimizer="adam"))
    with pytest.raises(ValueError, match="threshold"):
        defense.save(tmp_path / "card.safetensors")
    defense.calibrate(images)
    defense.save(tmp_path / "card.safetensors", provenance={"threshold": "test"})
    loaded = Cowboy.load(tmp_path / "card.safetensors")
    assert loaded.settings == defense.settings and loaded.threshold == defense.threshold
    assert loaded.card["provenance"] == {"threshold": "test"}
    assert torch.equal(loaded.clean(images, seed=2), defense.clean(images, seed=2))
    assert Cowboy.load(tmp_path / "card.safetensors", method="defense_gan").objective.d_weight == 0


def test_detect_uses_threshold(tiny_gan, images):
    g, d = tiny_gan
    scores = Cowboy(g, d).score(images)
    middle = float(scores.median())
    flags = Cowboy(g, d, threshold=middle).detect(images)
    assert torch.equal(flags, scores < middle)
    assert 0 < int(flags.sum()) < len(images)  # flags some, not all: below the threshold only
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
        Cowboy(g, d, Settings(**kwargs))


def test_clean_works_inside_no_grad(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(steps=4))
    expected = defense.clean(images)
    with torch.no_grad():
        assert torch.equal(defense.clean(images), expected)
