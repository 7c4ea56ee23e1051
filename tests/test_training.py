import pytest
import torch

from cowboy_core.io import load_state, save_state
from cowboy_core.models import Classifier, DCGANDiscriminator, DCGANGenerator
from cowboy_core.training import GANTrainer, TrainingDivergedError, predict, train_classifier
from cowboy_pipeline.toy import ToyClassifier, two_gaussians


def _gan(seed: int = 0) -> GANTrainer:
    torch.manual_seed(seed)
    g = DCGANGenerator(channels=1, image_size=28, latent_dim=8, width=8)
    d = DCGANDiscriminator(channels=1, image_size=28, width=8)
    return GANTrainer(g, d, batch_size=8, seed=seed)


DATA = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_resumed_training_equals_uninterrupted(tmp_path):
    straight = _gan()
    straight.train_until(DATA, 6)

    first = _gan()
    first.train_until(DATA, 3)
    save_state(tmp_path / "s.pt", first.state_dict())
    resumed = _gan(seed=99)  # different init: everything must come from the state
    resumed.load_state_dict(load_state(tmp_path / "s.pt"))
    resumed.train_until(DATA, 6)

    for a, b in zip(
        straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    for a, b in zip(
        straight.discriminator.state_dict().values(), resumed.discriminator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert resumed.step == 6


def test_divergence_names_the_step():
    trainer = _gan()
    bad = DATA.clone()
    bad[:] = float("nan")
    with pytest.raises(TrainingDivergedError, match="at step 1"):
        trainer.train_until(bad, 5)


def test_classifier_learns_the_toy():
    points, labels = two_gaussians(512, seed=0)
    model = train_classifier(ToyClassifier(), points, labels, steps=100, batch_size=64, lr=1e-2)
    assert (predict(model, points) == labels).float().mean() > 0.95


def test_classifier_has_batchnorm_dropout_and_xavier():
    model = Classifier(channels=3, image_size=32)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"BatchNorm2d", "Dropout", "Conv2d"} <= kinds
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    conv = model.features[0]
    bound = (6 / (conv.in_channels * 9 + conv.out_channels * 9)) ** 0.5
    assert conv.weight.abs().max() <= bound and torch.all(conv.bias == 0)


def test_pgd_adversary_stays_in_its_ball_and_the_pixel_range_and_raises_the_loss():
    from cowboy_core.training import pgd_adversary

    torch.manual_seed(0)
    model = Classifier(channels=1, image_size=28, width=4).eval()
    x = DATA[:16]
    y = model(x).argmax(1)
    x_adv = pgd_adversary(0.1, steps=5)(model, x, y, torch.Generator().manual_seed(0))
    assert float((x_adv - x).abs().max()) <= 0.1 * 2 + 1e-6  # epsilon 0.1 in [0, 1] pixels
    assert float(x_adv.min()) >= -1 and float(x_adv.max()) <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(model(x_adv), y) > loss(model(x), y)
    with pytest.raises(ValueError, match=r"^PGD needs 0 < epsilon <= 1"):
        pgd_adversary(0.0, steps=5)


def test_adversarial_training_attacks_each_minibatch_in_eval_mode_and_trains_on_what_it_returns():
    labels = torch.arange(DATA.shape[0]) % 10
    modes = []

    def identity(model, x, y, rng):  # type: ignore[no-untyped-def]
        modes.append(model.training)
        return x

    plain, attacked = (Classifier(channels=1, image_size=28, width=4) for _ in range(2))
    attacked.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    train_classifier(plain, DATA, labels, steps=3, batch_size=8)
    torch.manual_seed(1)
    train_classifier(attacked, DATA, labels, steps=3, batch_size=8, adversary=identity)
    assert modes == [False, False, False]
    for a, b in zip(plain.state_dict().values(), attacked.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the identity attack leaves training exactly as it was
    flipped = Classifier(channels=1, image_size=28, width=4)
    flipped.load_state_dict(attacked.state_dict())
    torch.manual_seed(2)
    train_classifier(attacked, DATA, labels, steps=1, batch_size=8, adversary=identity)
    torch.manual_seed(2)
    train_classifier(flipped, DATA, labels, steps=1, batch_size=8, adversary=lambda m, x, y, r: -x)
    weights = "features.0.weight"
    assert not torch.equal(flipped.state_dict()[weights], attacked.state_dict()[weights])
