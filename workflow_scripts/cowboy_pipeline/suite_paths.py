"""Paths and params of the robustness suite and of the defences it attacks beyond the card:
the adversarially trained classifier (issue 22's anchor) and the clean-all variants.
Bound to the config as ``suite`` in rules/common.smk, as paths.py is bound as ``paths``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from .config import canonical, format_number
from .defenses import (  # re-exported: the rules, plots and tests read them here
    ADVERSARIAL_DEFENSES as ADVERSARIAL_DEFENSES,
)
from .defenses import (
    VARIANT_DEFENSE as VARIANT_DEFENSE,
)
from .defenses import (
    VARIANT_NAME as VARIANT_NAME,
)
from .defenses import (
    VARIANT_PREFIX as VARIANT_PREFIX,
)
from .defenses import (
    available_defenses as available_defenses,
)
from .defenses import (
    robustness_defenses as robustness_defenses,
)
from .paths import Config, card_grid_setting, final_val_scores

# -- the suite ----------------------------------------------------------------------


def robustness_files(config: Config, doubled: bool = False) -> list[str]:
    """The main run of every defence and epsilon, or (``doubled``) its convergence check."""
    robustness = config["robustness"]
    return [
        _run_path(ds, defense, format_number(eps), "x2" if doubled else robustness["scale"])
        for ds in robustness["datasets"]
        for defense in robustness_defenses(config, ds)
        for eps in robustness["epsilons"]
    ]


def _run_path(dataset: str, defense: str, epsilon: str, scale: int | str) -> str:
    """Scale 1 (the listed budget) has no suffix; "_s{scale}" a main run climbed above it;
    "_x2" the convergence check at twice the main run's budget."""
    suffix = "" if scale == 1 else f"_{scale}" if scale == "x2" else f"_s{scale}"
    return f"results/robustness/{dataset}/{defense}_eps{epsilon}{suffix}.parquet"


def robustness_shards(config: Config, wildcards: Any) -> list[str]:
    """The shards of the main run at robustness.scale when robustness.shard_images splits it,
    each the suite on test images [start, stop); none when one job attacks all. The rungs
    below that scale stay one job each: a climb sharded after they ran reruns none of them."""
    scale = int(getattr(wildcards, "scale", 1))
    if scale != int(config["robustness"]["scale"]):
        return []
    return _shards(config, wildcards, f"s{scale}", config["robustness"]["size"])


def robustness_check_shards(config: Config, wildcards: Any) -> list[str]:
    """The convergence check's shards, over its first double_images images."""
    robustness = config["robustness"]
    return _shards(config, wildcards, "x2", min(robustness["double_images"], robustness["size"]))


def _shards(config: Config, wildcards: Any, budget: str, size: int) -> list[str]:
    per_shard = config["robustness"]["shard_images"]
    if per_shard is None or per_shard >= size:
        return []
    run = f"{wildcards.dataset}/shards/{wildcards.defense}_eps{wildcards.epsilon}_{budget}"
    return [
        f"results/robustness/{run}_images{start}-{min(start + per_shard, size)}.parquet"
        for start in range(0, size, per_shard)
    ]


def robustness_shard_start(config: Config, wildcards: Any) -> list[str]:
    """A shard of a main run above scale 1 starts from the run at half its scale."""
    scale = int(wildcards.scale)
    return [] if scale == 1 else [robustness_half_scale_run(config, wildcards)]


def robustness_main_run(config: Config, wildcards: Any) -> str:
    """The main run the convergence check starts from (at robustness.scale)."""
    return _run_path(wildcards.dataset, wildcards.defense, wildcards.epsilon, config["robustness"]["scale"])


def robustness_check_start(config: Config, wildcards: Any) -> str:
    """What a convergence-check shard starts from: the main run's shard of the same first image
    where the main run is sharded too (both step by shard_images from 0), so that the check on
    the first images runs, and can fail, before the main run's later shards have; else the
    main run."""
    robustness = config["robustness"]
    per_shard, size, scale = robustness["shard_images"], robustness["size"], robustness["scale"]
    if per_shard is None or per_shard >= size:
        return robustness_main_run(config, wildcards)
    start = int(wildcards.start)
    run = f"{wildcards.dataset}/shards/{wildcards.defense}_eps{wildcards.epsilon}_s{scale}"
    return f"results/robustness/{run}_images{start}-{min(start + per_shard, size)}.parquet"


