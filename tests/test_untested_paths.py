"""Paths no test reached before: the deployment stream, the diagnostics, and the pipeline
package's tables and report, each on a hand-made case whose answer is known."""

import numpy as np
import pandas as pd
import pytest
import torch

from cowboy_core import Cowboy
from cowboy_core.defended import mixed_stream, stream_attacked
from cowboy_core.diagnostics import chaos_report, gradient_report, largest_curvature
from cowboy_core.models import Classifier, freeze
from cowboy_core.settings import Settings
from cowboy_pipeline.discriminator_study import choose_setting
from cowboy_pipeline.report import comparison_table, markdown_report
from cowboy_pipeline.tables import accuracy_long, card_accuracy, paired_methods, table1, table2, table2_rows


def test_mixed_stream_attacks_exactly_a_seeded_half_and_keeps_every_image_once():
    clean = torch.arange(10.0).view(10, 1, 1, 1)
    adversarial = -clean - 1
    stream, attacked = mixed_stream(clean, adversarial, seed=4)
    assert int(attacked.sum()) == 5
    assert torch.equal(stream[attacked], adversarial[attacked]) and torch.equal(
        stream[~attacked], clean[~attacked]
    )
    assert torch.equal(mixed_stream(clean, adversarial, seed=4)[1], attacked)
    assert not torch.equal(mixed_stream(clean, adversarial, seed=5)[1], attacked)
    # Every attack's stream attacks the same rows: the deployment job cleans the clean half once.
    assert torch.equal(mixed_stream(clean, clean * 7, seed=4)[1], attacked)
    assert torch.equal(stream_attacked(10, seed=4), attacked)


def test_largest_curvature_is_the_hessians_top_eigenvalue():
    """L(z) = ||G(z) - x||^2 / 2 with a linear G(z) = A z has Hessian A^T A."""

    class Linear(torch.nn.Module):
        latent_dim = 3

        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.diag(torch.tensor([3.0, 1.0, 0.5])), requires_grad=False)

        def forward(self, z):
            return (z @ self.a.T).view(-1, 1, 1, 3)

    class Flat(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 1) + 0 * x.sum()

    defense = Cowboy(Linear(), Flat(), Settings(method="defense_gan"))
    z, x = torch.randn(4, 3), torch.zeros(4, 1, 1, 3)
    assert torch.allclose(largest_curvature(defense, z, x, iterations=50), torch.full((4,), 9.0), rtol=1e-3)


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    return freeze(Classifier(channels=1, image_size=28, width=4))


def test_chaos_report_names_every_measure_and_stays_in_range(tiny_gan, images, classifier):
    g, d = tiny_gan
    report = chaos_report(classifier, Cowboy(g, d, Settings(steps=3)), images, trajectories=2)
    for rate in ("alone_vs_batch", "rechunked", "perturbed"):
        assert 0 <= report[f"prediction_flip_rate_{rate}"] <= 1
    assert report["images"] == len(images)
    assert report["lr_lambda_max_max"] >= report["lr_lambda_max_median"] >= 0
    assert report["stability_limit"] == 2.0  # plain GD
    assert report["unrolled_grad_norm_max"] >= report["unrolled_grad_norm_median"] > 0


def test_gradient_report_compares_each_gradient_with_finite_differences(tiny_gan, images, classifier):
    g, d = tiny_gan
    report = gradient_report(classifier, Cowboy(g, d, Settings(steps=2)), images)
    for gradient in ("bpda", "unrolled", "surrogate"):
        assert report[f"{gradient}_grad_norm_max"] >= report[f"{gradient}_grad_norm_median"] > 0
        errors = [report[f"{gradient}_fd_relative_error_h{h}_median"] for h in ("0.01", "0.001", "0.0001")]
        assert all(error >= 0 for error in errors)
    # Two small steps barely move z: the exact gradient through them is far smaller than
    # BPDA's identity, which passes the classifier's whole gradient back.
    assert report["unrolled_grad_norm_median"] < report["bpda_grad_norm_median"]


