"""What the cleaning checks before it runs: G and D fit each other, an encoder fits G, and
inputs are a finite float batch in [-1, 1] of the shape G makes. Each refusal says how to fix it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .execution import Execution
from .settings import Settings, Start


@torch.no_grad()
def pair_input_shape(
    generator: nn.Module,
    discriminator: nn.Module,
    latent_dim: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> tuple[int, ...]:
    """The shape of one input, as G makes it; a ValueError when D cannot score G's output."""
    sample = generator(torch.zeros(2, latent_dim, device=device, dtype=dtype))
    try:
        logits = discriminator(sample)
    except RuntimeError as err:
        raise ValueError(
            f"generator and discriminator do not match: D cannot take G's output of "
            f"shape {tuple(sample.shape[1:])} ({err})"
        ) from err
    if logits.reshape(-1).shape[0] != 2:
        raise ValueError(f"D must return one logit per input; got shape {tuple(logits.shape)}")
    return tuple(sample.shape[1:])


def checked_encoder(
    encoder: nn.Module | None, settings: Settings, latent_dim: int, execution: Execution
) -> nn.Module | None:
    """The prepared encoder an encoder start needs (None for a prior start); a ValueError
    when it is missing or maps to another latent size than G's."""
    if settings.start != Start.ENCODER.value:
        return None
    if encoder is None:
        raise ValueError("settings.start is 'encoder' but no encoder was given; pass encoder=E")
    encoder_dim = getattr(encoder, "latent_dim", None)
    if encoder_dim is None or int(encoder_dim) != latent_dim:
        raise ValueError(f"the encoder maps to {encoder_dim} latent dimensions; G takes {latent_dim}")
    return execution.prepare(encoder)


def check_inputs(x: Any, input_shape: tuple[int, ...]) -> torch.Tensor:
    """``x`` if it is a finite float batch of ``input_shape`` in [-1, 1]; else a ValueError that
    says how to fix it."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(
            f"inputs must be a floating-point torch.Tensor in [-1, 1], got dtype "
            f"{getattr(x, 'dtype', type(x))}; rescale uint8 pixels with x.float() / 127.5 - 1"
        )
    if x.dim() != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        raise ValueError(
            f"inputs must have shape (N, {', '.join(map(str, input_shape))}) to match "
            f"the generator, got {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or not torch.isfinite(x).all():
        raise ValueError("inputs are empty or contain NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if x.dim() == 4 and (low < -1 - 1e-4 or high > 1 + 1e-4):  # images live in [-1, 1]
        # [0, 1] pixels pass this check unseen (they lie inside [-1, 1]); [0, 255] ones do not.
        hint = " (they look like [0, 255] pixels: use x / 127.5 - 1)" if high > 1.5 else ""
        raise ValueError(f"inputs must lie in [-1, 1], got [{low:.3g}, {high:.3g}]{hint}")
    return x
