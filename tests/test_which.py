"""Issue 22's "which defence": one point per defence at the policy it is deployed with, its
clean and worst-case accuracy, and paired differences against adversarial training."""

import math
from types import SimpleNamespace

import pandas as pd

from cowboy_pipeline.which import defence_points, deployed_policy, earlier_points, goal_region, summary_points


def _rows(defense: str, policy: str, clean: list[int], attacked: list[int]) -> list[dict[str, object]]:
    rows = []
    for attack, outcomes in (("clean", clean), ("apgd_ce", attacked)):
        for image, defended in enumerate(outcomes):
            rows.append(
                {"defense": defense, "policy": policy, "seed": "fixed", "epsilon": 0.1, "image": image}
                | {"attack": attack, "defended": float(defended), "worst_case": attack != "clean"}
            )
    return rows


def test_each_defence_is_a_point_at_its_deployed_policy_paired_with_adversarial_training():
    per_image = pd.DataFrame(
        _rows("none", "undefended", [1, 1, 1, 1], [0, 0, 0, 0])
        + _rows("adversarial", "undefended", [1, 1, 0, 1], [1, 0, 0, 1])
        + _rows("cowboy", "clean-all", [1, 0, 0, 1], [1, 1, 0, 1])
        + _rows("cowboy", "reject", [1, 1, 1, 1], [1, 1, 1, 1])  # not the point's policy
    )
    convergence = pd.DataFrame(
        [{"defense": "cowboy", "policy": "clean-all", "epsilon": 0.1, "converged": False, "budget_main": 1}]
        + [
            {"defense": d, "policy": "undefended", "epsilon": 0.1, "converged": True, "budget_main": 2}
            for d in ("none", "adversarial")
        ]
    )
    points = defence_points(per_image, convergence).set_index("defense")
    assert points.loc["cowboy", "policy"] == "clean-all" and not points.loc["cowboy", "converged"]
    assert points.loc["cowboy", ["clean_accuracy", "robust_accuracy"]].tolist() == [0.5, 0.75]
    assert points.loc["adversarial", ["clean_accuracy", "robust_accuracy"]].tolist() == [0.75, 0.5]
    assert points.loc["cowboy", "robust_minus_adversarial"] == 0.25
    assert points.loc["cowboy", "clean_minus_adversarial"] == -0.25
    assert points.loc["none", "robust_accuracy"] == 0.0 and points.loc["none", "converged"]
    assert pd.isna(points.loc["adversarial", "robust_minus_adversarial"])  # not against itself
    # Points attacked at different budgets say so (the main run's, in multiples of the config's).
    assert points.loc["cowboy", "budget"] == 1 and points.loc["none", "budget"] == 2


def _table_rows(
    defense: str, policy: str, epsilon: float, clean: float, worst: float
) -> list[dict[str, object]]:
    return [
        {"defense": defense, "policy": policy, "seed": "fixed", "epsilon": epsilon, "attack": attack}
        | {"robust_accuracy": value, "ci_low": value - 0.01, "ci_high": value + 0.01, "n": 500}
        | {"dataset": "fashion_mnist"}
        for attack, value in (("clean", clean), ("apgd_ce", worst + 0.1), ("worst_case", worst))
    ]