def _cleaned_rows(correct: dict[str, list[bool]], attack="fgsm") -> pd.DataFrame:
    rows = []
    for method, flags in correct.items():
        for i, right in enumerate(flags):
            rows.append(
                {"dataset": "fashion_mnist", "split": "test", "attack": attack, "method": method,
                 "sigma": 1.0, "steps": 25, "image": i, "label": 1, "pred_original": 1,
                 "pred_adversarial": 0 if i else 1, "pred_cleaned": 1 if right else 0}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_tables_1_and_2_hold_the_accuracies_of_each_quantity():
    clean = _cleaned_rows({"cowboy": [True, True, False, True], "defense_gan": [True, False, False, True]})
    accuracy = accuracy_long(clean, sigma=1.0, steps=25)
    by = accuracy.set_index("quantity")["accuracy"]
    assert by.to_dict() == {"original": 1.0, "adversarial": 0.25, "cowboy": 0.75, "defense_gan": 0.5}
    assert (accuracy["ci_low"] <= accuracy["accuracy"]).all() and (accuracy["n"] == 4).all()
    assert table1(accuracy, ["fashion_mnist"]).iloc[0].tolist() == ["fgsm", 1.0, 0.25, 0.75]
    assert table2(accuracy, ["fashion_mnist"]).iloc[0].tolist() == ["fgsm", 0.5, 0.75]
    assert accuracy_long(clean, sigma=0.5, steps=25).empty  # another sigma's rows are not these


def test_the_cards_settings_sit_beside_the_papers_protocol_in_tables_1_and_2():
    paper = accuracy_long(
        _cleaned_rows({"cowboy": [True] * 4, "defense_gan": [False] * 4}), sigma=1.0, steps=25
    )
    card_rows = _cleaned_rows({"cowboy_card": [True, False, False, False], "defense_gan_card": [True] * 4})
    card = card_accuracy(card_rows.assign(steps=50))  # the card's own step count, whatever it is
    assert card.set_index("quantity")["accuracy"].to_dict() == {"cowboy_card": 0.25, "defense_gan_card": 1.0}
    accuracy = pd.concat([paper, card])
    assert table1(accuracy, ["fashion_mnist"]).iloc[0].tolist() == ["fgsm", 1.0, 0.25, 1.0, 0.25]
    assert table2(accuracy, ["fashion_mnist"]).iloc[0].tolist() == ["fgsm", 0.0, 1.0, 1.0, 0.25]
    row = comparison_table(accuracy, "fashion_mnist").iloc[0]
    assert (row["cowboy"], row["cowboy_card"], row["defense_gan_card"]) == (1.0, 0.25, 1.0)
    text = markdown_report("fashion_mnist", accuracy, _detection(), _sweep(), None, {"fgsm": 0.15}, None)
    fgsm = next(line for line in text.splitlines() if line.startswith("| fgsm | 0.15 |"))
    assert fgsm.endswith("| 0.250 [0.046, 0.699] | 1.000 [0.510, 1.000] |")


def test_table_2_pairs_each_image_across_the_two_methods_under_each_protocol():
    # Rows shuffled, so that only the dataset index pairs them: cowboy gets images 0-3 right,
    # Defense-GAN 0 and 4; at the card's settings both get the same images right.
    paper = _cleaned_rows(
        {"cowboy": [True] * 4 + [False] * 4, "defense_gan": [True] + [False] * 3 + [True] * 4}
    )
    paper = paper.assign(index=paper["image"] * 3).sample(frac=1.0, random_state=0)
    card = _cleaned_rows({"cowboy_card": [True, False] * 4, "defense_gan_card": [True, False] * 4}).assign(
        steps=50
    )
    card = card.assign(index=card["image"] * 3)
    other_sigma = paper.assign(sigma=2.0, pred_cleaned=0)  # another setting's rows are not Table 2's
    rows = table2_rows(pd.concat([paper, other_sigma]), card, sigma=1.0, steps=25)
    paired = paired_methods(rows).set_index("protocol")
    assert paired.loc["paper", ["cowboy", "defense_gan", "difference"]].tolist() == [0.5, 0.625, -0.125]
    assert (paired.loc["paper", "cowboy_only"], paired.loc["paper", "defense_gan_only"]) == (3, 4)
    assert paired.loc["paper", "ci_low"] < -0.125 < paired.loc["paper", "ci_high"]
    assert paired.loc["card", "difference"] == 0 and paired.loc["card", "mcnemar_p"] == 1.0
    accuracy = accuracy_long(paper, sigma=1.0, steps=25)
    text = markdown_report(
        "fashion_mnist", accuracy, _detection(), _sweep(), None, {"fgsm": 0.15}, None, paired.reset_index()
    )
    assert "| fgsm | paper | 0.500 | 0.625 | -0.125 [" in text and "| 3 | 4 | 1 | no |" in text


def _detection() -> pd.DataFrame:
    return pd.DataFrame(
        [{"dataset": "fashion_mnist", "attack": "fgsm", "threshold": 0.4, "roc_auc": 0.9, "tpr_at_5fpr": 0.5,
          "detection_rate": 0.6, "false_alarm_rate": 0.05}]
    )  # fmt: skip


def _sweep() -> pd.DataFrame:
    return pd.DataFrame(
        [{"dataset": "fashion_mnist", "attack": "fgsm", "method": "cowboy", "sigma": 1.0, "steps": 25,
          "accuracy": 0.7, "ci_low": 0.6, "ci_high": 0.8}]
    )  # fmt: skip


def test_markdown_report_puts_each_measured_number_beside_the_papers():
    clean = _cleaned_rows({"cowboy": [True, True, False, True], "defense_gan": [True, False, False, True]})
    accuracy = accuracy_long(clean, sigma=1.0, steps=25)
    text = markdown_report("fashion_mnist", accuracy, _detection(), _sweep(), None, {"fgsm": 0.15}, None)
    row = next(line for line in text.splitlines() if line.startswith("| fgsm | 0.15 |"))
    assert "0.750 [" in row and "(0.44)" in row and "0.500 [" in row  # cowboy, the paper's, Defense-GAN
    assert "| fgsm | 0.400 | 0.900 | 0.500 | 0.600 | 0.050 |" in text
    assert "Test images per cell: 4." in text and "## The deployed" not in text


def test_the_study_says_loudly_when_no_setting_is_stable():
    rows = []
    for method, weight in (("cowboy", 1.0), ("defense_gan", 0.0)):
        for i in range(10):
            rows.append(
                {"gan": "seed0_step20", "image": i, "method": method, "d_weight": weight, "optimizer": "gd",
                 "lr": 0.05, "restarts": 1, "steps": 25, "correct": i % 2 == 0, "flipped_alone": True,
                 "d_cleaned": 0.5}
            )  # fmt: skip
    choice = choose_setting(pd.DataFrame(rows), max_flip_rate=0.01)
    assert all(not chosen["stable_setting_found"] for chosen in choice["chosen"].values())
    assert np.isclose(choice["chosen"]["cowboy"]["validation_accuracy"], 0.5)


def test_figure5_puts_one_attack_per_row_and_one_state_per_column():
    from cowboy_pipeline.plots import cleaning_grid, figure5_pages

    def grid(method: str, attack: str, value: float) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
        meta = {"dataset": "fashion_mnist", "attack": attack, "method": method}
        return meta, {
            k: torch.full((4, 1, 28, 28), value + i)
            for i, k in enumerate(("original", "adversarial", "cleaned"))
        }

    grids = [
        grid(m, a, v)
        for a in ("fgsm", "pgd", "fgsm-std")
        for m, v in (("cowboy", 0.0), ("defense_gan", 10.0))
    ]
    pages = figure5_pages(grids)
    assert sorted(pages) == ["", "std"]
    rows, columns = pages[""]
    assert columns == ["original", "adversarial", "cleaned by cowboy", "cleaned by Defense-GAN"]
    assert [label for label, _ in rows] == ["fashion_mnist\nfgsm", "fashion_mnist\npgd"]
    assert [float(cell[0, 0, 0, 0]) for cell in rows[0][1]] == [0.0, 1.0, 2.0, 12.0]  # DGAN cleaned its own
    figure = cleaning_grid(rows, columns, "Figure 5")
    assert figure.axes[0].get_title() == "original" and figure.axes[4].get_ylabel() == "fashion_mnist\npgd"
    assert len(figure.axes) == 2 * 4


def test_the_unrolled_gradient_is_the_derivative_of_the_deployed_map_in_float64(classifier):
    from cowboy_core.diagnostics import exact_gradient_check
    from cowboy_core.io import load_models

    from .conftest import REPO

    gan = load_models(REPO / "tests/fixtures/trained_gan.safetensors")[0]
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x[:, :, :5] = -1  # background pixels: no room for h on one side, left out of the direction
    stable = Cowboy(gan["generator"], gan["discriminator"], Settings(steps=20, optimizer="momentum", lr=0.01))
    report = exact_gradient_check(classifier, stable, x)
    assert report["unrolled_float64_fd_relative_error_h1e-05_median"] < 1e-6
    assert stable.generator.project[0].weight.dtype == torch.float32  # the deployed models are untouched
