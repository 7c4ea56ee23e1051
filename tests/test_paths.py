"""The pipeline's path and params functions (cowboy_pipeline.paths, .study_paths), on the
checked configs the rules bind them to."""

import copy
import re
from types import SimpleNamespace

import pytest
import yaml

from cowboy_pipeline import paths, study_paths, suite_paths

from .configs import checked
from .conftest import REPO


@pytest.fixture(scope="module")
def tiny():
    return checked("tests/config/tiny.yaml")


def test_every_function_the_rules_call_exists_bound():
    """A rule naming paths.X, study.X or suite.X fails at parse time on a typo; this names it first."""
    config = checked("tests/config/tiny.yaml")
    modules = {"paths": paths, "study": study_paths, "suite": suite_paths}
    bound = {space: paths.bind(module, config) for space, module in modules.items()}
    text = "\n".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    text += (REPO / "Snakefile").read_text()
    used = {
        hit for hit in re.findall(r"\b(paths|study|suite)\.(\w+)", text) if hit[1] != "py"
    }  # not "paths.py"
    assert len(used) > 30
    missing = [f"{space}.{name}" for space, name in used if not hasattr(bound[space], name)]
    assert not missing
    # Only functions of the config are bound: a helper of other arguments would get the config
    # as its first argument by mistake.
    assert not hasattr(bound["paths"], "clean_path") and not hasattr(bound["paths"], "bind")


def test_tables_clean_every_attack_with_both_methods_on_test(tiny):
    files = paths.table_clean_files(tiny)
    attacks = list(tiny["datasets"]["fashion_mnist"]["attacks"])
    assert len(files) == len(attacks) * len(tiny["cleaning"]["methods"])
    assert all(
        "/test/" in f and f"ckpt{tiny['datasets']['fashion_mnist']['gan']['steps']}" in f for f in files
    )
    grids = paths.cleaning_grid_files(tiny)
    assert [g.replace(".grid.safetensors", ".parquet") for g in grids] == files


def test_figure5_has_a_page_for_the_matched_budgets_and_one_per_attack_label(tiny):
    assert paths.figure5_files(tiny) == ["results/figures/fig5_cleaning.png"]
    attacks = tiny["datasets"]["fashion_mnist"]["attacks"]
    labelled = {
        **tiny,
        "datasets": {"fashion_mnist": {"attacks": {**attacks, "pgd-std": {}, "fgsm-std": {}}}},
    }
    assert paths.figure5_files(labelled) == [
        "results/figures/fig5_cleaning.png",
        "results/figures/fig5_cleaning_std.png",
    ]


def test_the_sweep_runs_on_validation_only(tiny):
    files = paths.sweep_clean_files(tiny)
    assert files and all("/val/" in f for f in files)


def test_gan_segments_resume_from_the_previous_checkpoint(tiny):
    steps = paths.gan_steps(tiny, "fashion_mnist")
    assert steps == sorted(steps) and steps[-1] == tiny["datasets"]["fashion_mnist"]["gan"]["steps"]
    first = SimpleNamespace(dataset="fashion_mnist", step=str(steps[0]))
    assert paths.previous_gan_state(tiny, first) == []
    if len(steps) > 1:
        second = SimpleNamespace(dataset="fashion_mnist", step=str(steps[1]))
        assert paths.previous_gan_state(tiny, second).endswith(f"step{steps[0]}.state.pt")


def test_robustness_params_leave_out_the_epsilons_so_adding_one_reruns_nothing(tiny):
    params = suite_paths.robustness_params(tiny)
    assert (
        "epsilons" not in params
        and "datasets" not in params
        and params["steps"] == tiny["robustness"]["steps"]
    )
    more = copy.deepcopy(tiny)
    more["robustness"]["epsilons"] = [*more["robustness"]["epsilons"], 0.05]
    assert suite_paths.robustness_params(more) == params
    assert len(suite_paths.robustness_files(more)) > len(suite_paths.robustness_files(tiny))
    assert all(f.endswith("_x2.parquet") for f in suite_paths.robustness_files(tiny, doubled=True))


