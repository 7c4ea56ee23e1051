# Named helpers, wildcard constraints and target lists. Resources live in profiles/.
import sys
from pathlib import Path
from types import SimpleNamespace

# The pipeline's own package, next to its scripts (Snakemake puts this folder on the
# scripts' path too); the library, cowboy_core, is installed.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from cowboy_core.attacks import NO_ATTACK, attack_pattern, parse_attack
from cowboy_core.settings import Method
from cowboy_core.updates import Optimizer
from cowboy_pipeline.config import (
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
    epsilon=r"[0-9.]+(e[+-]?[0-9]+)?",
    sigma=r"[0-9.e+-]+",
    run_steps=r"\d+",
    ckpt=r"\d+",
    gan=r"seed\d+_step\d+",
    gseed=r"\d+",
    d_weight=r"[0-9.e+-]+",
    optimizer="|".join(Optimizer),
    lr=r"[0-9.e+-]+",
    restarts=r"\d+",
    n=r"\d+",
    settings="card|paper",


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
    if config["discriminator_study"]["datasets"]:
        extra += DTERM_OUTPUTS
    extra += published_copies()
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


def card_fixed():
    """Card settings the grid does not vary: cowboy's objective, the cleaning's early stopping."""
    return {"method": "cowboy", "early_stop_tol": CLEANING["early_stop_tol"]}


def card_grid_setting(wildcards):
    """One named setting of the card's validation grid; unnamed fields are the cleaning's."""
    defaults = {key: CLEANING[key] for key in ("sigma", "steps", "lr", "restarts", "optimizer")}
    return canonical({**defaults, **config["card"]["grid"][wildcards.setting], **card_fixed()})


def card_measurement():
    """What a grid job measures with; the objective and the bound only matter to the choice."""
    keys = ("images", "alone_images", "perturbation", "trajectories")
    return canonical({key: config["card"][key] for key in keys})


def card_grid_files(wildcards):
    return [
        f"results/defense/{wildcards.dataset}/grid/{setting}.parquet" for setting in config["card"]["grid"]
    ]


def calibration_attack_file(wildcards):
    attack = config["detection"]["calibration_attack"]
    return f"results/attacks/{wildcards.dataset}/val/{attack}.safetensors"


def defense_cards():
    return [f"results/defense/{ds}.safetensors" for ds in DATASETS]


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
    "results/robustness_convergence.csv",
    "results/robustness_checks.csv",
    "results/chaos.csv",
    "results/figures/robustness.png",
]


DTERM_OUTPUTS = ["results/discriminator_study.csv", "results/discriminator_study_validation.csv", "results/figures/discriminator_study.png"]


def published_sources():
    """The outputs the reproduction keeps a committed copy of: the robustness and
    discriminator studies, when the config runs them."""
    deployment = ["results/deployment.csv", "results/deployment_curve.csv"]
    sources = [f"results/defense/{ds}.choice.csv" for ds in DATASETS]
    sources += ROBUSTNESS_OUTPUTS + deployment if config["robustness"]["datasets"] else []
    return sources + (DTERM_OUTPUTS if config["discriminator_study"]["datasets"] else [])


def published_copies():
    """Where the reproduction keeps those copies (none without a reproduction)."""
    if "dataset" not in config.get("reproduction", {}):
        return []
    return [f"{config['reproduction']['output_dir']}/{Path(path).name}" for path in published_sources()]


def robustness_files(doubled=False):
    robustness, suffix = config["robustness"], "_x2" if doubled else ""
    return [
        f"results/robustness/{ds}/{defense}_eps{format_number(eps)}{suffix}.parquet"
        for ds in robustness["datasets"]
        for defense in ["none", *CLEANING["methods"]]
        for eps in robustness["epsilons"]
    ]


def robustness_params():
    """What one suite job computes with: not the list of epsilons or datasets (a wildcard
    each), so that adding an epsilon reruns nothing already attacked."""
    return canonical({k: v for k, v in config["robustness"].items() if k not in ("epsilons", "datasets")})


def chaos_files():
    """The chaos table for the card's chosen settings and, beside them, the paper's (Tables 1-2)."""
    return [
        f"results/robustness/{ds}/{method}_{settings}_chaos.csv"
        for ds in config["robustness"]["datasets"]
        for method in CLEANING["methods"]
        for settings in ("card", "paper")
    ]


def chaos_overrides(wildcards):
    """No change for the card; the cleaning section's settings for the paper's protocol."""
    if wildcards.settings == "card":
        return {}
    return canonical({key: CLEANING[key] for key in ("sigma", "steps", "lr", "optimizer", "restarts")})


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


# The discriminator study (rules/discriminator_study.smk).
DTERM = config["discriminator_study"]
DTERM_CLEAN = (
    "results/discriminator_study/{dataset}/{split}/{attack}/{gan}/"
    "{method}_dweight{d_weight}_{optimizer}_lr{lr}_r{restarts}_run{run_steps}_n{n}.parquet"
)


def dterm_gans(dataset):
    """The study's GANs, "seed{s}_step{t}": every seed at the dataset's GAN steps, and the
    first seed trained on to long_gan_steps."""
    steps = config["datasets"][dataset]["gan"]["steps"]
    gans = [f"seed{s}_step{steps}" for s in DTERM["gan_seeds"]]
    if DTERM["long_gan_steps"]:
        gans.append(f"seed{DTERM['gan_seeds'][0]}_step{DTERM['long_gan_steps']}")
    return gans


