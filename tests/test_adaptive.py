"""Attacks on the deployed defence, the worst-case aggregation and the mixed-stream accounting."""

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch

from cowboy_core import Cowboy
from cowboy_core.adaptive import (
    DefendedModel,
    Gradient,
    apgd,
    differentiable_clean,
    hinge_attack,
    latent_attack,
    single_step,
    square,
)
from cowboy_core.execution import Execution
from cowboy_core.models import Classifier, freeze
from cowboy_core.settings import Settings
from cowboy_core.suite import Suite, deployed_correct, run_suite
from cowboy_core.training import train_classifier
from cowboy_pipeline.robustness import carlini_checks, robustness_table, worst_case
from cowboy_pipeline.statistics import stream_metrics


def test_stream_accounting_on_a_hand_made_case():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    adversarial = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    flagged = np.array([0, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    # Final predictions (cleaned where flagged): clean part 0 ok, 1 wrong, 2 ok, 3 wrong;
    # adversarial part 4 ok, 5 ok, 6 wrong, 7 wrong.
    predictions = np.array([0, 9, 2, 9, 0, 1, 9, 9])
    m = stream_metrics(labels, adversarial, predictions, flagged, np.zeros(8, dtype=bool))
    assert m["clean_part_accuracy"] == 0.5
    assert m["adversarial_part_accuracy"] == 0.5
    assert m["stream_accuracy"] == 0.5 and m["ci_low"] < 0.5 < m["ci_high"]
    assert m["false_alarm_rate"] == 0.25
    assert m["detection_rate"] == 0.75
    # Under "reject" the flagged rows abstain: wrong for accuracy, right "with abstention".
    r = stream_metrics(labels, adversarial, predictions, flagged, flagged)
    assert r["stream_accuracy"] == 2 / 8  # rows 0, 2
    assert r["accuracy_with_abstention"] == 6 / 8  # rows 0, 1, 2, 4, 5, 7


@pytest.fixture(scope="module")
def setup():
    """A classifier that really learned a rule (left half brighter than right), so that
    attacks have correct predictions to break."""
    torch.manual_seed(0)
    x = torch.rand(96, 1, 28, 28) * 2 - 1
    y = (x[:, :, :, :14].mean(dim=(1, 2, 3)) > x[:, :, :, 14:].mean(dim=(1, 2, 3))).long()
    classifier = freeze(
        train_classifier(Classifier(channels=1, image_size=28, width=4), x, y, steps=150, batch_size=32)
    )
    right = classifier(x).argmax(1) == y
    return classifier, x[right][:12], y[right][:12]


class IdentityGenerator(torch.nn.Module):
    """G(z) = z as an image: one Defense-GAN step of size 1 from any z0 lands exactly on x, so
    the defended classifier is the bare one and attacks through it must break it as well."""

    latent_dim = 28 * 28

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 28, 28)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model((x + 1) / 2).argmax(1) == y).float().mean())


def test_bpda_forward_is_the_deployed_cleaning_and_backward_the_identity(tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(steps=3))
    point = images.clone().requires_grad_(True)
    cleaned = differentiable_clean(defense, point, seed=4, gradient=Gradient.BPDA)
    assert torch.equal(cleaned.detach(), defense.clean(images, seed=4))
    weights = torch.randn_like(cleaned)
    (grad,) = torch.autograd.grad((cleaned * weights).sum(), point)
    assert torch.equal(grad, weights)
    unrolled = differentiable_clean(
        defense, images.clone().requires_grad_(True), seed=4, gradient=Gradient.UNROLLED
    )
    assert torch.allclose(unrolled.detach(), cleaned.detach(), atol=1e-5)


