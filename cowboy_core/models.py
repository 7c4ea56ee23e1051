"""The paper's networks: a small CNN classifier, and DCGAN G and D.

Every model is rebuilt from a plain ``arch`` dict, which checkpoints store beside the
weights, so that loading into a mismatched architecture is refused instead of guessed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

Arch = dict[str, Any]

SUPPORTED_IMAGES = {(1, 28), (3, 32)}


def _xavier_init(module: nn.Module) -> None:
    # The paper initialises every weight with Xavier (Glorot & Bengio, 2010).
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _check_image(channels: int, size: int) -> None:
    if (channels, size) not in SUPPORTED_IMAGES:
        raise ValueError(
            f"unsupported image shape {channels}x{size}x{size}; "
            "the models support 1x28x28 (MNIST, Fashion-MNIST) and 3x32x32 (CIFAR-10, SVHN)"
        )


class Classifier(nn.Module):
    """Simple CNN with batch norm and dropout (the paper's target classifier).

    Args:
        channels: input channels (1 or 3).
        image_size: 28 or 32.
        num_classes: number of output logits.
        width: channels of the first convolution.
    """

    def __init__(self, *, channels: int, image_size: int, num_classes: int = 10, width: int = 32):
        super().__init__()
        _check_image(channels, image_size)
        self.arch: Arch = {
            "kind": "classifier",
            "channels": channels,
            "image_size": image_size,
            "num_classes": num_classes,
            "width": width,
        }
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(2 * w * side * side, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )
        self.apply(_xavier_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al., 2015): z -> image in [-1, 1] via tanh.

    Args:
        channels: image channels (1 or 3).
        image_size: 28 (two upsamplings from 7x7) or 32 (three from 4x4).
        latent_dim: size of z, drawn from N(0, I).
        width: channels of the last hidden feature map.
    """

    def __init__(self, *, channels: int, image_size: int, latent_dim: int = 100, width: int = 64):
        super().__init__()
        _check_image(channels, image_size)
        self.arch: Arch = {
            "kind": "dcgan_generator",
            "channels": channels,
            "image_size": image_size,
            "latent_dim": latent_dim,
            "width": width,
        }
        self.latent_dim = latent_dim
        ups = 2 if image_size == 28 else 3
        self.base = image_size // 2**ups
        self.base_channels = width * 2 ** (ups - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, self.base_channels * self.base * self.base, bias=False),
            nn.BatchNorm1d(self.base_channels * self.base * self.base),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        c = self.base_channels
        for _ in range(ups - 1):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(),
            ]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)
        self.apply(_xavier_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.base_channels, self.base, self.base)
        return self.upsample(h)  # type: ignore[no-any-return]


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: strided convs with LeakyReLU; returns the logit of D(x).

    Args:
        channels: image channels (1 or 3).
        image_size: 28 or 32.
        width: channels of the first convolution.
    """

    def __init__(self, *, channels: int, image_size: int, width: int = 64):
        super().__init__()
        _check_image(channels, image_size)
        self.arch: Arch = {
            "kind": "dcgan_discriminator",
            "channels": channels,
            "image_size": image_size,
            "width": width,
        }
        downs = 2 if image_size == 28 else 3
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        c = width
        for _ in range(downs - 1):
            layers += [
                nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(2 * c),
                nn.LeakyReLU(0.2),
            ]
            c *= 2
        side = image_size // 2**downs
        layers += [nn.Flatten(), nn.Linear(c * side * side, 1)]
        self.net = nn.Sequential(*layers)
        self.apply(_xavier_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # type: ignore[no-any-return]


class DCGANEncoder(nn.Module):
    """E: an input to a latent z, so that cleaning can start from z0 = E(x) instead of the
    prior. D's strided convolutions, ending in ``latent_dim`` outputs instead of one logit.

    Args:
        channels: image channels (1 or 3).
        image_size: 28 or 32.
        latent_dim: the generator's latent size.
        width: channels of the first convolution.
    """

    def __init__(self, *, channels: int, image_size: int, latent_dim: int, width: int = 64):
        super().__init__()
        _check_image(channels, image_size)
        self.arch: Arch = {
            "kind": "dcgan_encoder",
            "channels": channels,
            "image_size": image_size,
            "latent_dim": latent_dim,
            "width": width,
        }
        self.latent_dim = latent_dim
        body = DCGANDiscriminator(channels=channels, image_size=image_size, width=width).net
        last = body[-1]
        assert isinstance(last, nn.Linear)
        self.net = nn.Sequential(*body[:-1], nn.Linear(last.in_features, latent_dim))
        self.apply(_xavier_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


_BUILDERS: dict[str, type[nn.Module]] = {
    "classifier": Classifier,
    "dcgan_generator": DCGANGenerator,
    "dcgan_discriminator": DCGANDiscriminator,
    "dcgan_encoder": DCGANEncoder,
}


def build_model(arch: Arch) -> nn.Module:
    """Instantiate a model from the ``arch`` dict stored in its checkpoint."""
    kwargs = dict(arch)
    kind = kwargs.pop("kind", None)
    if kind not in _BUILDERS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(_BUILDERS)}")
    try:
        return _BUILDERS[kind](**kwargs)
    except TypeError as err:
        raise ValueError(f"architecture {arch} does not fit {kind}: {err}") from err


def model_arch(model: nn.Module) -> Arch:
    """The ``arch`` dict of a cowboy model."""
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict):
        raise TypeError(f"{type(model).__name__} has no cowboy 'arch'; build it from cowboy_core.models")
    return dict(arch)


def freeze(model: nn.Module) -> nn.Module:
    """Put a model in eval mode with no parameter gradients (for attacks-free inference and cleaning)."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
