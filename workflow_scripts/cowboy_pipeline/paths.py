"""Every file the pipeline's rules read or write, and the params that decide when they rerun,
as plain functions of the checked config (rules/common.smk binds them: ``paths.attack_files``).
Params are canonical (keys sorted): a config rewritten in another key order reruns nothing.
"""

from __future__ import annotations

import inspect
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from cowboy_core.choices import NO_ATTACK, parse_attack

from .config import canonical, format_number, run_steps
from .defenses import VARIANT_PREFIX, robustness_defenses

Config = dict[str, Any]

ROBUSTNESS_OUTPUTS = [
    "results/robustness.csv",
    "results/robustness_convergence.csv",
    "results/robustness_checks.csv",
    "results/chaos.csv",
    "results/figures/robustness.png",
    "results/which_defence.csv",
    "results/figures/which_defence.png",
]
STUDY_OUTPUTS = [
    "results/discriminator_study.csv",
    "results/discriminator_study_validation.csv",
    "results/figures/discriminator_study.png",
]
DEPLOYMENT_OUTPUTS = ["results/deployment.csv", "results/deployment_curve.csv"]
CHOSEN = "chosen"  # the ckpt wildcard of the GAN that validation chose (rule choose_gan)


def bind(module: ModuleType, config: Config) -> SimpleNamespace:
    """The module's public functions whose first argument is ``config``, with it filled in:
    what Snakemake calls as input and params functions (with the wildcards) or at parse time."""
    return SimpleNamespace(
        **{
            name: partial(function, config)
            for name, function in inspect.getmembers(module, inspect.isfunction)
            if function.__module__ == module.__name__
            and not name.startswith("_")
            and next(iter(inspect.signature(function).parameters), None) == "config"
        }
    )


# -- GANs, attacks, cleaning -----------------------------------------------------------------


def gan_steps(config: Config, dataset: str) -> list[int]:
    """Every GAN step saved for a dataset, ascending; the last is the trained GAN."""
    gan = config["datasets"][dataset]["gan"]
    return sorted(set(gan["checkpoints"]) | {gan["steps"]})


def final_ckpt(config: Config, dataset: str) -> int | str:
    """The GAN the rest of the pipeline uses: the one validation chose among gan.candidates
    (rule choose_gan), or with no candidates the GAN at gan.steps."""
    gan = config["datasets"][dataset]["gan"]
    return CHOSEN if gan["candidates"] else int(gan["steps"])


def gan_checkpoint(dataset: str, step: int | str) -> str:
    name = CHOSEN if str(step) == CHOSEN else f"step{step}"
    return f"results/models/{dataset}/gan/{name}.safetensors"


def previous_gan_state(config: Config, wildcards: Any) -> str | list[str]:
    """The GAN resume state this segment starts from; none for the first segment."""
    steps = gan_steps(config, wildcards.dataset)
    here = steps.index(int(wildcards.step))
    return f"results/models/{wildcards.dataset}/gan/step{steps[here - 1]}.state.pt" if here else []


def attacks_of(config: Config, dataset: str) -> list[str]:
    return list(config["datasets"][dataset]["attacks"])


def attack_files(config: Config, wildcards: Any) -> list[str]:
    return [
        f"results/attacks/{wildcards.dataset}/{wildcards.split}/{attack}.safetensors"
        for attack in attacks_of(config, wildcards.dataset)
    ]


def gan_for_ckpt(config: Config, wildcards: Any) -> str:
    return gan_checkpoint(wildcards.dataset, wildcards.ckpt)


def final_gan(config: Config, wildcards: Any) -> str:
    return gan_checkpoint(wildcards.dataset, final_ckpt(config, wildcards.dataset))


def clean_path(
    dataset: str, split: str, attack: str, method: str, sigma: str, steps: int, ckpt: int | str
) -> str:
    return f"results/clean/{dataset}/{split}/{attack}/{method}_sigma{sigma}_run{steps}_ckpt{ckpt}.parquet"


def table_clean_files(config: Config) -> list[str]:
    """Tables 1-2: every attack x method on the test split with the trained GAN."""
    cleaning = config["cleaning"]
    sigma, steps = format_number(cleaning["sigma"]), run_steps(cleaning)
    return [
        clean_path(ds, "test", attack, method, sigma, steps, final_ckpt(config, ds))
        for ds in config["datasets"]
        for attack in attacks_of(config, ds)
        for method in cleaning["methods"]
    ]


