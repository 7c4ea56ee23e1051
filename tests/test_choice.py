"""The one chooser (card and discriminator study) and the suite's convergence check."""

import numpy as np
import pandas as pd
import torch
from torch import nn

from cowboy_core import Cowboy
from cowboy_core import suite as suite_module
from cowboy_core.diagnostics import Predictions
from cowboy_core.settings import Settings
from cowboy_core.suite import Suite
from cowboy_pipeline import choice, paths
from cowboy_pipeline.choice import choose, deployed_flips
from cowboy_pipeline.robustness import convergence_table, suite_at

from .configs import checked


def _grid():
    return pd.DataFrame(
        {
            "setting": ["chaotic-best", "stable", "stable-longer", "unmeasured"],
            "objective": [0.9, 0.7, 0.7, 0.95],
            "flip": [0.2, 0.0, 0.005, np.nan],
            "steps": [25, 25, 50, 10],
            "n": [500, 500, 500, 500],
        }
    )


def test_the_best_feasible_setting_wins_and_infeasible_ones_never_do():
    grid = choose(_grid(), objective="objective", constraints={"flip": 0.01}, tie_break=["steps"])
    assert grid["feasible"].tolist() == [False, True, True, False]  # NaN fails its constraint
    assert grid.loc[grid["chosen"], "setting"].tolist() == ["stable"]  # the tie goes to fewer steps


def test_no_feasible_setting_means_no_choice():
    unstable = _grid().assign(flip=[0.2, 0.02, 0.05, np.nan])
    grid = choose(unstable, objective="objective", constraints={"flip": 0.01}, min_images=10)
    assert not grid["chosen"].any() and not grid["feasible"].any()
    few = choose(_grid(), objective="objective", constraints={"flip": 1.0}, min_images=501)
    assert not few["feasible"].any()  # measured on too few images


def _per_image(defended, images, attack="a"):
    return pd.DataFrame(
        {
            "defense": "cowboy",
            "policy": "clean-all",
            "epsilon": 0.1,
            "seed": "fixed",
            "worst_case": True,
            "attack": attack,
            "image": images,
            "defended": defended,
        }
    )


def test_convergence_compares_the_same_images_and_fails_when_the_number_moves():
    main = _per_image([1.0] * 300, range(300))
    same = convergence_table(main, _per_image([1.0] * 200, range(200)))
    assert same["converged"].all() and same["n"].tolist() == [200]
    stronger = convergence_table(main, _per_image([0.0] * 40 + [1.0] * 160, range(200)))
    row = stronger.iloc[0]
    assert row["moved"] == -0.2 and not row["converged"] and row["worst_case_main"] == 1.0
    climbed = convergence_table(main.assign(budget=2), _per_image([1.0] * 200, range(200)).assign(budget=4))
    assert climbed[["budget_main", "budget_doubled"]].values.tolist() == [[2, 4]]


def test_doubling_scales_every_budget_and_no_image_count():
    suite = Suite(
        steps=10, restarts=2, eot=3, fresh_steps=5, surrogate_steps=7, square_queries=11, latent_steps=13
    )
    doubled = suite.scaled(2)
    assert (doubled.steps, doubled.restarts, doubled.eot) == (20, 4, 6)
    assert (doubled.fresh_steps, doubled.surrogate_steps, doubled.square_queries) == (10, 14, 22)
    assert doubled.latent_steps == 26
    assert (doubled.square_images, doubled.fresh_images, doubled.check_images) == (
        suite.square_images,
        suite.fresh_images,
        suite.check_images,
    )


def test_the_latent_attack_runs_the_suites_steps_and_its_refinement_a_tenth(monkeypatch):
    calls = []
    monkeypatch.setattr(suite_module, "latent_attack", lambda *a, **kw: calls.append(kw) or a[2])
    x, y = torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)
    for latent_steps in (30, Suite(latent_steps=30).scaled(2).latent_steps):
        attacks = suite_module.Attacks(
            nn.Identity(), x, y, epsilon=0.1, suite=Suite(latent_steps=latent_steps), seed=0
        )
        attacks.latent(defense=None)(np.array([0]))  # type: ignore[arg-type]
    assert [(c["steps"], c["refine_steps"]) for c in calls] == [(30, 3), (60, 6)]


