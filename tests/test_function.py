"""The deployed defence is a function of its input: bit-identical alone, in a batch and in any
chunking (on trained models: the tiny pipeline's GAN and classifier), and backtracking GD is
stable by construction (L never rises)."""

import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier, Execution
from cowboy_core.io import load_models
from cowboy_core.restarts import initial_latents
from cowboy_core.settings import Settings
from cowboy_pipeline.runtime import load_split


def _alone(call, x):
    return torch.cat([call(x[i : i + 1]) for i in range(x.shape[0])])


def _chunks_of_7(call, x):
    return torch.cat([call(x[i : i + 7]) for i in range(0, x.shape[0], 7)])


@pytest.fixture(scope="module")
def trained(tiny_run):
    models, _ = load_models(tiny_run / "results/models/fashion_mnist/gan/step20.safetensors")
    (classifier,) = load_models(tiny_run / "results/models/fashion_mnist/classifier.safetensors")[0].values()
    images = load_split(str(tiny_run / "results/data/fashion_mnist/eval.safetensors"), "val")[0][:12]
    return models["generator"], models["discriminator"], classifier.eval(), images


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["gd", "backtracking", "momentum"])
@pytest.mark.parametrize("restarts", [1, 3])
def test_cleaning_is_the_same_bits_alone_in_a_batch_and_in_chunks(trained, optimizer, restarts):
    g, d, _, x = trained
    # Chunks of 8 rows: 12 images x 1 or 3 restarts span several chunks, the last one padded,
    # and an image alone (1 or 3 rows) is padded to 8.
    defense = Cowboy(
        g,
        d,
        Settings(steps=6, lr=0.05, restarts=restarts, optimizer=optimizer),
        execution=Execution(batch_size=8),
    )
    together = defense.clean(x, seed=4)
    assert torch.equal(together, _alone(lambda rows: defense.clean(rows, seed=4), x))
    assert torch.equal(together, _chunks_of_7(lambda rows: defense.clean(rows, seed=4), x))
    detailed = defense.clean_detailed(x, seed=4, record_at=[3])
    alone = _alone(lambda rows: defense.clean_detailed(rows, seed=4, record_at=[3]).snapshots[3], x)
    assert torch.equal(detailed.snapshots[3], alone)
    unrolled = defense.clean_unrolled(x.clone().requires_grad_(True), seed=4)
    assert torch.equal(unrolled.detach(), together)  # the attack sees the deployed values
    assert torch.equal(defense.score(x), _alone(defense.score, x))


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["clean-all", "detect-then-clean", "reject"])
def test_defended_classifier_answers_the_same_whatever_shares_the_call(trained, policy):
    g, d, classifier, x = trained
    defense = Cowboy(g, d, Settings(steps=4, restarts=2), execution=Execution(batch_size=8))
    defense.threshold = float(defense.score(x).median())
    model = DefendedClassifier(classifier, defense, policy)
    together = model(x)
    alone = _alone(model, x)
    assert torch.equal(together.isnan(), alone.isnan())
    assert torch.equal(together.nan_to_num(), alone.nan_to_num())
    assert torch.equal(together.nan_to_num(), _chunks_of_7(model, x).nan_to_num())


def test_early_stopped_rows_freeze_without_changing_their_neighbours(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(
        g, d, Settings(steps=120, lr=0.02, early_stop_tol=0.2), execution=Execution(batch_size=4)
    )
    together = defense.clean_detailed(images)
    alone = [defense.clean_detailed(images[i : i + 1]) for i in range(len(images))]
    assert torch.equal(together.images, torch.cat([a.images for a in alone]))
    assert torch.equal(together.steps_run, torch.cat([a.steps_run for a in alone]))
    assert (together.steps_run < 120).any()  # some rows did stop early


def test_backtracking_never_raises_the_loss_where_plain_gd_diverges(tiny_gan, images):
    g, d = tiny_gan
    record = list(range(0, 31))
    stable = Cowboy(g, d, Settings(steps=30, lr=50.0, optimizer="backtracking")).clean_detailed(
        images, record_at=record
    )
    losses = torch.stack([stable.snapshot_loss[s] for s in record])
    assert torch.all(losses[1:] <= losses[:-1])  # per row, every step
    assert torch.all(losses[-1] < losses[0])  # and it does descend
    plain = Cowboy(g, d, Settings(steps=30, lr=50.0, optimizer="gd")).clean_detailed(images, record_at=record)
    rises = torch.stack([plain.snapshot_loss[s] for s in record]).diff(dim=0) > 0
    assert rises.any()  # the same step size without the line search oscillates


def test_restart_starts_do_not_depend_on_the_batch(tiny_gan):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(restarts=3))
    starts = initial_latents(5, 3, defense.latent_dim, seed=7)
    assert torch.equal(starts[:3], initial_latents(1, 3, defense.latent_dim, seed=7))
    assert torch.equal(starts[3:6], starts[:3])
    assert not torch.equal(starts[0], starts[1])
    assert not torch.equal(initial_latents(1, 3, defense.latent_dim, seed=8), starts[:3])