def test_an_earlier_runs_points_come_from_its_clean_and_worst_case_rows_unpaired():
    table = pd.DataFrame(
        _table_rows("none", "undefended", 0.1, 0.88, 0.002)
        + _table_rows("cowboy", "clean-all", 0.1, 0.738, 0.184)
        + _table_rows("cowboy", "reject", 0.1, 0.9, 0.014)  # not the policy it is deployed with
        + _table_rows("cowboy", "clean-all", 0.3, 0.738, 0.0)
    )
    table.loc[table["policy"] == "reject", "seed"] = "fresh"
    convergence = pd.DataFrame(
        [
            {"defense": "cowboy", "policy": "clean-all", "epsilon": e, "converged": e == 0.1}
            for e in (0.1, 0.3)
        ]
    )
    points = earlier_points(table, convergence, "chosen card", attacked={"none"})
    assert set(points["defense"]) == {"cowboy"}  # this run attacked "none" itself
    cowboy = points.set_index("epsilon")
    assert cowboy.loc[0.1, ["clean_accuracy", "robust_accuracy"]].tolist() == [0.738, 0.184]
    assert cowboy.loc[0.1, "robust_ci_low"] == 0.184 - 0.01 and cowboy.loc[0.1, "n"] == 500
    assert cowboy.loc[0.1, "converged"] and not cowboy.loc[0.3, "converged"]
    assert (points["run"] == "chosen card").all() and (points["policy"] == "clean-all").all()
    assert "robust_minus_adversarial" not in points  # aggregates cannot be paired
    unchecked = earlier_points(table, None, "paper's settings", attacked=set())
    assert not unchecked["converged"].any()  # never doubled: an upper bound
    assert unchecked["budget"].isna().all()  # and its budget unrecorded


def test_the_goal_region_is_five_points_below_undefended_clean_and_at_adversarial_trainings_robust():
    columns = ["defense", "epsilon", "clean_accuracy", "robust_accuracy", "run"]
    rows = [
        ("none", 0.1, 0.9, 0.0, "this run"),
        ("adversarial", 0.1, 0.8, 0.6, "this run"),
        ("adversarial", 0.3, 0.7, 0.4, "this run"),
        ("none", 0.3, 0.9, 0.0, "earlier"),  # other images: an earlier run does not set the goal
    ]
    points = pd.DataFrame(rows, columns=columns)
    low_clean, low_robust = goal_region(points, 0.1)
    assert abs(low_clean - 0.85) < 1e-12 and low_robust == 0.6
    assert goal_region(points, 0.3) is None


def test_the_summary_keeps_the_first_runs_bare_classifiers_and_each_runs_own_rows():
    columns = ["defense", "epsilon", "clean_accuracy", "robust_accuracy", "robust_minus_adversarial", "run"]
    own = "this run"
    anchor_rows = [
        ("none", 0.1, 0.9, 0.0, -0.6, own),
        ("adversarial", 0.1, 0.8, 0.6, None, own),
        ("cowboy", 0.1, 0.7, 0.2, None, "chosen card"),
    ]
    rec_rows = [
        ("none", 0.1, 0.88, 0.0, -0.6, own),
        ("adversarial", 0.1, 0.81, 0.62, None, own),
        ("variant_rec", 0.1, 0.8, 0.3, -0.32, own),
        ("cowboy", 0.1, 0.7, 0.2, None, "chosen card"),
    ]
    anchor, rec = (pd.DataFrame(rows, columns=columns) for rows in (anchor_rows, rec_rows))
    # A later run drew the Rec run's committed point without its paired difference.
    later = pd.DataFrame([("variant_rec", 0.1, 0.8, 0.3, None, "rec run")], columns=columns)
    points = summary_points([("anchor", anchor), ("later", later), ("rec run", rec)])
    keys = set(zip(points["defense"], points["run"], strict=True))
    assert keys == {
        ("none", "anchor"),
        ("adversarial", "anchor"),
        ("cowboy", "chosen card"),
        ("variant_rec", "rec run"),
    }
    assert points.set_index("defense").loc["variant_rec", "robust_minus_adversarial"] == -0.32
    assert goal_region(points, 0.1, reference="anchor") == (0.9 - 0.05, 0.6)


