"""The exact model rewrites behind the fast cleaning path."""

import pytest
import torch
from torch import nn

from cowboy_core import Cowboy, Execution
from cowboy_core.execution import fold_batchnorm, subpixel_conv, subpixel_convs, subpixel_transpose
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator, freeze
from cowboy_core.settings import Settings


def trained_looking_gan(channels: int, size: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    g = DCGANGenerator(channels=channels, image_size=size, latent_dim=16, width=8)
    d = DCGANDiscriminator(channels=channels, image_size=size, width=8)
    g.train(), d.train()
    with torch.no_grad():  # non-trivial BN running statistics
        for _ in range(3):
            d(g(torch.randn(16, 16)))
    return freeze(g), freeze(d)


def test_fold_batchnorm_is_exact():
    g, d = trained_looking_gan(3, 32)
    z = torch.randn(5, 16)
    fg, fd = fold_batchnorm(g), fold_batchnorm(d)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fg.modules())
    assert torch.allclose(fg(z), g(z), atol=1e-5)
    assert torch.allclose(fd(g(z)), d(g(z)), atol=1e-4)


@pytest.mark.parametrize(("c_in", "c_out"), [(32, 1), (16, 3), (5, 7)])
def test_subpixel_layers_match_the_originals(c_in, c_out):
    torch.manual_seed(0)
    transpose = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    x = torch.randn(3, c_in, 7, 9)
    assert torch.allclose(subpixel_transpose(transpose)(x), transpose(x), atol=1e-5)
    conv = nn.Conv2d(c_out, c_in, 4, 2, 1)
    x = torch.randn(3, c_out, 28, 32)
    assert torch.allclose(subpixel_conv(conv)(x), conv(x), atol=1e-5)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_subpixel_dcgan_is_exact_and_rewrites_only_thin_layers(channels, size):
    g, d = trained_looking_gan(channels, size)
    fast_g, fast_d = subpixel_convs(fold_batchnorm(g)), subpixel_convs(fold_batchnorm(d))
    shuffles = [m for m in fast_g.modules() if isinstance(m, nn.PixelShuffle)]
    unshuffles = [m for m in fast_d.modules() if isinstance(m, nn.PixelUnshuffle)]
    assert len(shuffles) == 1 and len(unshuffles) == 1  # the image-side layer of each
    wide = [m for m in fast_g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert wide and all(m.out_channels > 4 for m in wide)
    z = torch.randn(5, 16)
    assert torch.allclose(fast_g(z), g(z), atol=1e-5)
    assert torch.allclose(fast_d(g(z)), d(g(z)), atol=1e-4)
    # The original models are untouched.
    assert any(isinstance(m, nn.ConvTranspose2d) and m.out_channels == channels for m in g.modules())


def test_fast_path_cleans_like_the_plain_path():
    g, d = trained_looking_gan(1, 28)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    slow = Execution(fold_bn=False, subpixel=False, channels_last=False)
    plain = Cowboy(g, d, Settings(steps=10), execution=slow).clean(x)
    fast = Cowboy(g, d, Settings(steps=10)).clean(x)
    assert torch.allclose(fast, plain, atol=1e-4)


@pytest.mark.slow
def test_compiled_loss_cleans_like_eager():
    """The torch.compile path (CUDA graphs on a GPU) computes the same steps as eager."""
    g, d = trained_looking_gan(1, 28)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    eager = Cowboy(g, d, Settings(steps=3)).clean(x)
    assert not Execution().compile  # opt-in until a GPU benchmark shows it pays
    compiled_defense = Cowboy(g, d, Settings(steps=3), execution=Execution(compile=True))
    assert torch.allclose(compiled_defense.clean(x), eager, atol=1e-4)
