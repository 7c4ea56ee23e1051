# Named helpers, wildcard constraints and target lists. Resources live in profiles/.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))

from cowboy_core.attacks import NO_ATTACK, attack_pattern, parse_attack
from cowboy_core.cleaning import Method
from cowboy_core.workflow.config import (
    ConfigError,
    canonical,
    format_number,
    load_schema,
    run_steps,
    validate_config,
)

try:
    validate_config(config, load_schema(Path(workflow.basedir) / "config" / "schema.yaml"))
except ConfigError as err:
    # A readable message and exit code 1, not a traceback, before any job starts.
    sys.stderr.write(f"cowboy: {err}\n")
    sys.exit(1)

DATASETS = list(config["datasets"])
CLEANING = config["cleaning"]
SEED = config["seed"]
TABLE_SIGMA = format_number(CLEANING["sigma"])
TABLE_STEPS = CLEANING["steps"]  # the snapshot step the tables report (Parquet column "steps")
RUN_STEPS = run_steps(CLEANING)  # the steps every cleaning job runs (wildcard "run_steps")


# Built from the library's enums: one source of truth for every axis of the experiment.
wildcard_constraints:
    dataset="|".join(DATASETS) or "none",
    split="val|test",
    attack=f"{NO_ATTACK}|{attack_pattern()}",
    defense="|".join(["none", *Method]),
    method="|".join(Method),
    epsilon=r"[0-9.e+-]+",
    sigma=r"[0-9.e+-]+",
    run_steps=r"\d+",
    ckpt=r"\d+",


def gan_steps(dataset):
    """Every GAN step saved for a dataset, ascending; the last is the trained GAN."""
    gan = config["datasets"][dataset]["gan"]
    return sorted(set(gan["checkpoints"]) | {gan["steps"]})


def final_ckpt(dataset):
    return config["datasets"][dataset]["gan"]["steps"]


def gan_checkpoint(dataset, step):
    return f"results/models/{dataset}/gan/step{step}.safetensors"


def previous_gan_state(wildcards):
    """The GAN resume state this segment starts from; none for the first segment."""
    steps = gan_steps(wildcards.dataset)
    here = steps.index(int(wildcards.step))
    if here == 0:
        return []
    return f"results/models/{wildcards.dataset}/gan/step{steps[here - 1]}.state.pt"


def attacks_of(dataset):
    return list(config["datasets"][dataset]["attacks"])


def attack_files(wildcards):
    return expand(
        "results/attacks/{dataset}/{split}/{attack}.safetensors",
        dataset=wildcards.dataset,
        split=wildcards.split,
        attack=attacks_of(wildcards.dataset),
    )


def gan_for_ckpt(wildcards):
    return gan_checkpoint(wildcards.dataset, wildcards.ckpt)


def clean_path(dataset, split, attack, method, sigma, run_steps, ckpt):
    return (
        f"results/clean/{dataset}/{split}/{attack}/"
        f"{method}_sigma{sigma}_run{run_steps}_ckpt{ckpt}.parquet"
    )


def table_clean_files():
    """Tables 1-2: every attack x method on the test split with the trained GAN."""
    return [
        clean_path(ds, "test", attack, method, TABLE_SIGMA, RUN_STEPS, final_ckpt(ds))
        for ds in DATASETS
        for attack in attacks_of(ds)
        for method in CLEANING["methods"]
    ]


def sweep_clean_files():
    """The sigma sweep, on the validation split only (hyperparameters are chosen there)."""
    sweep = config["sweep"]
    return [
        clean_path(ds, "val", attack, method, format_number(sigma), RUN_STEPS, final_ckpt(ds))
        for ds in DATASETS
        for attack in sweep["attacks"]
        for method in CLEANING["methods"]
        for sigma in sweep["sigmas"]
    ]


def gan_quality_clean_files():
    """Figure 6: cowboy cleaning with every saved GAN checkpoint."""
    attack = config["figures"]["gan_quality_attack"]
    return [
        clean_path(ds, "test", attack, "cowboy", TABLE_SIGMA, RUN_STEPS, step)
        for ds in config["figures"]["gan_quality_datasets"]
        for step in gan_steps(ds)
    ]


def score_files(split="test", every_ckpt=False):
    files = []
    for ds in DATASETS:
        steps = gan_steps(ds) if every_ckpt else [final_ckpt(ds)]
        files += [f"results/scores/{ds}/{split}/ckpt{step}.parquet" for step in steps]
    return files


def gan_quality_score_files():
    """Figure 7: D-scores on real and adversarial inputs at every saved GAN checkpoint."""
    return [
        f"results/scores/{ds}/test/ckpt{step}.parquet"
        for ds in config["figures"]["gan_quality_datasets"]
        for step in gan_steps(ds)
    ]


def figure_targets():
    targets = [f"results/figures/{name}.png" for name in ("fig3_scores", "fig4_lowest_real", "fig5_cleaning")]
    if config["figures"]["gan_quality_datasets"]:
        targets += ["results/figures/fig6_gan_quality_cleaning.png", "results/figures/fig7_gan_quality_detection.png"]
    if config["toy"]["enabled"]:
        targets += ["results/figures/fig1_toy_classifier.png", "results/figures/fig2_toy_discriminator.png"]
    return targets