@pytest.mark.slow
def test_apgd_and_square_lower_accuracy(setup, tiny_gan):
    classifier, x, y = setup
    _, d = tiny_gan
    bare = DefendedModel(classifier, None)
    assert accuracy(bare, x, y) == 1.0
    adversarial = apgd(bare, x, y, epsilon=0.3, steps=20, restarts=1)
    assert (adversarial - x).abs().max() <= 0.6 + 1e-5 and adversarial.abs().max() <= 1 + 1e-6
    assert accuracy(bare, adversarial, y) < 0.5
    assert accuracy(bare, square(bare, x, y, epsilon=0.3, queries=200), y) < 1.0
    exact = Cowboy(IdentityGenerator(), d, Settings(method="defense_gan", steps=1, lr=1.0))
    assert torch.allclose(exact.clean(x), x, atol=1e-6)
    for gradient in (Gradient.BPDA, Gradient.UNROLLED):
        defended = DefendedModel(classifier, exact, gradient=gradient, seed=0)
        assert accuracy(defended, x, y) == 1.0
        assert accuracy(defended, apgd(defended, x, y, epsilon=0.3, steps=20, restarts=1), y) < 0.5
    assert accuracy(defended, single_step(defended, x, y, epsilon=0.3), y) < 1.0


def test_hinge_attack_raises_d_above_the_target(setup, tiny_gan):
    classifier, x, y = setup
    g, d = tiny_gan
    defense = Cowboy(g, d)
    start = defense.score(x)
    target = float(start.max()) + 0.02  # above every clean score: the hinge must push D up
    adversarial = hinge_attack(
        classifier, defense.discriminator, x, y, epsilon=0.3, target_score=target, margin=0.0, steps=30
    )
    assert (adversarial - x).abs().max() <= 0.6 + 1e-5
    assert float((defense.score(adversarial) >= target).float().mean()) > 0.5
    assert defense.score(adversarial).mean() > start.mean()


def test_latent_attack_stays_in_the_budget(setup, tiny_gan):
    classifier, x, y = setup
    g, d = tiny_gan
    adversarial = latent_attack(
        classifier, Cowboy(g, d, Settings(steps=2)), x[:4], y[:4], epsilon=0.1, steps=5, refine_steps=2
    )
    moved = (adversarial - x[:4]).abs().flatten(1).max(dim=1).values
    assert moved.max() <= 0.2 + 1e-5 and adversarial.abs().max() <= 1  # 0.1 in [0, 1] = 0.2 in [-1, 1]
    assert (moved > 0.05).all()  # it attacked: returning the input unchanged is not an attack


def test_reject_counts_a_rejection_as_defended(setup, tiny_gan):
    classifier, x, y = setup
    g, d = tiny_gan
    everything = Cowboy(g, d, Settings(steps=2), threshold=1 - 1e-9)  # above every score: flags every input
    outcome = deployed_correct(classifier, everything, x, 1 - y, seed=0)  # every label wrong
    assert outcome["reject"].all() and not outcome["detect-then-clean"].all()


def test_worst_case_is_the_per_image_minimum():
    per_image = pd.DataFrame(
        {
            "defense": "cowboy",
            "epsilon": 0.1,
            "policy": "clean-all",
            "seed": "fixed",
            "image": [0, 1, 2, 0, 1, 2, 0, 1],
            "attack": ["a", "a", "a", "b", "b", "b", "check", "check"],
            "worst_case": [True] * 6 + [False] * 2,
            "defended": [1.0, 1.0, 0.0, 1.0, 0.0, np.nan, 0.0, 0.0],
        }
    )
    worst = worst_case(per_image).set_index("image")["defended"]
    assert worst.to_dict() == {0: 1.0, 1: 0.0, 2: 0.0}  # NaN (not attacked) does not count; checks neither
    table = robustness_table(per_image)
    row = table[table["attack"] == "worst_case"].iloc[0]
    assert row["robust_accuracy"] == pytest.approx(1 / 3) and row["n"] == 3
    assert table[table["attack"] == "b"].iloc[0]["n"] == 2
    so_far = table.set_index("attack")["worst_case_so_far"]
    assert so_far["a"] == pytest.approx(2 / 3) and so_far["b"] == pytest.approx(1 / 3)
    assert np.isnan(so_far["check"])  # a check does not count toward the worst case