def card_table_clean_files(config: Config) -> list[str]:
    """Tables 1-2 at the deployed card's settings: one file per dataset and method."""
    return [
        f"results/clean_card/{ds}/{method}.parquet"
        for ds in config["datasets"]
        for method in config["cleaning"]["methods"]
    ]


def card_attack_files(config: Config, wildcards: Any) -> list[str]:
    """Every attack's test images, in attacks_of's order (clean_card's params.attacks)."""
    return [
        f"results/attacks/{wildcards.dataset}/test/{a}.safetensors"
        for a in attacks_of(config, wildcards.dataset)
    ]


def sweep_clean_files(config: Config) -> list[str]:
    """The sigma sweep, on the validation split only (hyperparameters are chosen there)."""
    cleaning, sweep = config["cleaning"], config["sweep"]
    return [
        clean_path(
            ds, "val", attack, method, format_number(sigma), run_steps(cleaning), final_ckpt(config, ds)
        )
        for ds in config["datasets"]
        for attack in sweep["attacks"]
        for method in cleaning["methods"]
        for sigma in sweep["sigmas"]
    ]


def gan_quality_clean_files(config: Config) -> list[str]:
    """Figure 6: cowboy cleaning with every saved GAN checkpoint."""
    cleaning, attack = config["cleaning"], config["figures"]["gan_quality_attack"]
    sigma = format_number(cleaning["sigma"])
    return [
        clean_path(ds, "test", attack, "cowboy", sigma, run_steps(cleaning), step)
        for ds in config["figures"]["gan_quality_datasets"]
        for step in gan_steps(config, ds)
    ]


def cleaning_grid_files(config: Config) -> list[str]:
    """Figure 5: the image grids saved by every cleaning job of the tables (both methods)."""
    return [path.replace(".parquet", ".grid.safetensors") for path in table_clean_files(config)]


def figure5_files(config: Config) -> list[str]:
    """Figure 5, one page per attack label: the unlabelled (matched) attacks, then one page
    per label ("fgsm-std" goes on fig5_cleaning_std.png)."""
    labels = {parse_attack(a)[1] for ds in config["datasets"] for a in attacks_of(config, ds)}
    return [f"results/figures/fig5_cleaning{'_' + label if label else ''}.png" for label in sorted(labels)]


def score_files(config: Config, split: str = "test") -> list[str]:
    return [f"results/scores/{ds}/{split}/ckpt{final_ckpt(config, ds)}.parquet" for ds in config["datasets"]]


def gan_quality_score_files(config: Config) -> list[str]:
    """Figure 7: D-scores on real and adversarial inputs at every saved GAN checkpoint."""
    return [
        f"results/scores/{ds}/test/ckpt{step}.parquet"
        for ds in config["figures"]["gan_quality_datasets"]
        for step in gan_steps(config, ds)
    ]


def final_val_scores(config: Config, wildcards: Any) -> str:
    return f"results/scores/{wildcards.dataset}/val/ckpt{final_ckpt(config, wildcards.dataset)}.parquet"


def deployment_attack_files(config: Config, wildcards: Any) -> list[str]:
    """Test images unattacked ("none") and attacked: the two halves of each stream."""
    return [
        f"results/attacks/{wildcards.dataset}/test/{attack}.safetensors"
        for attack in [NO_ATTACK, *attacks_of(config, wildcards.dataset)]
    ]


# -- the defence card ------------------------------------------------------------------------


def defense_cards(config: Config) -> list[str]:
    """Each dataset's card and its check alone on the validation images the chooser used."""
    return [
        f"results/defense/{ds}.{what}" for ds in config["datasets"] for what in ("safetensors", "alone.csv")
    ]


def card_fixed(config: Config) -> dict[str, Any]:
    """Card settings the grid does not vary: cowboy's objective, the cleaning's early stopping."""
    return {"method": "cowboy", "early_stop_tol": config["cleaning"]["early_stop_tol"]}