def _parse_gan(gan):
    seed, step = gan.removeprefix("seed").split("_step")
    return int(seed), int(step)


def dterm_gan_file(wildcards):
    """The pipeline's own GAN stands for the config's seed at its steps: the same training."""
    seed, step = _parse_gan(wildcards.gan)
    if seed == SEED and step == final_ckpt(wildcards.dataset):
        return gan_checkpoint(wildcards.dataset, step)
    return f"results/models/{wildcards.dataset}/gan_seed{seed}/step{step}.safetensors"


def dterm_previous_state(wildcards):
    """A seeded GAN's chain: its dataset's GAN steps, then long_gan_steps for the first seed."""
    chain = [config["datasets"][wildcards.dataset]["gan"]["steps"]]
    if DTERM["long_gan_steps"] and int(wildcards.gseed) == DTERM["gan_seeds"][0]:
        chain.append(DTERM["long_gan_steps"])
    here = chain.index(int(wildcards.step))
    if here == 0:
        return []
    if int(wildcards.gseed) == SEED and here == 1:  # continue the pipeline's own GAN
        return f"results/models/{wildcards.dataset}/gan/step{chain[0]}.state.pt"
    return f"results/models/{wildcards.dataset}/gan_seed{wildcards.gseed}/step{chain[here - 1]}.state.pt"


def dterm_images(wildcards):
    return int(wildcards.n)


def gan_seed(wildcards):
    return int(wildcards.gseed)


def dterm_record_steps():
    return sorted({*DTERM["record_steps"], DTERM["restart_steps"], DTERM["long_steps"]})


def dterm_flip_images(wildcards):
    """Alone-vs-batch flips on the first GAN's validation grid only: cleaning images one at a
    time runs at a fifteenth of the batched speed, so the long runs and other GANs skip it."""
    if wildcards.split != "val" or int(wildcards.run_steps) > max(DTERM["record_steps"]):
        return 0
    return DTERM["flip_images"] if wildcards.gan == dterm_gans(wildcards.dataset)[0] else 0


def _dterm_path(dataset, split, attack, gan, d_weight, optimizer, lr, restarts, run_steps, n):
    method = "defense_gan" if float(d_weight) == 0 else "cowboy"
    return DTERM_CLEAN.format(
        dataset=dataset, split=split, attack=attack, gan=gan, method=method, d_weight=format_number(d_weight),
        optimizer=optimizer, lr=format_number(lr), restarts=restarts, run_steps=run_steps, n=n,
    )


def dterm_validation_files(wildcards):
    """The validation grid of one GAN: d_weight x optimizer at R = 1 to the longest recorded step;
    d_weight at R = restarts[-1] with the first optimizer to restart_steps; and, for the first GAN,
    both methods (d_weight 0 and 1) with the first optimizer to long_steps on long_images."""
    ds, gan, attack = wildcards.dataset, wildcards.gan, DTERM["validation_attack"]
    first = DTERM["optimizers"][0]
    files = [
        _dterm_path(ds, "val", attack, gan, d_weight, o["optimizer"], o["lr"], 1, max(DTERM["record_steps"]),
                    DTERM["validation_images"])
        for d_weight in DTERM["d_weights"]
        for o in DTERM["optimizers"]
    ]
    files += [
        _dterm_path(ds, "val", attack, gan, d_weight, first["optimizer"], first["lr"], r, DTERM["restart_steps"],
                    DTERM["validation_images"])
        for d_weight in DTERM["d_weights"]
        for r in DTERM["restarts"]
        if r > 1
    ]
    if gan == dterm_gans(ds)[0]:
        files += [
            _dterm_path(ds, "val", attack, gan, d_weight, first["optimizer"], first["lr"], 1, DTERM["long_steps"],
                        DTERM["long_images"])
            for d_weight in (0, 1)
        ]
    return files


def dterm_choice_inputs(wildcards):
    """A GAN's validation grid, and the first GAN's (where the flips were measured)."""
    first = SimpleNamespace(dataset=wildcards.dataset, gan=dterm_gans(wildcards.dataset)[0])
    return {"own": dterm_validation_files(wildcards), "flips": dterm_validation_files(first)}


def dterm_all_validation_files():
    return [
        path
        for ds in DTERM["datasets"]
        for gan in dterm_gans(ds)
        for path in dterm_validation_files(SimpleNamespace(dataset=ds, gan=gan))
    ]


def dterm_choice_files():
    return [f"results/discriminator_study/{ds}/{gan}/chosen.json" for ds in DTERM["datasets"] for gan in dterm_gans(ds)]


def dterm_test_files(kind):
    """The test split: each method at its own validation choice (every attack, and the clean
    images "none", every GAN), or both methods at each shared fixed setting."""
    files = []
    for ds in DTERM["datasets"]:
        for gan in dterm_gans(ds):
            for attack in [*DTERM["test_attacks"], NO_ATTACK]:
                if kind == "chosen":
                    files += [
                        f"results/discriminator_study/{ds}/test/{attack}/{gan}/{m}_chosen_n{DTERM['test_images']}.parquet"
                        for m in Method
                    ]
                    continue
                for f in DTERM["fixed"]:
                    if attack in f["attacks"] and gan in dterm_gans(ds)[: f["gans"]]:
                        files += [
                            _dterm_path(ds, "test", attack, gan, d_weight, f["optimizer"], f["lr"], f["restarts"],
                                        f["steps"], f["images"])
                            for d_weight in (0, f["d_weight"])
                        ]
    return files