def test_checks_fail_when_square_beats_the_gradients():
    rows = []
    for attack, defended in [
        ("clean", [1] * 10),
        ("bpda_single_step", [1] * 10),
        ("transfer_apgd_ce", [1] * 10),
        ("bpda_apgd_ce", [1] * 10),
        ("square", [0] * 10),
        ("check_unrolled_apgd_ce_2x", [1] * 10),
        ("check_unbounded", [0] * 10),
    ]:
        rows.append(
            pd.DataFrame(
                {
                    "defense": "cowboy",
                    "epsilon": 0.1,
                    "policy": "clean-all",
                    "seed": "fixed",
                    "image": range(10),
                    "attack": attack,
                    "defended": defended,
                }
            )
        )
    checks = carlini_checks(pd.concat(rows), epsilon=0.1).set_index("check")["passed"]
    assert not checks["gradient-free no stronger than gradients"]
    assert checks["unbounded budget reaches 0"] and checks["iterative beats single-step"]
    # A run that attacks no card at the checks' epsilon still writes the table's columns.
    elsewhere = carlini_checks(pd.concat(rows), epsilon=0.3)
    assert elsewhere.empty and list(elsewhere.columns)[:3] == ["defense", "epsilon", "check"]


@pytest.mark.slow
def test_suite_runs_every_attack_under_every_policy(setup, tiny_gan):
    classifier, x, y = setup
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(steps=2), threshold=0.5)
    suite = Suite(
        steps=2, restarts=1, eot=1, square_images=3, square_queries=2, fresh_images=3, check_images=3
    )
    rows = run_suite(
        classifier,
        defense,
        x[:6],
        y[:6],
        epsilon=0.1,
        suite=suite,
        median_real_score=0.5,
        checks=True,
        log=lambda *_: None,
    )
    assert set(rows["policy"]) == {"detect-then-clean", "clean-all", "reject"}
    order = ["clean", "transfer_apgd_ce", "hinge_threshold", "hinge_median_real", "unrolled_apgd_ce",
             "unrolled_apgd_dlr", "bpda_single_step", "bpda_apgd_ce", "bpda_apgd_dlr", "surrogate_apgd_ce",
             "latent", "square", "bpda_apgd_ce_eot_fresh_seed", "check_unrolled_apgd_ce_2x",
             "check_unbounded"]  # fmt: skip
    ran = list(dict.fromkeys(rows["attack"]))
    assert ran == [s for s in order if s in ran] and {"clean", "transfer_apgd_ce", "square"} <= set(ran)
    assert set(rows["seed"]) == {"fixed", "fresh"} and rows["defended"].isin([0.0, 1.0]).all()
    # A cleaning attack runs only on images some cleaning policy still defends.
    cleaning_steps = {
        "unrolled_apgd_ce",
        "unrolled_apgd_dlr",
        "bpda_apgd_ce",
        "bpda_apgd_dlr",
        "surrogate_apgd_ce",
    }
    fixed = rows[(rows["seed"] == "fixed") & rows["worst_case"]]
    robust = {p: set(range(6)) for p in ("clean-all", "detect-then-clean")}
    for attack in ran:
        here = fixed[fixed["attack"] == attack]
        if attack in cleaning_steps | {"latent"}:
            assert set(here["image"]) <= robust["clean-all"] | robust["detect-then-clean"], attack
        for policy, alive in robust.items():
            alive -= set(here[(here["policy"] == policy) & (here["defended"] == 0)]["image"])
    # Every image ran clean under every policy, twice (fixed and fresh seed).
    clean = rows[rows["attack"] == "clean"]
    assert len(clean) == 6 * 3 * 2 and set(clean["image"]) == set(range(6))
    bare = run_suite(
        classifier, None, x[:6], y[:6], epsilon=0.1, suite=suite, median_real_score=0.5, log=lambda *_: None
    )
    assert set(bare["policy"]) == {"undefended"}


