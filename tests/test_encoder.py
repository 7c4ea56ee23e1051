"""The encoder start (issue 22): restart 0 descends from E(x), so that with one restart the
cleaning needs no seed; the card carries E; the attack's gradient flows through E."""

import pytest
import torch

from cowboy_core import Cowboy
from cowboy_core.card import CardError
from cowboy_core.diagnostics import step_sharpness
from cowboy_core.models import DCGANEncoder, freeze
from cowboy_core.settings import Settings
from cowboy_core.training import train_encoder

from .conftest import refusal, tamper


@pytest.fixture
def encoder() -> DCGANEncoder:
    torch.manual_seed(3)
    return freeze(DCGANEncoder(channels=1, image_size=28, latent_dim=8, width=8))  # type: ignore[return-value]


def _defense(tiny_gan, encoder, **settings):  # type: ignore[no-untyped-def]
    return Cowboy(*tiny_gan, Settings(start="encoder", **{"steps": 3, **settings}), encoder=encoder)


def test_restart_0_starts_from_the_encoders_guess_and_the_rest_from_the_seed(tiny_gan, encoder, images):
    defense = _defense(tiny_gan, encoder, restarts=3)
    z0 = defense.start_latents(images, seed=4)
    prior = Cowboy(*tiny_gan, Settings(restarts=3)).start_latents(images, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(z0[::3], encoder(images), rtol=1e-5, atol=1e-6)
    assert torch.equal(z0[1::3], prior[1::3]) and torch.equal(z0[2::3], prior[2::3])


def test_with_one_restart_the_cleaning_needs_no_seed_and_ignores_the_batch(tiny_gan, encoder, images):
    defense = _defense(tiny_gan, encoder)
    together = defense.clean(images, seed=0)
    assert torch.equal(defense.clean(images, seed=123), together)
    for i in range(images.shape[0]):
        assert torch.equal(defense.clean(images[i : i + 1])[0], together[i])
    assert not torch.equal(together, Cowboy(*tiny_gan, Settings(steps=3)).clean(images))


def test_the_step_curvature_is_measured_along_the_encoder_started_descent(tiny_gan, encoder, images):
    """The chooser's step x curvature must follow the descent the card deploys, from E(x)."""
    prior = step_sharpness(Cowboy(*tiny_gan, Settings(steps=3)), images, seed=0)
    from_encoder = step_sharpness(_defense(tiny_gan, encoder), images, seed=0)
    assert from_encoder.shape == prior.shape and not torch.equal(from_encoder, prior)
    assert torch.equal(step_sharpness(_defense(tiny_gan, encoder), images, seed=9), from_encoder)


def test_the_unrolled_gradient_flows_through_the_encoder(tiny_gan, encoder, images):
    x = images[:2].clone().requires_grad_(True)
    start = _defense(tiny_gan, encoder, steps=0).clean_unrolled(x)  # G(E(x)): depends on x via E
    assert float(torch.autograd.grad(start.sum(), x)[0].abs().sum()) > 0
    assert torch.equal(start.detach(), _defense(tiny_gan, encoder, steps=0).clean(images[:2]))
    prior = Cowboy(*tiny_gan, Settings(steps=0)).clean_unrolled(x)  # G(z0): x only picks the restart
    assert not prior.requires_grad


def test_a_card_carries_its_encoder_and_refuses_a_mismatch(tiny_gan, encoder, images, tmp_path):
    defense = _defense(tiny_gan, encoder)
    defense.threshold = 0.5
    defense.save(tmp_path / "card.safetensors")
    loaded = Cowboy.load(tmp_path / "card.safetensors")
    assert loaded.settings.start == "encoder" and torch.equal(loaded.clean(images), defense.clean(images))
    prior = tamper(tmp_path / "card.safetensors", lambda card: card["settings"].update(start="prior"))
    assert refusal(CardError, Cowboy.load, prior) == (
        f"{prior}: the card holds an encoder that its settings do not use; set settings.start to 'encoder'"
    )
    plain = Cowboy(*tiny_gan, Settings(steps=3), threshold=0.5)
    plain.save(tmp_path / "plain.safetensors")
    wants = tamper(tmp_path / "plain.safetensors", lambda card: card["settings"].update(start="encoder"))
    assert refusal(CardError, Cowboy.load, wants) == (
        f"{wants}: settings.start is 'encoder' but the card holds no encoder; write it with its encoder"
    )


def test_an_unused_encoder_is_not_written_to_the_card(tiny_gan, encoder, images, tmp_path):
    unused = Cowboy(*tiny_gan, Settings(steps=3), threshold=0.5, encoder=encoder)
    unused.save(tmp_path / "card.safetensors")  # a card holding E would need start 'encoder'
    assert Cowboy.load(tmp_path / "card.safetensors").encoder is None


def test_changed_settings_keep_the_encoder_start(tiny_gan, encoder, images):
    defense = _defense(tiny_gan, encoder)
    longer = defense.with_settings(steps=5)
    assert longer.encoder is not None and longer.settings.steps == 5
    assert torch.equal(longer.clean(images), _defense(tiny_gan, encoder, steps=5).clean(images))


def test_an_encoder_start_needs_an_encoder_of_gs_latent_size(tiny_gan, images):
    with pytest.raises(ValueError, match="no encoder was given"):
        Cowboy(*tiny_gan, Settings(start="encoder"))
    wide = DCGANEncoder(channels=1, image_size=28, latent_dim=9, width=8)
    with pytest.raises(ValueError, match="maps to 9 latent dimensions; G takes 8"):
        Cowboy(*tiny_gan, Settings(start="encoder"), encoder=wide)


def test_training_the_encoder_lowers_its_reconstruction_error(tiny_gan, images):
    generator = tiny_gan[0]
    torch.manual_seed(0)
    encoder = DCGANEncoder(channels=1, image_size=28, latent_dim=8, width=8)
    with torch.no_grad():
        real = generator(torch.randn(64, 8, generator=torch.Generator().manual_seed(1)))  # G can make these

    def error() -> float:
        with torch.no_grad():
            return float((generator(encoder.eval()(real)) - real).square().mean())

    before = error()
    train_encoder(encoder, generator, real, steps=60, batch_size=16, lr=3e-3)
    assert error() < 0.7 * before
