"""The committed runs' configs: each overlay attacks what its header says, at the params of the
runs it stacks on, so adding it reruns none of the shards those runs committed."""

from pathlib import Path

from cowboy_pipeline import paths, suite_paths

from .configs import checked
from .conftest import REPO

ANCHOR = "docs/reproduction/against-adversarial-training/config.yaml"
CLEANED_EPS01 = "docs/reproduction/against-adversarial-training/cleaned-eps0.1/config.yaml"


def test_the_anchor_config_attacks_the_two_bare_classifiers_alone_and_draws_the_committed_suites():
    anchor = checked("reproduce-fmnist.yaml", ANCHOR)
    reproduction = checked("reproduce-fmnist.yaml")
    assert suite_paths.robustness_defenses(anchor, "fashion_mnist") == ["none", "adversarial"]
    assert "cowboy" in suite_paths.available_defenses(anchor, "fashion_mnist")
    assert suite_paths.chaos_files(anchor) == []  # no cleaning method is attacked
    files = suite_paths.robustness_files(anchor)
    assert files and all("/none_" in f or "/adversarial_eps" in f for f in files)
    # The same images and budgets as the committed suite: its jobs' params are unchanged.
    assert suite_paths.robustness_params(anchor) == suite_paths.robustness_params(reproduction)
    published = {Path(p).name for p in paths.published_copies(anchor)}
    assert "which_defence.csv" in published and "fashion_mnist.adversarial-training.csv" in published
    assert (
        not {"fashion_mnist.choice.csv", "deployment.csv"} & published
    )  # the card's stay the reproduction's
    earlier = suite_paths.earlier_run_files(anchor)
    assert earlier and all((REPO / path).is_file() for path in earlier)


def test_the_variants_config_attacks_each_variant_beside_adversarial_training_on_the_suites_images():
    variants = checked("reproduce-fmnist.yaml", "docs/reproduction/variants/config.yaml")
    reproduction = checked("reproduce-fmnist.yaml")
    defenses = suite_paths.robustness_defenses(variants, "fashion_mnist")
    assert set(defenses) == {
        "none",
        "adversarial",
        *(f"variant_{name}" for name in variants["variants"]["cards"]),
    }
    assert "cowboy" not in defenses and "adversarial_cowboy" not in defenses
    assert suite_paths.robustness_params(variants) == suite_paths.robustness_params(reproduction)
    published = {Path(p).name for p in paths.published_copies(variants)}
    assert {"which_defence.csv", "encoder.choice.csv", "rec.choice.csv"} <= published
    # The choices the variants rest on, made on this run's models, beside them; the card's
    # other outputs stay the reproduction's.
    assert {"fashion_mnist.choice.csv", "fashion_mnist.gan-choice.csv"} <= published
    assert not {"fashion_mnist.alone.csv", "deployment.csv"} & published
    assert all((REPO / path).is_file() for path in suite_paths.earlier_run_files(variants))


def test_the_eps01_variants_config_attacks_rec_at_the_suites_params_so_its_runs_stay_valid():
    """docs/reproduction/variants/eps0.1/config.yaml runs one epsilon at scale 1: its jobs compute with
    the same params as the whole variants run (which climbs from them), Carlini's checks
    included, so a later run of variants-fmnist.yaml reruns none of them."""
    whole = checked("reproduce-fmnist.yaml", "docs/reproduction/variants/config.yaml")
    first = checked(
        "reproduce-fmnist.yaml",
        "docs/reproduction/variants/config.yaml",
        "docs/reproduction/variants/eps0.1/config.yaml",
    )
    assert suite_paths.robustness_params(first) == suite_paths.robustness_params(whole)
    assert first["robustness"]["check_epsilon"] not in first["robustness"]["epsilons"]  # no checks here
    defenses = suite_paths.robustness_defenses(first, "fashion_mnist")
    assert defenses == ["none", "adversarial", "variant_rec"]
    files = suite_paths.robustness_files(first)
    assert files == [f"results/robustness/fashion_mnist/{d}_eps0.1.parquet" for d in defenses]
    at_scale_1 = {**whole, "robustness": {**whole["robustness"], "scale": 1}}
    assert set(files) <= set(suite_paths.robustness_files(at_scale_1))  # the whole run's first rung
    published = paths.published_copies(first)
    assert published and all(p.startswith("docs/reproduction/variants/eps0.1/") for p in published)


def test_the_anchor_cleaning_config_attacks_cleaning_on_adversarial_training_at_the_suites_params():
    """The cleaned-eps0.1 experiment (CLEANED_EPS01) adds clean-all in front of the adversarially
    trained classifier at one epsilon and scale 1: the same params as the anchor run (a
    first rung of it), and it publishes the card's and GAN's choices that cleaning rests on."""
    anchor = checked("reproduce-fmnist.yaml", ANCHOR)
    first = checked(
        "reproduce-fmnist.yaml",
        ANCHOR,
        CLEANED_EPS01,
    )
    assert suite_paths.robustness_params(first) == suite_paths.robustness_params(anchor)
    defenses = suite_paths.robustness_defenses(first, "fashion_mnist")
    assert defenses == ["none", "adversarial", "adversarial_cowboy"]
    files = suite_paths.robustness_files(first)
    assert files == [f"results/robustness/fashion_mnist/{d}_eps0.1.parquet" for d in defenses]
    published = paths.published_copies(first)
    out = "docs/reproduction/against-adversarial-training/cleaned-eps0.1/"
    assert published and all(p.startswith(out) for p in published)
    names = {Path(p).name for p in published}
    assert {"fashion_mnist.choice.csv", "fashion_mnist.gan-choice.csv", "which_defence.csv"} <= names
    assert not {"fashion_mnist.alone.csv", "deployment.csv"} & names  # the card's stay the reproduction's
    earlier = suite_paths.earlier_run_files(first)
    assert "docs/reproduction/variants/eps0.1/robustness.csv" in earlier
    assert all((REPO / path).is_file() for path in earlier)


def test_the_latent_steps_setting_leaves_the_committed_runs_params_alone():
    """Unset, the suite runs the 200 latent steps every committed run ran: those runs' params
    must not gain the key, or Snakemake would rerun every shard they committed."""
    for names in (
        ("reproduce-fmnist.yaml",),
        ("reproduce-fmnist.yaml", "docs/reproduction/variants/config.yaml"),
    ):
        assert "latent_steps" not in suite_paths.robustness_params(checked(*names))
    assert suite_paths.robustness_params(checked("tests/config/tiny.yaml"))["latent_steps"] == 10
