"""The real pipeline on tests/config/tiny.yaml (real Fashion-MNIST, tiny sizes)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from cowboy_core.card import classifier_fingerprint
from cowboy_core.io import load_models, load_tensors
from cowboy_pipeline import shard_archive

from .conftest import REPO, copy_tree, job_counts, run_snakemake

pytestmark = pytest.mark.slow

FIGURES = [
    "fig1_toy_classifier",
    "fig2_toy_discriminator",
    "fig3_scores",
    "fig4_lowest_real",
    "fig5_cleaning",
    "fig6_gan_quality_cleaning",
    "fig7_gan_quality_detection",
]


def test_tables_detection_and_all_figures(tiny_run: Path):
    results = tiny_run / "results"
    table1 = pd.read_csv(results / "table1.csv")
    table2 = pd.read_csv(results / "table2.csv")
    assert table1["attack"].tolist() == ["fgsm", "pgd", "bim", "mim", "vam"]
    quantities = ("original", "adversarial", "clean", "clean_card")
    assert list(table1.columns[1:]) == [f"fashion_mnist/{q}" for q in quantities]
    methods = ("defense_gan", "cowboy", "defense_gan_card", "cowboy_card")
    assert list(table2.columns[1:]) == [f"fashion_mnist/{m}" for m in methods]
    # Table 1's card column is Table 2's cowboy at the card: one cleaning, two tables.
    assert table1["fashion_mnist/clean_card"].tolist() == table2["fashion_mnist/cowboy_card"].tolist()
    for table in (table1, table2):
        values = table.drop(columns="attack").to_numpy()
        assert values.size and ((values >= 0) & (values <= 1)).all()
    detection = pd.read_csv(results / "detection.csv")
    assert set(detection["attack"]) == {"fgsm", "pgd", "bim", "mim", "vam"}
    assert detection["roc_auc"].between(0, 1).all() and detection["threshold"].between(0, 1).all()
    accuracy = pd.read_csv(results / "accuracy.csv")
    assert (accuracy["ci_low"] <= accuracy["accuracy"]).all()
    assert (accuracy["accuracy"] <= accuracy["ci_high"]).all()
    for name in FIGURES:
        png = results / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_per_sample_parquet_has_one_row_per_image_and_step(tiny_run: Path):
    path = tiny_run / "results/clean/fashion_mnist/test/fgsm/cowboy_sigma1_run6_ckpt20.parquet"
    frame = pd.read_parquet(path)
    for column in (
        "index",
        "label",
        "pred_original",
        "pred_adversarial",
        "pred_cleaned",
        "d_original",
        "d_adversarial",
        "d_cleaned",
        "attack",
        "method",
        "sigma",
        "steps",
        "ckpt",
    ):
        assert column in frame.columns
    assert sorted(frame["steps"].unique()) == [3, 6]
    assert len(frame) == 2 * 48
    assert not frame.duplicated(["index", "steps"]).any()


def readme_sigma_reruns() -> set[str]:
    """The rules the README says a sigma edit runs again: the backticked names in its paragraph
    that begins "Change `cleaning.sigma`"."""
    readme = (REPO / "README.md").read_text()
    paragraph = readme.split("Change `cleaning.sigma`", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z0-9_]+)`", paragraph.split(";", 1)[0]))


def test_changing_sigma_reruns_exactly_the_jobs_the_readme_names(tiny_run: Path):
    """A config rewritten by a tool (yaml.safe_dump sorts the keys) with a new sigma: the dry
    run lists exactly the rules the README names, never data, training, attacks or scores."""
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    config["cleaning"]["sigma"] = 0.25
    changed = tiny_run / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=True))
    keys = list(yaml.safe_load((tiny_run / "config.yaml").read_text()))
    assert keys != sorted(keys)  # the run's config was in another key order
    proc = run_snakemake(tiny_run, "-n", "--cores", "2", "--configfile", str(changed))
    counts = job_counts(proc.stdout)
    assert set(counts) - {"all"} == readme_sigma_reruns(), sorted(counts)
    for rule in ("prepare_train", "prepare_eval", "train_classifier", "train_gan", "attack", "score", "toy"):
        assert rule not in counts, f"{rule} rescheduled by a sigma change: {counts}"
    # And the unchanged config has nothing left to do.
    again = run_snakemake(tiny_run, "-n", "--cores", "2", "--configfile", str(tiny_run / "config.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_defence_card_and_deployment_use_the_pipelines_numbers(tiny_run: Path):
    from cowboy_core import Cowboy, Policy

    card = Cowboy.load(tiny_run / "results/defense/fashion_mnist.safetensors")
    detection = pd.read_csv(tiny_run / "results/detection.csv")
    assert card.threshold == detection["threshold"].iloc[0]
    grid = pd.read_csv(tiny_run / "results/defense/fashion_mnist.choice.csv")
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert set(grid["setting"]) == set(config["card"]["grid"]) and grid["chosen"].sum() == 1
    chosen = grid[grid["chosen"]].iloc[0]
    assert bool(chosen["feasible"]) and chosen["objective"] == grid[grid["feasible"]]["objective"].max()
    settings = card.settings
    assert (settings.optimizer, settings.steps, settings.lr) == (
        chosen["optimizer"],
        chosen["steps"],
        chosen["lr"],
    )
    assert card.card["provenance"]["settings"]["chosen"] == chosen["setting"]
    assert card.card["provenance"]["settings"]["source"].endswith("fashion_mnist.choice.csv")
    assert (grid["n"] == config["card"]["images"]).all() and grid["flip_rate_perturbed"].between(0, 1).all()
    assert card.card["provenance"]["threshold"]["split"] == "val"
    # Each card names the classifier its settings were chosen in front of, by fingerprint.
    models = tiny_run / "results/models/fashion_mnist"
    for path, chosen_for in (
        ("fashion_mnist", "classifier"),
        ("fashion_mnist/variants/enc-rec", "classifier_rec"),
    ):
        record = Cowboy.load(tiny_run / f"results/defense/{path}.safetensors").card["provenance"][
            "classifier"
        ]
        (classifier,) = load_models(models / f"{chosen_for}.safetensors")[0].values()
        assert record == {"source": f"results/models/fashion_mnist/{chosen_for}.safetensors",
                          "sha256": classifier_fingerprint(classifier)}  # fmt: skip
    # The deployed card, rechunked on every chooser image and alone on the first few of each
    # kind: bit-invariant.
    alone = pd.read_csv(tiny_run / "results/defense/fashion_mnist.alone.csv")
    assert set(alone["comparison"]) == {"alone", "rechunked", "perturbed"}
    alone_rows = alone["comparison"] == "alone"
    assert (alone.loc[alone_rows, "images"] == config["card"]["deployed_alone_images"]).all()
    assert (alone.loc[~alone_rows, "images"] == config["card"]["images"]).all()
    invariant = alone[alone["comparison"] != "perturbed"]
    assert (invariant["flips"] == 0).all() and (alone["pixels_max_change_alone"] == 0).all()
    deployment = pd.read_csv(tiny_run / "results/deployment.csv")
    assert set(deployment["policy"]) == set(Policy)
    clean_all = deployment[deployment["policy"] == "clean-all"]
    assert (clean_all["false_alarm_rate"] == 1).all()  # clean-all cleans every input
    assert (deployment["ci_low"] <= deployment["stream_accuracy"]).all()


def test_discriminator_study_chooses_on_validation_and_pairs_on_test(tiny_run: Path):
    import json

    table = pd.read_csv(tiny_run / "results/discriminator_study.csv")
    own = table[table["comparison"] == "own validation choice"]
    assert {"pooled", "seed0_step20", "seed1_step20", "seed0_step30"} <= set(own["gan"])
    assert set(own["attack"]) == {"fgsm", "none"}  # "none": what cleaning costs clean images
    assert ((own["ci_low"] <= own["difference"]) & (own["difference"] <= own["ci_high"])).all()
    assert own["mcnemar_p"].between(0, 1).all() and own["tost_p"].between(0, 1).all()
    pooled = own[(own["gan"] == "pooled") & (own["attack"] == "fgsm")].iloc[0]
    assert pooled["n"] == 2 * 8  # the two seeds at the standard steps, not the longer GAN
    chosen = tiny_run / "results/discriminator_study/fashion_mnist/seed1_step20/chosen.json"
    choice = json.loads(chosen.read_text())
    assert set(choice["chosen"]) == {"cowboy", "defense_gan"} and choice["split"] == "val"
    assert choice["chosen"]["defense_gan"]["setting"]["d_weight"] == 0 and choice["validation"]
    grid = pd.read_csv(tiny_run / "results/discriminator_study_validation.csv")
    # Flips are measured on the first GAN's grid (not the long runs) and used for every GAN.
    on_grid = (grid["steps"] <= 4) & grid["d_weight"].isin([0, 16])  # not the long runs' extra d_weight 1
    assert grid.loc[on_grid, "flip_rate"].notna().all()


def test_paper_config_schedules_all_datasets_and_attacks(tmp_path: Path):
    # Targets go before --configfile, which takes several values.
    config = str(REPO / "config" / "config.yaml")
    proc = run_snakemake(tmp_path, "results/table2.csv", "-n", "--cores", "8", "--configfile", config)
    counts = job_counts(proc.stdout)
    assert counts["train_classifier"] == 4
    assert counts["prepare_train"] == 4 and counts["prepare_eval"] == 4
    assert counts["train_gan"] >= 4
    # 4 datasets x 5 attacks x (test + validation split)
    assert counts["attack"] == 4 * 5 * 2
    assert "toy" not in counts  # table2 needs no figure


# Every kind of seeded job: training both models (the GAN's second segment resumes from the
# first's state), an attack and a cleaning. The tables are functions of these files.
SEEDED_OUTPUTS = [
    "results/models/fashion_mnist/classifier.safetensors",
    "results/models/fashion_mnist/gan/step20.safetensors",
    "results/attacks/fashion_mnist/test/pgd.safetensors",
    "results/clean/fashion_mnist/test/pgd/cowboy_sigma1_run6_ckpt20.parquet",
]


def test_seeded_jobs_rerun_to_the_same_bits(tiny_run: Path, tmp_path: Path):
    again = tmp_path / "again"
    copy_tree(tiny_run, again)
    run_snakemake(
        again, *SEEDED_OUTPUTS, "--force", "--cores", "2", "--configfile", str(again / "config.yaml")
    )
    log = (again / "results/logs/train_classifier/fashion_mnist.log").stat().st_mtime
    assert log > (tiny_run / "results/logs/train_classifier/fashion_mnist.log").stat().st_mtime  # it reran
    for name in SEEDED_OUTPUTS:
        if name.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(again / name), pd.read_parquet(tiny_run / name))
            continue
        rerun, first = load_tensors(again / name)[0], load_tensors(tiny_run / name)[0]
        assert rerun.keys() == first.keys() and all(torch.equal(rerun[k], first[k]) for k in first), name


def test_html_report_holds_every_table_and_figure(tiny_run: Path):
    """The tiny config switches every study on: the report must render and hold each output
    that a rule marks for it (a missing caption file or a renamed output fails here)."""
    text = "\n".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    marked = {Path(m).name for m in re.findall(r'report\(\s*"(results/[^"]+)"', text)}
    marked = {name.replace("{dataset}", "fashion_mnist") for name in marked}
    # The GAN choice runs only with gan.candidates, which would rename the tiny run's every
    # cleaning path: tests/test_gan_choice.py renders its report on a copy that has them.
    marked -= {"fashion_mnist.gan-choice.csv"}
    assert len(marked) >= 20
    run_snakemake(tiny_run, "--report", "report.html", "--configfile", str(tiny_run / "config.yaml"))
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert not [name for name in marked if name not in html]


def test_cleaning_benchmark_runs_its_curves_on_the_pipelines_models(tiny_run: Path, tmp_path: Path):
    out, results = tmp_path / "cleaning.json", str(tiny_run / "results")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_cleaning",
            "--smoke",
            "--out",
            str(out),
            "--results",
            results,
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    report = json.loads(out.read_text())
    assert set(report["convergence"]) == {"gd", "momentum", "adam"}
    assert 0 <= report["early_stop"]["accuracy"] <= 1 and "within_half_point" in report["bf16_check"]


def test_robustness_suite_tables_cover_every_defence_policy_and_the_convergence_check(tiny_run: Path):
    results = tiny_run / "results"
    table = pd.read_csv(results / "robustness.csv")
    worst = table[(table["attack"] == "worst_case") & (table["seed"] == "fixed")]
    cells = set(zip(worst["defense"], worst["policy"], strict=True))
    policies = ("clean-all", "detect-then-clean", "reject")
    cleaned = ("cowboy", "defense_gan", "adversarial_cowboy", "variant_enc-rec")
    bare = {("none", "undefended"), ("adversarial", "undefended")}
    assert cells == bare | {(m, p) for m in cleaned for p in policies}
    assert (
        worst["robust_accuracy"].between(0, 1).all() and (worst["ci_low"] <= worst["robust_accuracy"]).all()
    )
    # Attack after attack, the worst case only falls, and it ends at the worst-case row.
    steps = table[(table["seed"] == "fixed") & table["worst_case_so_far"].notna()]
    for _, cell in steps.groupby(["defense", "policy", "epsilon"], sort=False):
        assert (cell["worst_case_so_far"].diff().dropna() <= 1e-12).all()
        assert (
            cell["worst_case_so_far"].iloc[-1]
            == cell[cell["attack"] == "worst_case"]["robust_accuracy"].iloc[0]
        )
    convergence = pd.read_csv(results / "robustness_convergence.csv")
    assert set(zip(convergence["defense"], convergence["policy"], strict=True)) == cells
    assert ((convergence["moved"].abs() <= convergence["allowed"]) == convergence["converged"]).all()
    assert (convergence["moved"] <= 0).all()  # the doubled run starts from the main run's breaks
    which = pd.read_csv(results / "which_defence.csv")
    assert set(which["defense"]) == {d for d, _ in cells} and (results / "figures/which_defence.png").exists()
    assert which.loc[which["defense"] == "cowboy", "policy"].eq("clean-all").all()
    summary = pd.read_csv(results / "which_defence_summary.csv")  # the one run, relabelled
    assert summary["run"].eq("tiny run").all() and len(summary) == len(which)
    assert (results / "which_defence_summary.png").exists()
    chaos = pd.read_csv(results / "chaos.csv")
    assert set(zip(chaos["method"], chaos["settings"], strict=True)) == {
        (m, s) for m in ("cowboy", "defense_gan") for s in ("card", "paper")
    }
    assert chaos["prediction_flip_rate_perturbed"].between(0, 1).all()


def test_a_run_that_attacks_some_defences_draws_an_earlier_runs_others_unpaired(
    tiny_run: Path, tmp_path: Path
):
    """The anchor's way (docs/reproduction/against-adversarial-training/config.yaml): attack
    only the bare classifiers, and draw a committed suite's cleaners beside them. Only the report reruns."""
    anchor = tmp_path / "anchor"
    copy_tree(tiny_run, anchor)
    for name in ("robustness.csv", "robustness_convergence.csv"):
        (anchor / f"earlier_{name}").write_text((anchor / "results" / name).read_text())
    config = yaml.safe_load((anchor / "config.yaml").read_text())
    config["robustness"] |= {
        "defenses": ["none", "adversarial"],
        "earlier_runs": [
            {
                "label": "chosen card",
                "table": "earlier_robustness.csv",
                "convergence": "earlier_robustness_convergence.csv",
            }
        ],
    }
    (anchor / "anchor.yaml").write_text(yaml.safe_dump(config))
    # The target first: after --configfile Snakemake would read it as a second config file.
    args = ("results/which_defence.csv", "--cores", "2", "--configfile", str(anchor / "anchor.yaml"))
    assert set(job_counts(run_snakemake(anchor, "-n", *args).stdout)) == {"robustness_report"}
    run_snakemake(anchor, *args)
    which = pd.read_csv(anchor / "results/which_defence.csv")
    ours = which[which["run"] == "this run"]
    assert set(ours["defense"]) == {"none", "adversarial"}
    earlier = which[which["run"] == "chosen card"]
    assert {"cowboy", "defense_gan"} <= set(earlier["defense"]) and earlier[
        "robust_minus_adversarial"
    ].isna().all()
    before = pd.read_csv(tiny_run / "results/which_defence.csv").set_index(["defense", "epsilon"])
    for row in earlier.itertuples():  # the earlier run's numbers, unchanged
        assert row.robust_accuracy == pytest.approx(before.loc[(row.defense, row.epsilon), "robust_accuracy"])