def card_grid_setting(
    config: Config, wildcards: Any, setting: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One named setting of the card's validation grid (or ``setting``, a variant's); unnamed
    fields are the cleaning's."""
    defaults = {key: config["cleaning"][key] for key in ("sigma", "steps", "lr", "restarts", "optimizer")}
    named = config["card"]["grid"][wildcards.setting] if setting is None else setting
    return canonical({**defaults, **named, **card_fixed(config)})


def card_measurement(config: Config) -> dict[str, Any]:
    """What a grid job measures with; the objective and the bound only matter to the choice."""
    keys = ("images", "alone_images", "perturbation", "trajectories")
    return canonical({key: config["card"][key] for key in keys})


def card_alone_params(config: Config) -> dict[str, Any]:
    """What card_alone measures with; card.deployed_alone_images only when set, so that a run
    made before the key existed (every image alone) stays valid."""
    card, alone = config["card"], config["card"].get("deployed_alone_images")
    params = {"images": card["images"], "perturbation": card["perturbation"]}
    return canonical(params | ({"alone": alone} if alone is not None else {}))


def card_choice_params(config: Config) -> dict[str, Any]:
    """What the chooser chooses by: the card section but the grid and what card_alone measures."""
    return canonical({k: v for k, v in config["card"].items() if k not in {"grid", "deployed_alone_images"}})


def card_grid_files(config: Config, wildcards: Any) -> list[str]:
    return [f"results/defense/{wildcards.dataset}/grid/{name}.parquet" for name in config["card"]["grid"]]


def calibration_attack_file(config: Config, wildcards: Any) -> str:
    return f"results/attacks/{wildcards.dataset}/val/{config['detection']['calibration_attack']}.safetensors"


def attacks_config(config: Config, wildcards: Any) -> dict[str, Any]:
    """Attack settings other than the budget: the epsilon sweep sets the budgets itself."""
    attacks = config["datasets"][wildcards.dataset]["attacks"]
    budgetless = {name: {k: v for k, v in spec.items() if k != "epsilon"} for name, spec in attacks.items()}
    return canonical({name: spec for name, spec in budgetless.items() if not parse_attack(name)[1]})


# -- targets -----------------------------------------------------------------------------------


def figure_targets(config: Config) -> list[str]:
    targets = [f"results/figures/{name}.png" for name in ("fig3_scores", "fig4_lowest_real")]
    targets += figure5_files(config)
    if config["figures"]["gan_quality_datasets"]:
        targets += [
            "results/figures/fig6_gan_quality_cleaning.png",
            "results/figures/fig7_gan_quality_detection.png",
        ]
    if config["toy"]["enabled"]:
        targets += ["results/figures/fig1_toy_classifier.png", "results/figures/fig2_toy_discriminator.png"]
    return targets


def reproduction_targets(config: Config) -> list[str]:
    repro = config.get("reproduction", {})
    if "dataset" not in repro:
        return []
    name, out = repro["dataset"].replace("_", "-"), repro["output_dir"]
    return [f"{out}/{name}-table1.csv", f"{out}/{name}-results.md", f"{out}/{name}-figures"]


def reproduction_epsilons(config: Config, wildcards: Any) -> dict[str, float]:
    ds = config["reproduction"]["dataset"]
    return {name: spec["epsilon"] for name, spec in config["datasets"][ds]["attacks"].items()}


def published_sources(config: Config) -> list[str]:
    """The outputs the reproduction keeps a committed copy of: the GAN's and the card's choices,
    the card's check alone, adversarial training's choice, and the robustness and discriminator
    studies when the config runs them."""
    cards = _cards_attacked(config)  # a run that attacks no card republishes none of its outputs
    # ... but for the choices a card-derived defence it attacks rests on (its GAN, its settings).
    choices = cards or _card_derivatives_attacked(config)
    sources = [
        f"results/defense/{ds}.{what}.csv"
        for ds in config["datasets"]
        for what in ("choice", "alone")
        if cards or (choices and what == "choice")
    ]
    sources += [
        f"results/models/{ds}.gan-choice.csv"
        for ds, spec in config["datasets"].items()
        if spec["gan"]["candidates"] and choices  # a validation output too: published with the card's
    ]
    sources += adversarial_tables(config)
    variants = config["variants"]
    sources += [
        f"results/defense/{ds}/variants/{v}.choice.csv"
        for ds in variants["datasets"]
        for v in variants["cards"]
    ]
    if config["robustness"]["datasets"]:
        sources += ROBUSTNESS_OUTPUTS + (DEPLOYMENT_OUTPUTS if cards else [])
    return sources + (STUDY_OUTPUTS if config["discriminator_study"]["datasets"] else [])