def test_a_main_run_above_scale_1_climbs_from_the_run_below_it_and_reruns_none(tiny):
    climbed = copy.deepcopy(tiny)
    climbed["robustness"]["scale"] = 4
    assert suite_paths.robustness_params(climbed) == suite_paths.robustness_params(tiny)
    assert all(f.endswith("_s4.parquet") for f in suite_paths.robustness_files(climbed))
    assert all(f.endswith("_x2.parquet") for f in suite_paths.robustness_files(climbed, doubled=True))
    run = SimpleNamespace(dataset="fashion_mnist", defense="cowboy", epsilon="0.1", scale="4")
    assert suite_paths.robustness_half_scale_run(climbed, run).endswith("/cowboy_eps0.1_s2.parquet")
    run.scale = "2"
    assert suite_paths.robustness_half_scale_run(climbed, run).endswith("/cowboy_eps0.1.parquet")
    assert suite_paths.robustness_main_run(climbed, run).endswith("/cowboy_eps0.1_s4.parquet")
    assert suite_paths.robustness_main_run(tiny, run).endswith("/cowboy_eps0.1.parquet")
    assert (suite_paths.robustness_check_scale(tiny), suite_paths.robustness_check_scale(climbed)) == (2, 8)


def test_a_sharded_main_run_splits_its_images_and_climbs_from_the_run_below(tiny):
    """robustness.shard_images splits the main run at robustness.scale into [start, stop)
    shards covering its images once; unset or as large as the run, one job; the rungs below
    the scale stay one job (a climb sharded after they ran reruns none); the shard size is not
    a param (the shard files name it), so sharding reruns nothing else."""
    run = SimpleNamespace(dataset="fashion_mnist", defense="cowboy", epsilon="0.1")
    assert suite_paths.robustness_shards(tiny, run) == []
    sharded = copy.deepcopy(tiny)
    sharded["robustness"] |= {"size": 10, "shard_images": 4}
    shards = suite_paths.robustness_shards(sharded, run)
    ranges = [re.search(r"_s1_images(\d+)-(\d+)\.parquet$", path).groups() for path in shards]
    assert ranges == [("0", "4"), ("4", "8"), ("8", "10")]
    resized = copy.deepcopy(tiny)
    resized["robustness"]["size"] = 10
    assert suite_paths.robustness_params(sharded) == suite_paths.robustness_params(resized)
    sharded["robustness"]["shard_images"] = 10
    assert suite_paths.robustness_shards(sharded, run) == []
    sharded["robustness"]["shard_images"] = 4
    climbed = SimpleNamespace(**vars(run), scale="2")
    assert suite_paths.robustness_shards(sharded, climbed) == []  # not the config's rung
    sharded["robustness"]["scale"] = 2
    assert all("_s2_images" in path for path in suite_paths.robustness_shards(sharded, climbed))
    assert suite_paths.robustness_shards(sharded, run) == []  # the rung below: one job, as it ran
    assert suite_paths.robustness_shard_start(sharded, climbed) == [
        suite_paths.robustness_half_scale_run(sharded, climbed)
    ]
    assert suite_paths.robustness_shard_start(sharded, SimpleNamespace(**vars(run), scale="1")) == []
    assert suite_paths.robustness_check_shards(sharded, run) == []  # double_images 4: one job
    sharded["robustness"]["double_images"] = 6
    checks = suite_paths.robustness_check_shards(sharded, run)
    assert [re.search(r"_x2_images(\d+-\d+)\.parquet$", path).group(1) for path in checks] == ["0-4", "4-6"]
    # Each check shard starts from the main run's shard holding its images, not the whole run.
    starts = [
        suite_paths.robustness_check_start(sharded, SimpleNamespace(**vars(run), start=s)) for s in ("0", "4")
    ]
    assert starts == suite_paths.robustness_shards(sharded, climbed)[:2]  # the config's rung, s2
    sharded["robustness"]["shard_images"] = None  # the main run one job: the check starts from it
    whole = suite_paths.robustness_check_start(sharded, SimpleNamespace(**vars(run), start="0"))
    assert whole == suite_paths.robustness_main_run(sharded, run)


def test_card_grid_setting_fills_unnamed_fields_from_the_cleaning_section(tiny):
    name = next(iter(tiny["card"]["grid"]))
    setting = paths.card_grid_setting(tiny, SimpleNamespace(setting=name))
    assert setting["method"] == "cowboy" and list(setting) == sorted(setting)
    for key, value in tiny["card"]["grid"][name].items():
        assert setting[key] == value
    assert "objective" not in paths.card_measurement(tiny)  # the choice's, not the measurement's


def test_params_are_canonical_whatever_the_key_order(tiny):
    shuffled = copy.deepcopy(tiny)
    shuffled["datasets"]["fashion_mnist"]["gan"] = dict(
        reversed(list(tiny["datasets"]["fashion_mnist"]["gan"].items()))
    )
    w = SimpleNamespace(dataset="fashion_mnist")
    assert str(paths.gan_params(shuffled, w)) == str(paths.gan_params(tiny, w))