def robustness_half_scale_run(config: Config, wildcards: Any) -> str:
    """A run at scale s > 1 starts from the run at s / 2 on the same (all) images."""
    return _run_path(wildcards.dataset, wildcards.defense, wildcards.epsilon, int(wildcards.scale) // 2)


def robustness_check_scale(config: Config) -> int:
    return 2 * int(config["robustness"]["scale"])


def suite_inputs(config: Config, wildcards: Any) -> dict[str, str]:
    """What every suite job reads: the test images, the classifier and card of its defence,
    and the validation scores the detector's threshold came from."""
    return {
        "data": f"results/data/{wildcards.dataset}/eval.safetensors",
        "classifier": robustness_classifier(config, wildcards),
        "card": robustness_card(config, wildcards),
        "val_scores": final_val_scores(config, wildcards),
    }


def robustness_classifier(config: Config, wildcards: Any) -> str:
    """The standard classifier; for the adversarial defences the one chosen at this epsilon;
    for a variant, the classifier it names."""
    if wildcards.defense in ADVERSARIAL_DEFENSES:
        return adversarial_model(wildcards.dataset, wildcards.epsilon)
    if wildcards.defense.startswith(VARIANT_PREFIX):
        return variant_classifier(
            config, SimpleNamespace(dataset=wildcards.dataset, variant=_variant(wildcards))
        )
    return f"results/models/{wildcards.dataset}/classifier.safetensors"


def robustness_card(config: Config, wildcards: Any) -> str:
    """The deployed card: the chosen one, or a variant's."""
    if wildcards.defense.startswith(VARIANT_PREFIX):
        return variant_card(wildcards.dataset, _variant(wildcards))
    return f"results/defense/{wildcards.dataset}.safetensors"


def _variant(wildcards: Any) -> str:
    return str(wildcards.defense).removeprefix(VARIANT_PREFIX)


# -- clean-all variants (issue 22) -------------------------------------------------------------


def variant_card(dataset: str, variant: str) -> str:
    return f"results/defense/{dataset}/variants/{variant}.safetensors"


def variant_classifier(config: Config, wildcards: Any) -> str:
    """The standard classifier, or the one fine-tuned on G's reconstructions ("rec")."""
    rec = config["variants"]["cards"][wildcards.variant].get("classifier", "standard") == "rec"
    name = "classifier_rec" if rec else "classifier"
    return f"results/models/{wildcards.dataset}/{name}.safetensors"


def variant_setting(config: Config, wildcards: Any) -> dict[str, Any]:
    """One setting of a variant's grid; unnamed fields are the card grid's (the cleaning's)."""
    grid = config["variants"]["cards"][wildcards.variant]["grid"]
    return card_grid_setting(config, SimpleNamespace(setting=None), grid[wildcards.setting])


def variant_settings(config: Config, wildcards: Any) -> dict[str, dict[str, Any]]:
    """Every setting of a variant's grid, whole: the card takes the one the chooser picked."""
    names = config["variants"]["cards"][wildcards.variant]["grid"]
    return {
        name: variant_setting(config, SimpleNamespace(variant=wildcards.variant, setting=name))
        for name in names
    }


def variant_grid_files(config: Config, wildcards: Any) -> list[str]:
    grid = config["variants"]["cards"][wildcards.variant]["grid"]
    return [
        f"results/defense/{wildcards.dataset}/variants/{wildcards.variant}/{name}.parquet" for name in grid
    ]


def variant_encoder(config: Config, wildcards: Any) -> list[str]:
    """The encoder, for a variant whose grid starts any descent from it."""
    grid = config["variants"]["cards"][wildcards.variant]["grid"].values()
    uses = any(setting.get("start") == "encoder" for setting in grid)
    return [f"results/models/{wildcards.dataset}/encoder.safetensors"] if uses else []


def variant_cards(config: Config) -> list[str]:
    variants = config["variants"]
    return [variant_card(ds, name) for ds in variants["datasets"] for name in variants["cards"]]


def adversarial_model(dataset: str, epsilon: str) -> str:
    return f"results/models/{dataset}/adversarial_eps{epsilon}.safetensors"


def adversarial_grid_files(config: Config, wildcards: Any) -> list[str]:
    grid = config["adversarial_training"]["grid"]
    return [f"results/adversarial/{wildcards.dataset}/{name}.safetensors" for name in grid]


def adversarial_choice_tables(config: Config, wildcards: Any) -> list[str]:
    """The validation choice of each robustness epsilon, one job (and table) each."""
    epsilons = [format_number(eps) for eps in config["robustness"]["epsilons"]]
    return [f"results/adversarial/{wildcards.dataset}/choice_eps{eps}.csv" for eps in epsilons]


def adversarial_models(config: Config) -> list[str]:
    """The chosen adversarially trained classifier per dataset and robustness epsilon."""
    return [
        adversarial_model(ds, format_number(eps))
        for ds in config["adversarial_training"]["datasets"]
        for eps in config["robustness"]["epsilons"]
    ]


def adversarial_setting(config: Config, wildcards: Any) -> dict[str, Any]:
    return canonical(config["adversarial_training"]["grid"][wildcards.setting])


def robustness_params(config: Config) -> dict[str, Any]:
    """What one suite job computes with: not the list of epsilons, datasets or defences (a
    wildcard each), so that adding one reruns nothing already attacked; not the main run's
    scale (a params entry of its own in each rule), so that climbing it reruns no run below
    it; not the earlier runs, which only the report reads; not the shard size, which a
    sharded run's shard files name (its shards' images are a params entry of their own)."""
    ignored = ("epsilons", "datasets", "scale", "defenses", "earlier_runs", "shard_images")
    return canonical({k: v for k, v in config["robustness"].items() if k not in ignored})


def earlier_run_files(config: Config) -> list[str]:
    """The committed tables of earlier suite runs that the report draws beside this one's."""
    return [
        path
        for run in config["robustness"]["earlier_runs"]
        for path in (run["table"], run.get("convergence"))
        if path is not None
    ]


def chaos_files(config: Config) -> list[str]:
    """The chaos table for the card's chosen settings and, beside them, the paper's (Tables 1-2)."""
    return [
        f"results/robustness/{ds}/{method}_{settings}_chaos.csv"
        for ds in config["robustness"]["datasets"]
        for method in config["cleaning"]["methods"]
        if method in robustness_defenses(config, ds)
        for settings in ("card", "paper")
    ]


def chaos_overrides(config: Config, wildcards: Any) -> dict[str, Any]:
    """No change for the card; the cleaning section's settings for the paper's protocol."""
    if wildcards.settings == "card":
        return {}
    return canonical(
        {key: config["cleaning"][key] for key in ("sigma", "steps", "lr", "optimizer", "restarts")}
    )