def reproduction_targets():
    repro = config.get("reproduction", {})
    if "dataset" not in repro:
        return []
    ds = repro["dataset"].replace("_", "-")
    return [
        f"{repro['output_dir']}/{ds}-table1.csv",
        f"{repro['output_dir']}/{ds}-results.md",
        f"{repro['output_dir']}/{ds}-figures",
    ]


def reproduction_epsilons(wildcards):
    ds = config["reproduction"]["dataset"]
    return {name: spec["epsilon"] for name, spec in config["datasets"][ds]["attacks"].items()}


def all_targets():
    extra = ["results/deployment.csv", "results/deployment_curve.csv", *defense_cards()]
    extra += [f"results/epsilon_sweep/{ds}.csv" for ds in config["epsilon_sweep"]["datasets"]]
    if config["robustness"]["datasets"]:
        extra += ROBUSTNESS_OUTPUTS
        extra += published_robustness()
    return [
        *extra,
        "results/table1.csv",
        "results/table2.csv",
        "results/detection.csv",
        "results/accuracy.csv",
        "results/sweep.csv",
        *figure_targets(),
        *reproduction_targets(),
    ]


# Params are canonical (keys sorted), so that a config rewritten by a tool in another key
# order reruns nothing: only a changed value does.
def train_split_params(wildcards):
    """Only what fixes the training images: the held-out validation split."""
    return {"validation_size": config["datasets"][wildcards.dataset]["validation_size"]}


def eval_split_params(wildcards):
    ds = config["datasets"][wildcards.dataset]
    keys = ("validation_size", "validation_attack_size", "test_size")
    return canonical({key: ds[key] for key in keys})


def attack_params(wildcards):
    return canonical(config["datasets"][wildcards.dataset]["attacks"].get(wildcards.attack, {}))


def classifier_params(wildcards):
    return canonical(config["datasets"][wildcards.dataset]["classifier"])


def gan_params(wildcards):
    return canonical(config["datasets"][wildcards.dataset]["gan"])


def cleaning_params(wildcards):
    """Settings shared by all cleaning jobs; sigma, steps and method come from the wildcards."""
    return canonical({key: CLEANING[key] for key in ("lr", "restarts", "optimizer", "early_stop_tol")})


def card_settings(wildcards):
    """What a defence card deploys: the cleaning of Tables 1-2, with the D term."""
    return canonical(
        {**cleaning_params(wildcards), "sigma": CLEANING["sigma"], "steps": TABLE_STEPS, "method": "cowboy"}
    )


def defense_cards():
    return [f"results/defense/{ds}.safetensors" for ds in DATASETS]


def table_score_files(wildcards):
    return score_files("test")


def validation_score_files(wildcards):
    return score_files("val")


def cowboy_grid_files():
    """Figure 5: the image grids saved by the cowboy cleaning jobs of the tables."""
    return [
        path.replace(".parquet", ".grid.safetensors")
        for path in table_clean_files()
        if Path(path).name.startswith("cowboy_")
    ]


def final_gan(wildcards):
    return gan_checkpoint(wildcards.dataset, final_ckpt(wildcards.dataset))


def deployment_attack_files(wildcards):
    """Test images unattacked ("none") and attacked: the two halves of each stream."""
    return expand(
        "results/attacks/{dataset}/test/{attack}.safetensors",
        dataset=wildcards.dataset,
        attack=[NO_ATTACK, *attacks_of(wildcards.dataset)],
    )


ROBUSTNESS_OUTPUTS = [
    "results/robustness.csv",
    "results/robustness_checks.csv",
    "results/chaos.csv",
    "results/figures/robustness.png",
]


def published_robustness():
    """Where the reproduction keeps its copies of the robustness outputs (none without one)."""
    if "dataset" not in config.get("reproduction", {}):
        return []
    return [f"{config['reproduction']['output_dir']}/{Path(path).name}" for path in ROBUSTNESS_OUTPUTS]


def robustness_files():
    robustness = config["robustness"]
    return [
        f"results/robustness/{ds}/{defense}_eps{format_number(eps)}.parquet"
        for ds in robustness["datasets"]
        for defense in ["none", *CLEANING["methods"]]
        for eps in robustness["epsilons"]
    ]


def chaos_files():
    return [
        f"results/robustness/{ds}/{method}_chaos.csv"
        for ds in config["robustness"]["datasets"]
        for method in CLEANING["methods"]
    ]


def final_val_scores(wildcards):
    return f"results/scores/{wildcards.dataset}/val/ckpt{final_ckpt(wildcards.dataset)}.parquet"


def attacks_config(wildcards):
    """Attack settings other than the budget: the epsilon sweep sets the budgets itself."""
    attacks = config["datasets"][wildcards.dataset]["attacks"]
    return canonical(
        {
            name: {key: value for key, value in spec.items() if key != "epsilon"}
            for name, spec in attacks.items()
            if not parse_attack(name)[1]
        }
    )