def _cards_attacked(config: Config) -> bool:
    """Whether the run's suite attacks a card (full-fmnist.yaml runs none, anchor-fmnist.yaml
    only classifiers): only such a run republishes the card's validation outputs, once."""
    if not config["robustness"]["datasets"]:
        return False
    chosen = config["robustness"].get("defenses")
    return chosen is None or bool(set(chosen) & set(config["cleaning"]["methods"]))


def _card_derivatives_attacked(config: Config) -> bool:
    """Whether the suite attacks a defence that cleans by the card's choices without being a
    card: a clean-all variant, or clean-all in front of the adversarially trained classifier."""
    return any(
        defense.startswith(VARIANT_PREFIX) or defense == "adversarial_cowboy"
        for ds in config["robustness"]["datasets"]
        for defense in robustness_defenses(config, ds)
    )


def published_copies(config: Config) -> list[str]:
    """Where the reproduction keeps those copies (none without a reproduction)."""
    if "dataset" not in config.get("reproduction", {}):
        return []
    out = config["reproduction"]["output_dir"]
    return [f"{out}/{Path(path).name}" for path in published_sources(config)]


def adversarial_tables(config: Config) -> list[str]:
    """Adversarial training's validation grid and choice per epsilon, one table per dataset."""
    datasets = config["adversarial_training"]["datasets"]
    return [f"results/adversarial/{ds}.adversarial-training.csv" for ds in datasets]


def all_targets(config: Config) -> list[str]:
    extra = [*DEPLOYMENT_OUTPUTS, *defense_cards(config)]
    extra += [f"results/epsilon_sweep/{ds}.csv" for ds in config["epsilon_sweep"]["datasets"]]
    extra += ROBUSTNESS_OUTPUTS if config["robustness"]["datasets"] else []
    extra += STUDY_OUTPUTS if config["discriminator_study"]["datasets"] else []
    extra += adversarial_tables(config)
    summary = config["which_defence"]
    extra += [f"{summary['output_dir']}/which_defence_summary.{k}" for k in ("csv", "png") if summary["runs"]]
    tables = ["table1", "table2", "table2_paired", "detection", "accuracy", "sweep"]
    return [
        *extra,
        *published_copies(config),
        *(f"results/{name}.csv" for name in tables),
        *figure_targets(config),
        *reproduction_targets(config),
    ]


# -- params --------------------------------------------------------------------------------------


def train_split_params(config: Config, wildcards: Any) -> dict[str, Any]:
    """Only what fixes the training images: the held-out validation split."""
    return {"validation_size": config["datasets"][wildcards.dataset]["validation_size"]}


def eval_split_params(config: Config, wildcards: Any) -> dict[str, Any]:
    ds = config["datasets"][wildcards.dataset]
    return canonical({key: ds[key] for key in ("validation_size", "validation_attack_size", "test_size")})


def attack_params(config: Config, wildcards: Any) -> dict[str, Any]:
    return canonical(config["datasets"][wildcards.dataset]["attacks"].get(wildcards.attack, {}))


def classifier_params(config: Config, wildcards: Any) -> dict[str, Any]:
    return canonical(config["datasets"][wildcards.dataset]["classifier"])


def gan_params(config: Config, wildcards: Any) -> dict[str, Any]:
    """Only what training reads: more steps, checkpoints or candidates retrain no saved step."""
    gan = config["datasets"][wildcards.dataset]["gan"]
    return canonical({key: gan[key] for key in ("batch_size", "beta1", "latent_dim", "lr", "width")})


def cleaning_params(config: Config, wildcards: Any) -> dict[str, Any]:
    """Settings shared by all cleaning jobs; sigma, steps and method come from the wildcards."""
    return canonical(
        {key: config["cleaning"][key] for key in ("lr", "restarts", "optimizer", "early_stop_tol")}
    )