def test_climbing_the_suites_scale_reruns_no_run_below_it(tiny_run: Path):
    """After a failed convergence check a user raises robustness.scale: the suite climbs from
    the runs already there (one new main run and one check per defence and epsilon)."""
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    config["robustness"]["scale"] = 2
    climbed = tiny_run / "climbed.yaml"
    climbed.write_text(yaml.safe_dump(config))
    counts = job_counts(run_snakemake(tiny_run, "-n", "--cores", "2", "--configfile", str(climbed)).stdout)
    runs = (tiny_run / "results" / "robustness").glob("*/*_eps*.parquet")
    main_runs = len([run for run in runs if not run.stem.endswith("_x2")])
    assert main_runs > 0 and counts.get("robustness_scaled") == counts.get("robustness_doubled") == main_runs
    assert not {"robustness", "clean", "attack", "train_gan", "defense_card"} & set(counts)


def test_adding_an_epsilon_reruns_nothing_of_the_epsilons_already_run(tiny_run: Path):
    """The adversarially trained classifier is chosen per epsilon, so a run that lists one more
    epsilon chooses and attacks at that one alone: no model or suite run at 0.3 is redone
    (one choice over every epsilon rewrote them all, and every suite run downstream)."""
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    config["robustness"]["epsilons"] = [0.3, 0.1]
    more = tiny_run / "more_epsilons.yaml"
    more.write_text(yaml.safe_dump(config))
    dry = run_snakemake(tiny_run, "-n", "--cores", "2", "--configfile", str(more)).stdout
    assert job_counts(dry)["adversarial_choice"] == 1
    outputs = re.findall(r"^\s+output: (.*)$", dry, flags=re.M)
    assert any("adversarial_eps0.1.safetensors" in line for line in outputs)
    assert not [line for line in outputs if "eps0.3" in line]


