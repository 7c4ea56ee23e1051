"""What a Cowboy checks and fixes when it is built, what its progress bar reports, and the
descent loop's edges the third mutation run found untested (docs/quality/mutation.md)."""

import torch
from torch import nn

from cowboy_core import Cowboy
from cowboy_core.card import read_card
from cowboy_core.cleaning import objective_for
from cowboy_core.descent import EARLY_STOP_EVERY, Objective, descend
from cowboy_core.execution import Execution
from cowboy_core.settings import Settings
from cowboy_core.updates import GD

from .conftest import refusal


class FixedGenerator(nn.Module):
    """A generator with no weights: G(z) tiles z's mean over a 1x2x2 image."""

    def __init__(self, latent_dim: int | None) -> None:
        super().__init__()
        if latent_dim is not None:
            self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z.mean(1))[:, None, None, None].expand(-1, 1, 2, 2)


class MeanDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.flatten(1).mean(1)


def test_a_generator_needs_a_positive_latent_dim_and_may_have_no_weights():
    for latent_dim in (None, 0, -3):
        assert refusal(ValueError, Cowboy, FixedGenerator(latent_dim), MeanDiscriminator()) == (
            "the generator needs a positive integer attribute 'latent_dim'"
        )
    # One latent dimension is enough; without weights z0 takes the default dtype.
    defense = Cowboy(FixedGenerator(1), MeanDiscriminator(), Settings(steps=2))
    assert (defense.latent_dim, defense.dtype, defense.input_shape) == (1, torch.float32, (1, 2, 2))
    assert defense.card == {}  # no card until one is loaded
    assert defense.clean(torch.zeros(3, 1, 2, 2)).shape == (3, 1, 2, 2)


def test_a_chunk_must_hold_every_restart_of_an_input():
    settings = Settings(restarts=3)
    assert refusal(
        ValueError,
        Cowboy,
        FixedGenerator(1),
        MeanDiscriminator(),
        settings,
        execution=Execution(batch_size=2),
    ) == ("a chunk of 2 rows cannot hold 3 restarts")
    assert Cowboy(FixedGenerator(1), MeanDiscriminator(), settings, execution=Execution(batch_size=3))


def test_a_threshold_given_by_hand_is_saved_as_a_plain_mean(tiny_gan, tmp_path):
    Cowboy(*tiny_gan, threshold=0.4).save(tmp_path / "card.safetensors")
    _, card = read_card(tmp_path / "card.safetensors")
    assert (card["threshold"], card["threshold_power"]) == (0.4, 1.0)


def test_the_progress_bar_counts_inputs_under_the_method_s_name(tiny_gan, images, monkeypatch):
    bars: list[dict[str, object]] = []

    class Bar:
        def __init__(self, total: int, label: str) -> None:
            bars.append({"total": total, "label": label, "done": 0})

        def update(self, n: int) -> None:
            bars[-1]["done"] = int(bars[-1]["done"]) + n  # type: ignore[call-overload]

        def close(self) -> None:
            bars[-1]["closed"] = True

    monkeypatch.setattr(Execution, "progress_bar", lambda self, total, label: Bar(total, label))
    Cowboy(*tiny_gan, Settings(steps=1, method="defense_gan")).clean(images[:5])
    assert bars == [{"total": 5, "label": "clean (defense_gan)", "done": 5, "closed": True}]
    # In chunks of 2 rows the bar advances by each chunk's own size: 2 + 2 + 1.
    Cowboy(*tiny_gan, Settings(steps=1), execution=Execution(batch_size=2)).clean(images[:5])
    assert bars[-1] == {"total": 5, "label": "clean (cowboy)", "done": 5, "closed": True}


def test_objective_defaults_to_the_paper_sigma_1_with_the_d_term(tiny_gan):
    generator, discriminator = tiny_gan
    z, x = torch.randn(3, 8), torch.rand(3, 1, 28, 28) * 2 - 1
    explicit, _ = Objective(generator, discriminator, sigma=1.0, d_weight=1.0)(z, x)
    default, _ = Objective(generator, discriminator)(z, x)
    assert torch.equal(default, explicit)
    assert not torch.equal(Objective(generator, discriminator, sigma=2.0)(z, x)[0], explicit)


def test_d_weight_replaces_sigma(tiny_gan):
    # With d_weight set, the objective is 1/2 ||G(z)-x||^2 + d_weight (-log D): sigma is folded in.
    z, x = torch.randn(3, 8), torch.rand(3, 1, 28, 28) * 2 - 1
    folded = objective_for(Settings(sigma=2.0, d_weight=0.5), *tiny_gan)
    assert torch.equal(folded(z, x)[0], Objective(*tiny_gan, sigma=1.0, d_weight=0.5)(z, x)[0])


def test_a_stopped_row_stays_where_it_stopped():
    def slow_and_fast(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Row 0 (x = 1) creeps down a gentle slope far above 0: too little relative progress.
        return x[:, 0] * (1000 + 1e-3 * z[:, 0]) + (1 - x[:, 0]) * z[:, 0].square(), z

    stop = 2 * EARLY_STOP_EVERY
    run = descend(
        slow_and_fast, GD(lr=0.01), torch.ones(2, 1), torch.tensor([[1.0], [0.0]]),
        steps=4 * EARLY_STOP_EVERY, record=[0, stop], early_stop_tol=1e-3,
    )  # fmt: skip
    assert run.steps_run.tolist() == [stop, 4 * EARLY_STOP_EVERY]
    assert run.snapshots[stop][0] < run.snapshots[0][0]  # it moved before it stopped ...
    assert torch.equal(run.snapshots[4 * EARLY_STOP_EVERY][0], run.snapshots[stop][0])  # ... not after


def test_a_row_at_its_minimum_stops_even_at_zero_tolerance():
    def flat(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (z - x).square().sum(1), z  # row 0 starts at its minimum; row 1 does not

    z0, x = torch.tensor([[0.0], [1.0]]), torch.zeros(2, 1)
    run = descend(flat, GD(lr=0.01), z0, x, steps=4 * EARLY_STOP_EVERY, early_stop_tol=0.0)
    # A loss that did not fall is no progress: the row stops at the second check.
    assert run.steps_run.tolist() == [2 * EARLY_STOP_EVERY, 4 * EARLY_STOP_EVERY]


def test_steps_before_graph_from_are_not_differentiated():
    def square(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (z - x).square().sum(1), z

    z0 = torch.ones(2, 3, requires_grad=True)  # an encoder's E(x) carries a graph
    run = descend(
        square, GD(lr=0.1), z0 * 2, torch.zeros(2, 3), steps=4, record=[0], create_graph=True, graph_from=2
    )
    assert not run.snapshots[0].requires_grad  # z0 is cut off: only steps 2.. are unrolled
    assert run.snapshots[4].requires_grad
    whole = descend(square, GD(lr=0.1), z0 * 2, torch.zeros(2, 3), steps=4, record=[0], create_graph=True)
    assert whole.snapshots[0].requires_grad  # unrolled from step 0, z0's graph stays