@pytest.mark.slow
def test_a_seedless_defence_is_not_attacked_over_fresh_seeds_and_scores_the_same_for_both(setup, tiny_gan):
    """An encoder start with one restart ignores the seed (z0 = E(x)): EOT over fresh seeds
    would average one gradient with itself, so the suite skips it, and the fresh-seed rows
    are the fixed-seed ones. With two restarts the seed matters again and both come back."""
    from cowboy_core.models import DCGANEncoder

    classifier, x, y = setup
    torch.manual_seed(3)
    encoder = freeze(DCGANEncoder(channels=1, image_size=28, latent_dim=8, width=8))
    suite = Suite(
        steps=1, restarts=1, eot=2, square_images=2, square_queries=1, fresh_images=2, check_images=2
    )
    runs = {}
    for restarts in (1, 2):
        settings = Settings(steps=2, start="encoder", restarts=restarts)
        defense = Cowboy(*tiny_gan, settings, threshold=0.5, encoder=encoder)
        assert defense.uses_seed == (restarts > 1)
        runs[restarts] = run_suite(
            classifier, defense, x[:4], y[:4], epsilon=0.1, suite=suite, median_real_score=0.5,
            log=lambda *_: None,
        )  # fmt: skip
    seedless, seeded = runs[1], runs[2]
    assert "bpda_apgd_ce_eot_fresh_seed" not in set(seedless["attack"])
    assert "bpda_apgd_ce_eot_fresh_seed" in set(seeded["attack"])
    by_seed = {
        kind: part.drop(columns="seed").reset_index(drop=True) for kind, part in seedless.groupby("seed")
    }
    pd.testing.assert_frame_equal(by_seed["fixed"], by_seed["fresh"])
    assert Cowboy(*tiny_gan, Settings(steps=2)).uses_seed  # the paper's prior start


def test_a_doubled_run_starts_from_what_the_main_run_broke(setup):
    """The convergence check's doubled run: images the main run broke stay broken (one
    "earlier_run" row each), and the attacks that run on what is still defended skip them."""
    import numpy as np

    classifier, x, y = setup
    suite = Suite(
        steps=3, restarts=1, eot=1, square_images=2, square_queries=2, fresh_images=2, check_images=2
    )
    broken = {"undefended": np.array([True, True, False, False, False, False])}
    rows = run_suite(
        classifier, None, x[:6], y[:6], epsilon=0.02, suite=suite, median_real_score=0.5,
        log=lambda *_: None, broken=broken,
    ).assign(defense="none", epsilon=0.02)  # fmt: skip
    earlier = rows[rows["attack"] == "earlier_run"]
    assert earlier["defended"].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0] and earlier["worst_case"].all()
    assert not set(rows[rows["attack"] == "apgd_dlr"]["image"]) & {0, 1}  # already broken: not attacked
    from cowboy_pipeline.robustness import earlier_broken, worst_case

    worst = worst_case(rows[rows["seed"] == "fixed"]).set_index("image")["defended"]
    assert worst[[0, 1]].tolist() == [0.0, 0.0]  # the main run's breaks count in the doubled run
    # What the doubled run reads back from a main run's rows, by dataset index.
    main = rows.assign(image=rows["image"] + 100)
    again = earlier_broken(main, np.arange(100, 106))["undefended"]
    assert again.tolist() == (worst.sort_index().to_numpy() == 0).tolist()
    with pytest.raises(ValueError, match="did not attack every image"):
        earlier_broken(main, np.arange(100, 107))


def test_a_sharded_run_attacks_the_sets_first_images_with_the_steps_limited_to_them(setup):
    """A run split into shards: Square (the set's first two images here) runs on the same
    images as unsharded, not on the first two of each shard; the steps on every image cover
    each shard's images; the clean step gives the same verdicts (the model is a function)."""
    classifier, x, y = setup
    suite = Suite(
        steps=2, restarts=1, eot=1, square_images=2, square_queries=2, fresh_images=2, check_images=2
    )
    kwargs = {"epsilon": 0.05, "suite": suite, "median_real_score": 0.5, "log": lambda *_: None}
    whole = run_suite(classifier, None, x[:6], y[:6], **kwargs)
    shards = [
        run_suite(classifier, None, x[start:stop], y[start:stop], first_image=start, **kwargs).assign(
            image=lambda rows, start=start: rows["image"] + start
        )
        for start, stop in ((0, 3), (3, 6))
    ]
    sharded = pd.concat(shards, ignore_index=True)
    for rows in (whole, sharded):
        assert set(rows[rows["attack"] == "square"]["image"]) <= {0, 1}
        assert set(rows[rows["attack"] == "transfer_apgd_ce"]["image"]) == set(range(6))
    clean = {name: rows[rows["attack"] == "clean"].set_index("image")["defended"] for name, rows in
             (("whole", whole), ("sharded", sharded))}  # fmt: skip
    pd.testing.assert_series_equal(clean["whole"].sort_index(), clean["sharded"].sort_index())
    # A shard past the set's first images runs no Square at all.
    late = run_suite(classifier, None, x[3:6], y[3:6], first_image=3, **kwargs)
    assert "square" not in set(late["attack"])