def test_a_defence_keeps_one_colour_across_panels_and_no_two_points_share_one():
    from cowboy_pipeline.plots import point_colors

    rows = [
        ("adversarial", "anchor", 0.1), ("adversarial", "anchor", 0.3),
        ("cowboy", "chosen card", 0.1), ("cowboy", "paper's settings", 0.1),  # one panel: two colours
        ("variant_encoder", "encoder run", 0.1), ("variant_encoder", "run at 0.3", 0.3),  # one colour
    ] + [(f"other{i}", "anchor", 0.1) for i in range(7)]  # fmt: skip
    points = pd.DataFrame(rows, columns=["defense", "run", "epsilon"])
    colors = point_colors(points)
    assert colors[("variant_encoder", "encoder run")] == colors[("variant_encoder", "run at 0.3")]
    assert colors[("cowboy", "chosen card")] != colors[("cowboy", "paper's settings")]
    distinct = {colors[(d, r if d != "variant_encoder" else "encoder run")] for d, r, _ in rows}
    assert len(distinct) == 11  # eleven defences drawn: past tab10's ten, none repeats


def test_the_legend_names_adversarial_training_and_each_variant_and_says_what_is_unconverged():
    from cowboy_pipeline.plots import _point_label

    def label(defense: str, run: str = "this run", converged: bool = True, budget: float = 1.0) -> str:
        row = SimpleNamespace(
            defense=defense, policy=deployed_policy(defense), run=run, converged=converged, budget=budget
        )
        return _point_label(row, "this run")

    assert label("adversarial") == "PGD adversarial training (budget x1)"
    assert label("none", budget=math.nan) == "bare classifier"
    assert label("variant_encoder-rec", run="encoder-rec run", budget=2) == (
        "variant encoder-rec (clean-all, encoder-rec run, budget x2)"
    )
    assert label("defense_gan", run="paper's settings", converged=False, budget=math.nan) == (
        "Defense-GAN (clean-all, paper's settings), not converged"
    )


def test_each_dataset_keeps_its_own_reference_runs_bare_classifiers_goal_and_panels():
    from cowboy_pipeline.plots import which_defence_figure
    from cowboy_pipeline.which import reference_runs

    columns = ["dataset", "defense", "epsilon", "clean_accuracy", "robust_accuracy", "run", "converged", "n"]
    columns += [f"{name}_ci_{side}" for name in ("clean", "robust") for side in ("low", "high")]

    def frame(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
        full = [(*row, "this run", True, 500, row[3], row[3], row[4], row[4]) for row in rows]
        return pd.DataFrame(full, columns=columns).assign(policy="clean-all")

    fashion = frame(
        [("fashion_mnist", "none", 0.1, 0.89, 0.0), ("fashion_mnist", "adversarial", 0.1, 0.8, 0.65)]
    )
    later = frame(
        [("fashion_mnist", "none", 0.1, 0.88, 0.0), ("fashion_mnist", "variant_rec", 0.1, 0.8, 0.3)]
    )
    digits = frame(
        [("mnist_5k", "none", eps, 0.98, 0.0) for eps in (0.1, 0.3)]
        + [("mnist_5k", "adversarial", eps, 0.97, 0.9 - eps) for eps in (0.1, 0.3)]
        + [("mnist_5k", "cowboy", 0.1, 0.9, 0.5)]
    )
    runs = [("anchor", fashion), ("rec run", later), ("mnist run", digits)]
    assert reference_runs(runs) == {"fashion_mnist": "anchor", "mnist_5k": "mnist run"}
    points = summary_points(runs)
    bare = points[points["defense"].isin(["none", "adversarial"])]
    # The Rec run's own bare classifier is dropped; MNIST's, from a later run, are kept.
    assert set(zip(bare["dataset"], bare["run"], strict=True)) == {
        ("fashion_mnist", "anchor"),
        ("mnist_5k", "mnist run"),
    }
    assert goal_region(points, 0.1, "mnist run", dataset="mnist_5k") == (0.98 - 0.05, 0.8)
    assert goal_region(points, 0.1, "anchor", dataset="fashion_mnist") == (0.89 - 0.05, 0.65)
    figure = which_defence_figure(points, reference_runs(runs))
    titles = [ax.get_title() for ax in figure.axes if ax.axison]
    assert titles == [
        "fashion_mnist, L-inf epsilon 0.1, n = 500 test images",
        "mnist_5k, L-inf epsilon 0.1, n = 500 test images",
        "mnist_5k, L-inf epsilon 0.3, n = 500 test images",
    ]
