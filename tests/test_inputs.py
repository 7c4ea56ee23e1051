"""What the cleaning refuses before it runs (cowboy_core.inputs), word for word and at each
edge: a refusal is a user-facing contract, and an off-by-one in a bound lets bad pixels in."""

import pytest
import torch
from torch import nn

from cowboy_core.execution import Execution
from cowboy_core.inputs import check_inputs, checked_encoder
from cowboy_core.settings import Settings

from .conftest import refusal

SHAPE = (1, 2, 2)


def images(low: float, high: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Two 1x2x2 images whose smallest pixel is ``low`` and largest ``high``."""
    x = torch.zeros(2, *SHAPE, dtype=dtype)
    x[0, 0, 0, 0], x[1, 0, 1, 1] = low, high
    return x


@pytest.mark.parametrize(
    ("x", "named"),
    [([[0.0]], "<class 'list'>"), (torch.zeros(2, *SHAPE, dtype=torch.uint8), "torch.uint8")],
    ids=["a list", "uint8 pixels"],
)
def test_a_batch_that_is_not_a_float_tensor_is_refused_naming_its_type(x, named):
    assert refusal(ValueError, check_inputs, x, SHAPE) == (
        f"inputs must be a floating-point torch.Tensor in [-1, 1], got dtype {named}; "
        "rescale uint8 pixels with x.float() / 127.5 - 1"
    )


@pytest.mark.parametrize("x", [torch.zeros(0, *SHAPE), images(0.0, float("nan"))], ids=["empty", "nan"])
def test_an_empty_or_non_finite_batch_is_refused(x):
    assert refusal(ValueError, check_inputs, x, SHAPE) == "inputs are empty or contain NaN or infinite values"


@pytest.mark.parametrize(
    ("low", "high", "hint"),
    [
        (-1.5, 0.5, ""),
        (-2.5, 0.5, ""),
        (0.0, 1.2, ""),
        (0.0, 1.5, ""),
        (0.0, 2.0, " (they look like [0, 255] pixels: use x / 127.5 - 1)"),
        (0.0, 255.0, " (they look like [0, 255] pixels: use x / 127.5 - 1)"),
    ],
)
def test_pixels_outside_the_range_are_refused_with_a_hint_only_for_0_255(low, high, hint):
    assert refusal(ValueError, check_inputs, images(low, high), SHAPE) == (
        f"inputs must lie in [-1, 1], got [{low:.3g}, {high:.3g}]{hint}"
    )


def test_the_range_admits_its_rounding_slack_and_not_a_hair_more():
    # float64, so that the pixel equals the bound exactly: the bound itself is inside.
    edge = images(-1 - 1e-4, 1 + 1e-4, torch.float64)
    assert check_inputs(edge, SHAPE) is edge
    for low, high in ((-1 - 2e-4, 1.0), (-1.0, 1 + 2e-4)):
        with pytest.raises(ValueError, match="inputs must lie in"):
            check_inputs(images(low, high, torch.float64), SHAPE)


class NamedEncoder(nn.Module):
    def __init__(self, latent_dim: int | None) -> None:
        super().__init__()
        if latent_dim is not None:
            self.latent_dim = latent_dim
        self.layer = nn.Linear(1, 1)


def test_an_encoder_start_needs_an_encoder_of_g_s_latent_size():
    settings, execution = Settings(start="encoder"), Execution()
    assert refusal(ValueError, checked_encoder, None, settings, 1, execution) == (
        "settings.start is 'encoder' but no encoder was given; pass encoder=E"
    )
    for dim in (None, -1, 2):
        assert refusal(ValueError, checked_encoder, NamedEncoder(dim), settings, 1, execution) == (
            f"the encoder maps to {dim} latent dimensions; G takes 1"
        )
    encoder = NamedEncoder(1)
    prepared = checked_encoder(encoder, settings, 1, execution)  # a prepared copy for inference
    assert prepared is not None and not prepared.training
    assert torch.equal(prepared.layer.weight, encoder.layer.weight)
    assert checked_encoder(encoder, Settings(), 1, execution) is None  # a prior start has no use for it
