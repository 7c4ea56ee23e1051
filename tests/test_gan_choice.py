"""Which GAN the pipeline uses (cowboy_pipeline.gan_choice): the rule, its paths and its config."""

import copy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from cowboy_pipeline import gan_choice, paths
from cowboy_pipeline.config import ConfigError, validate_config

from .conftest import copy_tree, job_counts, run_snakemake
from .test_config import SCHEMA, TINY

W = SimpleNamespace(dataset="fashion_mnist")


def _outcomes(accuracies, n=400, seed=0):
    """Per GAN step, per-image outcomes over two attacks; a better GAN keeps every image the
    worse one gets right (nested), so that the pairs carry the difference."""
    rng = np.random.default_rng(seed)
    draw = rng.random(n)
    return {
        step: pd.DataFrame(
            {
                "attack": np.repeat(["none", "fgsm"], n // 2),
                "index": np.tile(np.arange(n // 2), 2),
                "correct": draw < accuracy,
                "undefended": draw < 0.3,
            }
        )
        for step, accuracy in accuracies.items()
    }


def test_a_clearly_better_longer_gan_replaces_the_shortest():
    table = gan_choice.choose_gan(_outcomes({2000: 0.5, 5000: 0.6, 10000: 0.7}))
    assert gan_choice.chosen_step(table) == 10000
    assert table.set_index("gan_steps")["beats_shortest"].to_dict() == {2000: False, 5000: True, 10000: True}
    assert table.loc[table["gan_steps"] == 10000, "difference"].item() == pytest.approx(0.2, abs=0.02)


def test_a_difference_inside_the_noise_keeps_the_shortest():
    # 0.5% better on 400 images: two discordant pairs, an interval that reaches zero.
    table = gan_choice.choose_gan(_outcomes({2000: 0.5, 10000: 0.505}))
    assert gan_choice.chosen_step(table) == 2000
    assert not table["beats_shortest"].any()
    worse = gan_choice.choose_gan(_outcomes({2000: 0.6, 10000: 0.4}))
    assert gan_choice.chosen_step(worse) == 2000


def test_equally_good_longer_gans_go_to_the_shorter():
    table = gan_choice.choose_gan(_outcomes({2000: 0.4, 5000: 0.7, 10000: 0.7}))
    assert gan_choice.chosen_step(table) == 5000


def test_the_rows_per_attack_and_the_rule_are_written():
    table = gan_choice.choose_gan(_outcomes({2000: 0.5, 5000: 0.6}))
    assert {"accuracy_none", "accuracy_fgsm", "accuracy_low", "accuracy_high", "rule", "n"} <= set(table)
    assert (
        table["undefended_none"].tolist()
        == [pytest.approx(np.mean(np.random.default_rng(0).random(400)[:200] < 0.3))] * 2
    )
    assert (table["accuracy_low"] <= table["accuracy"]).all() and (table["n"] == 400).all()


def _rows(step, order):
    return pd.DataFrame(
        {
            "ckpt": step,
            "steps": 25,
            "attack": "fgsm",
            "index": order,
            "label": 1,
            "pred_cleaned": 1,
            "pred_adversarial": 0,
        }
    )


def test_outcomes_pair_the_same_images_and_refuse_others():
    rows = pd.concat([_rows(2000, [0, 1, 2]), _rows(5000, [2, 1, 0]), _rows(5000, [0]).assign(steps=10)])
    by_gan = gan_choice.outcomes(rows, [2000, 5000], steps=25)
    assert by_gan[5000]["index"].tolist() == [0, 1, 2]  # sorted into the same pairs
    with pytest.raises(ValueError, match="step 5000"):
        gan_choice.outcomes(pd.concat([_rows(2000, [0, 1]), _rows(5000, [0, 3])]), [2000, 5000], steps=25)
    with pytest.raises(ValueError, match="exactly one"):
        gan_choice.chosen_step(pd.DataFrame({"gan_steps": [1, 2], "chosen": [True, True]}))


def _with_candidates(candidates, choose_on=("none", "fgsm")):
    config = copy.deepcopy(TINY)
    config["datasets"]["fashion_mnist"]["gan"] |= {"candidates": candidates, "choose_on": list(choose_on)}
    return validate_config(config, copy.deepcopy(SCHEMA))


def test_candidates_make_the_pipeline_use_the_chosen_gan():
    config = _with_candidates([10, 20])
    assert paths.final_ckpt(config, "fashion_mnist") == "chosen"
    assert paths.final_gan(config, W) == "results/models/fashion_mnist/gan/chosen.safetensors"
    assert gan_choice.candidate_files(config, W)[-1] == "results/models/fashion_mnist/gan/step20.safetensors"
    inputs = gan_choice.validation_files(config, W)
    assert len(inputs) == 4 and all("/val/" in f and "cowboy" in f for f in inputs)
    assert any("ckpt10" in f for f in inputs) and any("/none/" in f for f in inputs)
    assert any(c.endswith("fashion_mnist.gan-choice.csv") for c in paths.published_sources(config))
    unchosen = validate_config(copy.deepcopy(TINY), copy.deepcopy(SCHEMA))
    assert (
        paths.final_ckpt(unchosen, "fashion_mnist") == unchosen["datasets"]["fashion_mnist"]["gan"]["steps"]
    )


def test_more_steps_or_candidates_retrain_no_saved_step():
    longer = _with_candidates([10, 20])
    longer["datasets"]["fashion_mnist"]["gan"]["steps"] = 40
    base = validate_config(copy.deepcopy(TINY), copy.deepcopy(SCHEMA))
    assert paths.gan_params(longer, W) == paths.gan_params(base, W)
    base["datasets"]["fashion_mnist"]["gan"]["lr"] = 0.1
    assert paths.gan_params(longer, W) != paths.gan_params(base, W)


@pytest.mark.parametrize(
    ("candidates", "choose_on", "named"),
    [
        ([10, 15], ["none"], "15 is not a saved GAN step"),
        ([20], ["none"], "two or more"),
        ([10, 20], ["none", "cw"], "gan.choose_on"),
    ],
)
def test_a_bad_choice_names_its_key(candidates, choose_on, named):
    with pytest.raises(ConfigError, match=named):
        _with_candidates(candidates, choose_on)


@pytest.mark.slow
def test_the_pipeline_chooses_a_gan_and_cleans_with_it(tiny_run, tmp_path):
    """Candidates on an existing run: the saved steps are reused, the choice copies one of them
    byte for byte, and cleaning with the chosen GAN is cleaning with that step."""
    run = tmp_path / "run"
    copy_tree(tiny_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["datasets"]["fashion_mnist"]["gan"] |= {"candidates": [10, 20], "choose_on": ["none", "fgsm"]}
    (run / "chosen.yaml").write_text(yaml.safe_dump(config))
    target = "results/clean/fashion_mnist/test/fgsm/cowboy_sigma1_run6_ckptchosen.parquet"
    args = (target, "--cores", "2", "--configfile", str(run / "chosen.yaml"))
    counts = job_counts(run_snakemake(run, "-n", *args).stdout)
    assert counts["choose_gan"] == 1 and "train_gan" not in counts
    run_snakemake(run, *args)
    step = gan_choice.chosen_step(pd.read_csv(run / "results/models/fashion_mnist.gan-choice.csv"))
    models = run / "results/models/fashion_mnist/gan"
    assert (models / "chosen.safetensors").read_bytes() == (models / f"step{step}.safetensors").read_bytes()
    chosen = pd.read_parquet(run / target)
    same_step = pd.read_parquet(run / target.replace("ckptchosen", f"ckpt{step}"))
    assert (chosen["ckpt"] == step).all()
    pd.testing.assert_frame_equal(chosen, same_step)
    run_snakemake(run, "--report", "report.html", "--configfile", str(run / "chosen.yaml"))
    assert "fashion_mnist.gan-choice.csv" in (run / "report.html").read_text(errors="replace")
