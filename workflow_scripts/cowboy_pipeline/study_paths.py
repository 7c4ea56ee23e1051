"""The discriminator study's files (rules/discriminator_study.smk): several GAN seeds, a
validation grid over the D weight (0 = Defense-GAN), optimizers, steps and restarts, each
method's choice, and the test split at those choices and at fixed shared settings.

Plain functions of the checked config, bound by rules/common.smk as ``study.*``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cowboy_core.choices import NO_ATTACK
from cowboy_core.settings import Method

from .config import format_number

Config = dict[str, Any]

CLEAN_PATTERN = (
    "results/discriminator_study/{dataset}/{split}/{attack}/{gan}/"
    "{method}_dweight{d_weight}_{optimizer}_lr{lr}_r{restarts}_run{run_steps}_n{n}.parquet"
)


def _study(config: Config) -> dict[str, Any]:
    return dict(config["discriminator_study"])


def gans(config: Config, dataset: str) -> list[str]:
    """The study's GANs, "seed{s}_step{t}": every seed at the dataset's GAN steps, and the
    first seed trained on to long_gan_steps."""
    study, steps = _study(config), config["datasets"][dataset]["gan"]["steps"]
    names = [f"seed{s}_step{steps}" for s in study["gan_seeds"]]
    if study["long_gan_steps"]:
        names.append(f"seed{study['gan_seeds'][0]}_step{study['long_gan_steps']}")
    return names


def _parse_gan(gan: str) -> tuple[int, int]:
    seed, step = gan.removeprefix("seed").split("_step")
    return int(seed), int(step)


def gan_file(config: Config, wildcards: Any) -> str:
    """The pipeline's own GAN stands for the config's seed at its steps: the same training."""
    seed, step = _parse_gan(wildcards.gan)
    if seed == config["seed"] and step == config["datasets"][wildcards.dataset]["gan"]["steps"]:
        return f"results/models/{wildcards.dataset}/gan/step{step}.safetensors"
    return f"results/models/{wildcards.dataset}/gan_seed{seed}/step{step}.safetensors"


def previous_state(config: Config, wildcards: Any) -> str | list[str]:
    """A seeded GAN's chain: its dataset's GAN steps, then long_gan_steps for the first seed."""
    study, ds, seed = _study(config), wildcards.dataset, int(wildcards.gseed)
    chain = [config["datasets"][ds]["gan"]["steps"]]
    if study["long_gan_steps"] and seed == study["gan_seeds"][0]:
        chain.append(study["long_gan_steps"])
    here = chain.index(int(wildcards.step))
    if here == 0:
        return []
    if seed == config["seed"] and here == 1:  # continue the pipeline's own GAN
        return f"results/models/{ds}/gan/step{chain[0]}.state.pt"
    return f"results/models/{ds}/gan_seed{seed}/step{chain[here - 1]}.state.pt"


def images(config: Config, wildcards: Any) -> int:
    return int(wildcards.n)


def gan_seed(config: Config, wildcards: Any) -> int:
    return int(wildcards.gseed)


def record_steps(config: Config) -> list[int]:
    study = _study(config)
    return sorted({*study["record_steps"], study["restart_steps"], study["long_steps"]})


def flip_images(config: Config, wildcards: Any) -> int:
    """Alone-vs-batch flips on the first GAN's validation grid only: cleaning images one at a
    time runs at a fifteenth of the batched speed, so the long runs and other GANs skip it."""
    study = _study(config)
    if wildcards.split != "val" or int(wildcards.run_steps) > max(study["record_steps"]):
        return 0
    return int(study["flip_images"]) if wildcards.gan == gans(config, wildcards.dataset)[0] else 0


def clean_file(
    dataset: str, split: str, attack: str, gan: str, d_weight: float, run: dict[str, Any], steps: int, n: int
) -> str:
    """One cleaning run's file; ``run`` gives the optimizer, lr and restarts (default 1)."""
    return CLEAN_PATTERN.format(
        dataset=dataset,
        split=split,
        attack=attack,
        gan=gan,
        method="defense_gan" if float(d_weight) == 0 else "cowboy",
        d_weight=format_number(d_weight),
        optimizer=run["optimizer"],
        lr=format_number(run["lr"]),
        restarts=run.get("restarts", 1),
        run_steps=steps,
        n=n,
    )


def validation_files(config: Config, wildcards: Any) -> list[str]:
    """The validation grid of one GAN: d_weight x optimizer at R = 1 to the longest recorded
    step; d_weight at each R > 1 with the first optimizer to restart_steps; and, for the first
    GAN, both methods (d_weight 0 and 1) with the first optimizer to long_steps on long_images."""
    study, ds, gan = _study(config), wildcards.dataset, wildcards.gan
    attack, first, n = study["validation_attack"], study["optimizers"][0], study["validation_images"]
    files = [
        clean_file(ds, "val", attack, gan, weight, {**run, "restarts": 1}, max(study["record_steps"]), n)
        for weight in study["d_weights"]
        for run in study["optimizers"]
    ]
    files += [
        clean_file(ds, "val", attack, gan, weight, {**first, "restarts": r}, study["restart_steps"], n)
        for weight in study["d_weights"]
        for r in study["restarts"]
        if r > 1
    ]
    if gan == gans(config, ds)[0]:
        long = {**first, "restarts": 1}
        files += [
            clean_file(ds, "val", attack, gan, weight, long, study["long_steps"], study["long_images"])
            for weight in (0, 1)
        ]
    return files


def choice_inputs(config: Config, wildcards: Any) -> dict[str, list[str]]:
    """A GAN's validation grid, and the first GAN's (where the flips were measured)."""
    first = SimpleNamespace(dataset=wildcards.dataset, gan=gans(config, wildcards.dataset)[0])
    return {"own": validation_files(config, wildcards), "flips": validation_files(config, first)}


def all_validation_files(config: Config) -> list[str]:
    return [
        path
        for ds in _study(config)["datasets"]
        for gan in gans(config, ds)
        for path in validation_files(config, SimpleNamespace(dataset=ds, gan=gan))
    ]


def choice_files(config: Config) -> list[str]:
    return [
        f"results/discriminator_study/{ds}/{gan}/chosen.json"
        for ds in _study(config)["datasets"]
        for gan in gans(config, ds)
    ]


def files_for_test_split(config: Config, kind: str) -> list[str]:
    """The test split: each method at its own validation choice ("chosen": every attack and the
    clean images "none", every GAN), or both methods at each shared fixed setting ("fixed")."""
    study, files = _study(config), []
    for ds in study["datasets"]:
        for index, gan in enumerate(gans(config, ds)):
            for attack in [*study["test_attacks"], NO_ATTACK]:
                if kind == "chosen":
                    n = study["test_images"]
                    files += [
                        f"results/discriminator_study/{ds}/test/{attack}/{gan}/{m}_chosen_n{n}.parquet"
                        for m in Method
                    ]
                    continue
                for fixed in study["fixed"]:
                    if attack in fixed["attacks"] and index < fixed["gans"]:
                        files += [
                            clean_file(
                                ds, "test", attack, gan, weight, fixed, fixed["steps"], fixed["images"]
                            )
                            for weight in (0, fixed["d_weight"])
                        ]
    return files