def test_published_copies_follow_the_studies_the_config_runs(tiny):
    reproduce = checked("reproduce-fmnist.yaml")
    copies = paths.published_copies(reproduce)
    assert any(c.endswith("robustness.csv") for c in copies)
    assert not any("discriminator_study" in c for c in copies)  # this config does not run it
    assert paths.published_copies(tiny) == []  # no reproduction section
    study = checked("docs/reproduction/discriminator-study.yaml")
    assert any(c.endswith("discriminator_study.csv") for c in paths.published_copies(study))
    assert any(c.endswith("fashion_mnist.alone.csv") for c in copies)  # its suite attacks the card
    # The full test set runs no suite: the card's validation outputs stay reproduce-fmnist's,
    # and its run needs no card_alone (1,000 images, each in a padded chunk of its own).
    full = checked("reproduce-fmnist.yaml", "full-fmnist.yaml")
    assert paths.published_copies(full) == []


def test_the_full_test_set_config_differs_from_the_reproduction_only_in_its_test_set():
    full = checked("reproduce-fmnist.yaml", "full-fmnist.yaml")
    reproduce = checked("reproduce-fmnist.yaml")
    assert full["datasets"]["fashion_mnist"].pop("test_size") is None  # all 10,000
    assert reproduce["datasets"]["fashion_mnist"].pop("test_size") == 1000
    # The same models, attacks and card; the tables' steps, without the curve beyond them.
    assert full["cleaning"].pop("record_steps") == [10, reproduce["cleaning"]["steps"]]
    reproduce["cleaning"].pop("record_steps")
    for section in ("seed", "datasets", "cleaning", "card", "detection", "sweep"):
        assert full[section] == reproduce[section], section
    assert full["reproduction"]["output_dir"] != reproduce["reproduction"]["output_dir"]
    assert not full["robustness"]["datasets"] and not full["variants"]["datasets"]
    assert not full["adversarial_training"]["datasets"]


def test_study_gans_and_their_chains(tiny):
    gans = study_paths.gans(tiny, "fashion_mnist")
    study, steps = tiny["discriminator_study"], tiny["datasets"]["fashion_mnist"]["gan"]["steps"]
    assert gans[: len(study["gan_seeds"])] == [f"seed{s}_step{steps}" for s in study["gan_seeds"]]
    own = SimpleNamespace(dataset="fashion_mnist", gan=f"seed{tiny['seed']}_step{steps}")
    assert study_paths.gan_file(tiny, own) == f"results/models/fashion_mnist/gan/step{steps}.safetensors"
    other = next(s for s in study["gan_seeds"] if s != tiny["seed"])
    assert "gan_seed" in study_paths.gan_file(
        tiny, SimpleNamespace(dataset="fashion_mnist", gan=f"seed{other}_step{steps}")
    )
    if study["long_gan_steps"]:
        seed = study["gan_seeds"][0]
        w = SimpleNamespace(dataset="fashion_mnist", gseed=str(seed), step=str(study["long_gan_steps"]))
        assert study_paths.previous_state(tiny, w).endswith(f"step{steps}.state.pt")


def test_study_validation_grid_and_its_long_runs_on_the_first_gan_only(tiny):
    study = tiny["discriminator_study"]
    first, second = study_paths.gans(tiny, "fashion_mnist")[:2]
    own = study_paths.validation_files(tiny, SimpleNamespace(dataset="fashion_mnist", gan=first))
    other = study_paths.validation_files(tiny, SimpleNamespace(dataset="fashion_mnist", gan=second))
    long_runs = [f for f in own if f"_run{study['long_steps']}_" in f]
    assert len(long_runs) == 2 and len(own) == len(other) + 2
    assert {"defense_gan", "cowboy"} == {re.search(r"/(\w+?)_dweight", f).group(1) for f in long_runs}
    grid = len(study["d_weights"]) * (len(study["optimizers"]) + sum(r > 1 for r in study["restarts"]))
    assert len(other) == grid and all("/val/" in f for f in own)


def test_study_test_split_pairs_each_fixed_setting_with_defense_gan(tiny):
    fixed = study_paths.files_for_test_split(tiny, "fixed")
    assert fixed and len(fixed) % 2 == 0 and all("/test/" in f for f in fixed)
    assert sum("defense_gan_dweight0_" in f for f in fixed) == len(fixed) // 2
    chosen = study_paths.files_for_test_split(tiny, "chosen")
    assert {f.split("/")[-1].split("_chosen")[0] for f in chosen} == {"cowboy", "defense_gan"}