def test_square_covers_the_sets_first_images_and_attacks_those_some_policy_still_defends(setup):
    """As in AutoAttack, Square skips the images every earlier attack already broke under
    every policy: it covers the set's first square_images and attacks only the defended ones;
    the rest become NaN rows, under every policy and seed."""
    from cowboy_core.suite import Attacks, DefendedModel, Scoreboard

    classifier, x, y = setup
    attacks = Attacks(classifier, x[:6], y[:6], epsilon=0.1, suite=Suite(square_images=4), seed=0)
    step = attacks.square(DefendedModel(classifier, None), ("undefended",))
    board = Scoreboard(classifier, None, y[:6], seed=0)
    board.robust["undefended"][:] = [True, False, True, False, True, True]
    assert step.only is not None
    assert step.images(board).tolist() == [0, 1, 2, 3] and step.only(board).tolist() == [0, 2, 4, 5]
    shard = Scoreboard(classifier, None, y[:6], seed=0, first_image=2)  # the set's images 2-7
    assert step.images(shard).tolist() == [0, 1]
    board.record_not_attacked(step, np.array([1, 3]))
    rows = pd.concat(board.rows)
    assert rows["image"].tolist() == [1, 3, 1, 3] and rows["defended"].isna().all()
    assert set(rows["seed"]) == {"fixed", "fresh"} and set(rows["attack"]) == {"square"}


def test_the_gradient_free_check_compares_on_every_image_square_covers():
    """Square's NaN rows (covered, skipped: already broken) count as the worst case there, so
    the check compares on all it covers, as when Square attacked them all; a Square left nothing
    to attack (the gradients broke every image it covers) cannot be stronger: it passes."""

    def checks(defended_by_gradients: int, square: list[float]) -> pd.Series:
        outcomes = {
            "transfer_apgd_ce": [1.0] * 40,
            "bpda_apgd_ce": [1.0] * defended_by_gradients + [0.0] * (40 - defended_by_gradients),
            "square": square,
        }
        rows = [
            pd.DataFrame({"epsilon": 0.1, "policy": "clean-all", "seed": "fixed", "defense": "cowboy",
                          "image": range(40), "attack": attack, "defended": defended})
            for attack, defended in outcomes.items()
        ]  # fmt: skip
        table = carlini_checks(pd.concat(rows), epsilon=0.1).set_index("check")
        return table.loc["gradient-free no stronger than gradients", ["left", "right", "n", "passed"]]

    skipped = [np.nan] * 20
    assert checks(20, [1.0] * 20 + skipped).tolist() == [0.5, 0.5, 40, True]
    assert checks(20, [0.0] * 20 + skipped).tolist() == [0.0, 0.5, 40, False]
    assert checks(0, [np.nan] * 40).tolist() == [0.0, 0.0, 40, True]


@pytest.mark.slow
def test_every_gradient_the_suite_takes_through_a_defence_runs_inside_its_kernels(
    setup, tiny_gan, monkeypatch
):
    """On CUDA the kernels context makes cuDNN deterministic; an attack's backward through
    the cleaning must run inside it too, or its gradients change bits with the batch. On
    the CPU the context is spied on: no classifier call with gradients falls outside it."""
    depth, outside = [0], []

    @contextlib.contextmanager
    def spied(self):
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1

    monkeypatch.setattr(Execution, "kernels", spied)
    classifier, x, y = setup
    classifier.register_forward_hook(
        lambda *_: outside.append(1) if torch.is_grad_enabled() and depth[0] == 0 else None
    )
    defense = Cowboy(*tiny_gan, Settings(steps=2), threshold=0.5)
    suite = Suite(steps=2, restarts=1, eot=1, square_images=2, square_queries=2, fresh_images=2)
    kwargs = {"epsilon": 0.1, "suite": suite, "median_real_score": 0.5, "log": lambda *_: None}
    rows = run_suite(classifier, defense, x[:4], y[:4], **kwargs)
    assert "unrolled_apgd_ce" in set(rows["attack"]) and depth[0] == 0 and not outside
