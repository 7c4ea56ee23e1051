"""Promises that are laws, checked on inputs hypothesis draws (and shrinks when one fails)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowboy_core import Cowboy, Execution
from cowboy_core.card import CardError
from cowboy_core.data import split_indices
from cowboy_core.detection import lp_threshold, threshold_at_fpr
from cowboy_core.io import load_models
from cowboy_core.restarts import initial_latents
from cowboy_core.settings import Settings

from .conftest import tamper

TRAINED = Path(__file__).parent / "fixtures" / "trained_gan.safetensors"  # tests/fixtures/make_trained_gan.py
QUICK = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def trained():
    models, _ = load_models(TRAINED)
    g, d = models["generator"], models["discriminator"]
    with torch.no_grad():  # inputs near the data: G's samples, perturbed off the manifold
        z = torch.randn(16, g.latent_dim, generator=torch.Generator().manual_seed(0))
        noise = 0.3 * torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        x = (g(z) + noise).clamp(-1, 1)
    return g, d, x


@QUICK
@given(
    n=st.integers(2, 12),
    data=st.data(),
    rows=st.sampled_from([4, 8, 16]),
    restarts=st.sampled_from([1, 2]),
    optimizer=st.sampled_from(["gd", "backtracking"]),
)
def test_cleaning_an_input_gives_the_same_bits_in_any_batch_and_chunking(
    trained, n, data, rows, restarts, optimizer
):
    g, d, x_all = trained
    x = x_all[:n]
    defense = Cowboy(
        g, d, Settings(steps=5, restarts=restarts, optimizer=optimizer), execution=Execution(batch_size=rows)
    )
    together = defense.clean(x, seed=3)
    i = data.draw(st.integers(0, n - 1), label="input")
    assert torch.equal(together[i], defense.clean(x[i : i + 1], seed=3)[0])
    cut = data.draw(st.integers(1, n - 1), label="split point")
    pieces = torch.cat([defense.clean(x[:cut], seed=3), defense.clean(x[cut:], seed=3)])
    assert torch.equal(pieces, together)


@QUICK
@given(restarts=st.integers(2, 4), seed=st.integers(0, 2**31 - 1))
def test_the_chosen_restart_has_the_lowest_loss_of_all(trained, restarts, seed):
    g, d, x_all = trained
    x = x_all[:3]
    chosen = Cowboy(g, d, Settings(steps=4, restarts=restarts)).clean_detailed(x, seed=seed)
    one = Cowboy(g, d, Settings(steps=4, restarts=1))
    starts = initial_latents(1, restarts, g.latent_dim, seed)
    each = torch.stack([one.clean_detailed(x, latents=starts[k].repeat(3, 1)).loss for k in range(restarts)])
    assert torch.all(chosen.loss <= each.min(dim=0).values + 1e-5)


scores = st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=50)


@given(values=scores, p=st.floats(1.0, 64.0), q=st.floats(1.0, 64.0))
def test_the_lp_average_lies_between_mean_and_max_and_grows_with_p(values, p, q):
    s = np.array(values)
    low, high = sorted((p, q))
    at_low, at_high = lp_threshold(s, low), lp_threshold(s, high)
    assert s.mean() - 1e-9 <= at_low <= at_high + 1e-9 <= s.max() + 2e-9
    assert lp_threshold(s, math.inf) == pytest.approx(s.max())


@given(values=scores, fpr=st.floats(0.0, 1.0))
def test_threshold_at_fpr_flags_at_most_that_fraction_of_real_inputs(values, fpr):
    real = np.array(values)
    assert (real < threshold_at_fpr(real, fpr)).mean() <= fpr + 1e-12


@given(n=st.integers(2, 400), data=st.data(), seed=st.integers(0, 10_000))
def test_train_and_validation_are_disjoint_and_cover_the_set(n, data, seed):
    size = data.draw(st.integers(0, n - 1))
    train, val = split_indices(n, size, seed)
    assert len(val) == size and not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))
    assert torch.equal(split_indices(n, size, seed)[1], val)  # seeded


card_settings = st.builds(
    Settings,
    sigma=st.floats(0.05, 10.0),
    steps=st.integers(0, 60),
    lr=st.floats(1e-4, 1.0),
    restarts=st.integers(1, 8),
    method=st.sampled_from(["cowboy", "defense_gan"]),
    optimizer=st.sampled_from(["gd", "momentum", "adam", "backtracking"]),
)
BAD_FIELDS = [
    ("threshold", math.nan),
    ("threshold", 1.5),
    ("threshold_power", 0.5),
    ("sigma", -1.0),
    ("steps", 2.5),
    ("restarts", 0),
    ("optimizer", "sgdx"),
    ("surprise", 1),
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chosen=card_settings,
    threshold=st.floats(0.01, 0.99),
    power=st.sampled_from([1.0, 2.0, math.inf]),
    bad=st.sampled_from(BAD_FIELDS),
)
def test_a_card_survives_a_round_trip_and_a_tampered_field_is_refused(
    tiny_gan, tmp_path_factory, chosen, threshold, power, bad
):
    g, d = tiny_gan
    path = tmp_path_factory.mktemp("card") / "card.safetensors"
    defense = Cowboy(g, d, chosen, threshold=threshold)
    defense.threshold_power = power
    defense.save(path, provenance={"source": "property test"})
    loaded = Cowboy.load(path)
    assert loaded.settings == defense.settings and loaded.threshold == threshold
    assert loaded.threshold_power == power and loaded.card["provenance"] == {"source": "property test"}
    key, value = bad

    def edit(header):
        (header if key in ("threshold", "threshold_power", "surprise") else header["settings"])[key] = value

    with pytest.raises(CardError, match=key):
        Cowboy.load(tamper(path, edit))