def test_an_unset_latent_budget_runs_as_the_committed_runs_ran_and_a_set_one_doubles():
    tiny = checked("tests/config/tiny.yaml")
    unset = {k: v for k, v in tiny["robustness"].items() if k != "latent_steps"}
    assert [suite_at(unset, scale).latent_steps for scale in (1, 4)] == [200, 200]
    assert suite_at(unset, 4).steps == 4 * tiny["robustness"]["steps"]
    assert [suite_at(tiny["robustness"], scale).latent_steps for scale in (1, 4)] == [10, 40]


def _spy_cleaning(defense, monkeypatch):
    """Record each input ``defense.clean`` cleans on its own."""
    alone = []
    clean = defense.clean

    def spy(x, **kwargs):
        if x.shape[0] == 1:
            alone.append(x)
        return clean(x, **kwargs)

    monkeypatch.setattr(defense, "clean", spy)
    return alone


def test_the_deployed_check_cleans_the_first_of_each_kind_alone_and_every_image_in_batches(
    tiny_gan, images, monkeypatch
):
    defense = Cowboy(*tiny_gan, Settings(steps=3))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    clean, attacked = images[:3], images[3:]
    alone = _spy_cleaning(defense, monkeypatch)
    table, change = deployed_flips(classifier, defense, clean, attacked, alone=1, seed=0, perturbation=1e-4)
    assert [torch.equal(a[0], b) for a, b in zip(alone, [clean[0], attacked[0]], strict=True)] == [True, True]
    images_of = table.set_index(["comparison", "kind"])["images"].to_dict()
    assert images_of == {(c, k): 1 if c == "alone" else 3 for c in ("alone", "rechunked", "perturbed")
                         for k in ("clean", "attack")}  # fmt: skip
    assert (table.loc[table["comparison"] != "perturbed", "flips"] == 0).all() and change == 0.0


def test_the_deployed_checks_flips_are_counted_for_the_kind_they_happened_to(monkeypatch):
    """A fake cleaning whose other chunking flips exactly the attacked images (marked by their
    pixels): every flip lands in the attack rows, none in the clean ones."""

    def attacked_flip(classifier, defense, x, **kwargs):
        marked = (x.flatten(1).mean(1) > 2).long()
        k = kwargs["alone_images"]
        return Predictions(torch.zeros_like(marked), marked[:k], marked, torch.zeros_like(marked), 0.0)

    monkeypatch.setattr(choice, "cleaned_predictions", attacked_flip)
    clean, attacked = torch.zeros(4, 1, 2, 2), torch.full((4, 1, 2, 2), 5.0)
    table, _ = deployed_flips(nn.Identity(), None, clean, attacked, alone=2, seed=0, perturbation=1e-4)
    flips = table.set_index(["comparison", "kind"])["flips"].to_dict()
    expected = {"alone": 2, "rechunked": 4, "perturbed": 0}
    assert flips == {
        (c, k): expected[c] if k == "attack" else 0 for c in expected for k in ("clean", "attack")
    }


def test_the_reproduction_checks_its_card_alone_on_every_image_and_quick_on_twenty_of_each():
    """The reproduction's card_alone params are the ones its committed check ran with (no
    ``alone`` key: every image), though it is merged onto quick.yaml, which checks 20."""
    reproduction, quick = checked("reproduce-fmnist.yaml"), checked("quick.yaml")
    assert paths.card_alone_params(reproduction) == {"images": 500, "perturbation": 1e-4}
    assert paths.card_alone_params(quick) == {"alone": 20, "images": 200, "perturbation": 1e-4}
    for config in (reproduction, quick):  # and the chooser's own params do not see the key
        assert "deployed_alone_images" not in paths.card_choice_params(config)