@pytest.fixture(scope="module")
def sharded_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """The tiny run with the bare classifier's suite split into shards of three images; its
    directory and the arguments that run it (not yet run)."""
    sharded = tmp_path_factory.mktemp("sharded") / "run"
    copy_tree(tiny_run, sharded)
    config = yaml.safe_load((sharded / "config.yaml").read_text())
    config["robustness"] |= {"defenses": ["none"], "shard_images": 3}
    (sharded / "sharded.yaml").write_text(yaml.safe_dump(config))
    return sharded, ("results/robustness.csv", "--cores", "2", "--configfile", str(sharded / "sharded.yaml"))


def test_a_sharded_main_run_gathers_its_shards_and_the_check_and_report_read_it(
    sharded_run: tuple[Path, tuple[str, ...]],
):
    """robustness.shard_images splits a main run by image (a long run then resumes by shard):
    three shards of the bare classifier's run and two of its check, each gathered into the
    run's file that the report reads as before. Square still runs on the run's first four
    images only, and the check's shards start from the main run's shards of their images."""
    sharded, args = sharded_run
    counts = job_counts(run_snakemake(sharded, "-n", *args).stdout)
    assert counts == {
        "robustness_shard": 3,
        "robustness": 1,
        "robustness_doubled_shard": 2,
        "robustness_doubled": 1,
        "robustness_report": 1,
    }
    run_snakemake(sharded, *args)
    shard_files = sorted(
        (sharded / "results/robustness/fashion_mnist/shards").glob("none_eps0.3_s1_images*.parquet")
    )
    assert [f.stem.rsplit("_images", 1)[1] for f in shard_files] == ["0-3", "3-6", "6-8"]
    rows = pd.read_parquet(sharded / "results/robustness/fashion_mnist/none_eps0.3.parquet")
    test_index = load_tensors(str(sharded / "results/data/fashion_mnist/eval.safetensors"))[0]["test_index"]
    assert set(rows["image"]) == set(test_index[:8].tolist())
    assert set(rows[rows["attack"] == "square"]["image"]) <= set(test_index[:4].tolist())
    # The check's two shards (its first four images) start from the main run's shards 0-3, 3-6.
    check = pd.read_parquet(sharded / "results/robustness/fashion_mnist/none_eps0.3_x2.parquet")
    assert set(check["image"]) == set(test_index[:4].tolist()) and "earlier_run" in set(check["attack"])
    assert not check["attack"].str.startswith("check_").any() and set(check["budget"]) == {2}
    table = pd.read_csv(sharded / "results/robustness.csv")
    assert set(table["defense"]) == {"none"}
    # Only Square may attack no image (every image it covers broken already), and so change nothing.
    idle = table[table["n"] == 0]
    assert set(idle["attack"]) <= {"square"} and idle["robust_accuracy"].isna().all()
    so_far = table.groupby(["policy", "seed", "epsilon"])["worst_case_so_far"]
    assert (table.loc[idle.index, "worst_case_so_far"] == so_far.shift(1).loc[idle.index]).all()


