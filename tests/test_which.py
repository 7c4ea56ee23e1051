"""Issue 22's "which defence": one point per defence at the policy it is deployed with, its
clean and worst-case accuracy, and paired differences against adversarial training."""

import pandas as pd

from cowboy_pipeline.which import defence_points


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
        [{"defense": "cowboy", "policy": "clean-all", "epsilon": 0.1, "converged": False}]
        + [
            {"defense": d, "policy": "undefended", "epsilon": 0.1, "converged": True}
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