def test_adversarial_training_adds_two_defences_whose_classifier_is_chosen_per_epsilon(tiny):
    assert suite_paths.robustness_defenses(tiny, "fashion_mnist")[-3:-1] == [
        "adversarial",
        "adversarial_cowboy",
    ]
    files = suite_paths.robustness_files(tiny)
    assert "results/robustness/fashion_mnist/adversarial_cowboy_eps0.3.parquet" in files
    for defense in ("adversarial", "adversarial_cowboy"):
        w = SimpleNamespace(dataset="fashion_mnist", defense=defense, epsilon="0.3")
        assert (
            suite_paths.robustness_classifier(tiny, w)
            == "results/models/fashion_mnist/adversarial_eps0.3.safetensors"
        )
    w = SimpleNamespace(dataset="fashion_mnist", defense="cowboy", epsilon="0.3")
    assert suite_paths.robustness_classifier(tiny, w) == "results/models/fashion_mnist/classifier.safetensors"
    assert suite_paths.adversarial_models(tiny) == [
        "results/models/fashion_mnist/adversarial_eps0.3.safetensors"
    ]
    off = {**tiny, "adversarial_training": {**tiny["adversarial_training"], "datasets": []}}
    assert "adversarial" not in suite_paths.robustness_defenses(off, "fashion_mnist")


def test_a_cleaning_method_per_robustness_defence():
    from cowboy_pipeline.robustness import cleaning_method

    defenses = ["none", "cowboy", "defense_gan", "adversarial", "adversarial_cowboy", "variant_rec"]
    assert [cleaning_method(d) for d in defenses] == [None, "cowboy", "defense_gan", None, "cowboy", "cowboy"]


def test_each_variant_is_a_card_of_its_own_with_the_classifier_it_names(tiny):
    assert suite_paths.robustness_defenses(tiny, "fashion_mnist")[-1] == "variant_enc-rec"
    w = SimpleNamespace(dataset="fashion_mnist", defense="variant_enc-rec", epsilon="0.3")
    assert (
        suite_paths.robustness_card(tiny, w) == "results/defense/fashion_mnist/variants/enc-rec.safetensors"
    )
    assert (
        suite_paths.robustness_classifier(tiny, w)
        == "results/models/fashion_mnist/classifier_rec.safetensors"
    )
    main = SimpleNamespace(dataset="fashion_mnist", defense="cowboy", epsilon="0.3")
    assert suite_paths.robustness_card(tiny, main) == "results/defense/fashion_mnist.safetensors"
    assert (
        suite_paths.robustness_classifier(tiny, main) == "results/models/fashion_mnist/classifier.safetensors"
    )
    variant = SimpleNamespace(dataset="fashion_mnist", variant="enc-rec", setting="enc-gd")
    assert suite_paths.variant_encoder(tiny, variant) == ["results/models/fashion_mnist/encoder.safetensors"]
    prior = {**tiny, "variants": {**tiny["variants"], "cards": {"r": {"grid": {"gd": {"optimizer": "gd"}}}}}}
    assert suite_paths.variant_encoder(prior, SimpleNamespace(dataset="fashion_mnist", variant="r")) == []
    assert suite_paths.variant_classifier(
        prior, SimpleNamespace(dataset="fashion_mnist", variant="r")
    ).endswith("/classifier.safetensors")
    setting = suite_paths.variant_setting(tiny, variant)
    assert setting["start"] == "encoder" and setting["method"] == "cowboy"
    assert setting["steps"] == tiny["cleaning"]["steps"]  # unnamed fields are the cleaning's
    assert list(suite_paths.variant_settings(tiny, variant)) == ["enc-gd"]


def test_every_rule_a_profile_names_exists_and_the_suite_gets_the_gpu_on_slurm():
    """A misspelt rule in a profile's set-threads or set-resources is silently ignored by
    Snakemake; this names it. Every job of the attack suite (whole, climbed, checked or a
    shard) asks SLURM for the same GPU resources."""
    text = "\n".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    rules = set(re.findall(r"^\s*rule (\w+):", text, flags=re.M))
    rules |= set(re.findall(r"^\s*use rule \w+ as (\w+)", text, flags=re.M))
    assert {"robustness", "robustness_shard", "robustness_doubled_shard"} <= rules
    for profile in (REPO / "profiles").glob("*/config.yaml"):
        settings = yaml.safe_load(profile.read_text())
        named = set(settings.get("set-threads", {})) | set(settings.get("set-resources", {}))
        assert named <= rules, f"{profile}: {sorted(named - rules)}"
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())["set-resources"]
    suite = {name for name in rules if name.startswith("robustness") and name != "robustness_report"}
    assert all(slurm[name] == slurm["robustness"] and slurm[name]["gpu"] == 1 for name in suite)