def test_finished_shards_carried_to_a_new_machine_rerun_nothing_unless_an_input_differs(
    sharded_run: tuple[Path, tuple[str, ...]], tmp_path: Path
):
    """The shard archive (a suite longer than a machine's life resumes through git): saved
    from the finished run, it restores every shard, and the inputs they read, into an empty
    run directory, where Snakemake then trains nothing and attacks nothing, only gathers; in
    a run whose classifier has other bits it restores none, and a tampered archive is
    refused with one line."""
    sharded, args = sharded_run
    if not (sharded / "results/robustness.csv").exists():
        run_snakemake(sharded, *args)
    archive = tmp_path / "archive"
    assert shard_archive.main(["save", str(sharded), str(archive), "--", *args[:1], *args[3:]]) == 0
    saved = json.loads((archive / "manifest.json").read_text())["shards"]
    assert len([output for output in saved if "/shards/" in output]) == 5  # 3 main, 2 of the check
    assert (archive / "results/defense/fashion_mnist.safetensors").is_file()

    empty = tmp_path / "new-machine"
    restored, skipped = shard_archive.restore(empty, archive)
    assert (sorted(restored), skipped) == (sorted(saved), {})
    (empty / "results/robustness.csv").unlink(missing_ok=True)
    resume = (*args, "--allowed-rules", *shard_archive.SUITE_RULES)
    assert job_counts(run_snakemake(empty, "-n", *resume).stdout) == {"robustness_report": 1}
    run_snakemake(empty, *resume)
    table = pd.read_csv(empty / "results/robustness.csv")
    assert table.equals(pd.read_csv(sharded / "results/robustness.csv"))

    other = tmp_path / "other"
    copy_tree(sharded, other)
    shutil.rmtree(other / "results/robustness")
    classifier = other / "results/models/fashion_mnist/classifier.safetensors"
    classifier.write_bytes(classifier.read_bytes() + b" ")
    restored, skipped = shard_archive.restore(other, archive)
    assert restored == [] and all("differs" in reason for reason in skipped.values())

    shard = next((archive / "results/robustness").rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-1])
    command = [sys.executable, "-m", "cowboy_pipeline.shard_archive", "restore", str(tmp_path / "b")]
    command.append(str(archive))
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow_scripts")}
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "hash" in proc.stderr
