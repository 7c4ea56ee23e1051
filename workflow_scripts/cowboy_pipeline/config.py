"""Workflow configuration: JSON-Schema validation with defaults, plus checks a schema cannot express.

Every error names the offending key and what is allowed, so that a typo fails before any
job starts and without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from cowboy_core.choices import AttackName

from .defenses import available_defenses

# Test-set sizes of the torchvision datasets, to refuse a subset larger than the set.
TEST_SET_SIZES = {"mnist": 10000, "mnist_5k": 1000, "fashion_mnist": 10000, "cifar10": 10000, "svhn": 26032}
TRAIN_SET_SIZES = {"mnist": 60000, "mnist_5k": 4000, "fashion_mnist": 60000, "cifar10": 50000, "svhn": 73257}


T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the allowed values."""


def _with_defaults(base: type[Draft202012Validator]) -> Any:
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    default = sub["default"]
                    instance[name] = (
                        dict(default)
                        if isinstance(default, dict)
                        else (list(default) if isinstance(default, list) else default)
                    )
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(base, {"properties": set_defaults})


_Validator = _with_defaults(Draft202012Validator)


ATTACK_NAMES = f"{', '.join(AttackName)}, optionally labelled ({AttackName.FGSM}-std)"


def _describe(error: ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and "patternProperties" in schema:
        return f"{key}: {error.message}; allowed: {ATTACK_NAMES}"
    if error.validator == "pattern":
        return f"{key}: {error.instance!r} is not allowed; allowed: {_pattern_words(error.validator_value)}"
    if error.validator == "additionalProperties":
        keys = sorted(schema.get("properties", {}))
        return f"{key}: {error.message}; allowed keys: {', '.join(keys)}"
    if error.validator == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return f"{key}: {error.instance!r} is not allowed; allowed: {choices}"
    if error.validator == "propertyNames":
        return f"{key}: {error.message}"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "uniqueItems":
        return f"{key}: {error.instance!r} has duplicate values; list each value once"
    bounds: list[str] = []
    for word, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if word in schema:
            bounds.append(f"{sign} {schema[word]}")
    kind = schema.get("type")
    allowed = f"; allowed: {kind} {' and '.join(bounds)}".rstrip() if (bounds or kind) else ""
    return f"{key}: {error.message}{allowed}"


def _pattern_words(pattern: str) -> str:
    """What a pattern allows, in words where the schema's patterns have them: the attack names
    for an attack's, and the pattern itself for any other (a label, a defence name)."""
    if f"({'|'.join(AttackName)})" in pattern:
        return ("none, " if pattern.startswith("^(none|") else "") + ATTACK_NAMES
    return f"a string matching {pattern}"


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path) as handle:
        schema: dict[str, Any] = yaml.safe_load(handle)
    return schema


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults into ``config`` in place, then check it; raises :class:`ConfigError`."""
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_describe(e) for e in errors]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    _check_semantics(config)
    return config


def _check_semantics(config: dict[str, Any]) -> None:
    """What the schema cannot say: how sections refer to one another."""
    problems = [problem for check in SEMANTIC_CHECKS for problem in check(config)]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _dataset_problems(config: dict[str, Any]) -> list[str]:
    problems = (
        [] if config["datasets"] else ["datasets: empty; list at least one of " + ", ".join(TEST_SET_SIZES)]
    )
    for name, ds in config["datasets"].items():
        key, gan_steps = f"datasets.{name}", ds["gan"]["steps"]
        late = [s for s in ds["gan"]["checkpoints"] if s > gan_steps]
        if late:
            problems.append(
                f"{key}.gan.checkpoints: {late} lie beyond gan.steps={gan_steps}; allowed: 1..{gan_steps}"
            )
        problems += _gan_choice_problems(key, ds)
        test_size, available = ds.get("test_size"), TEST_SET_SIZES[name]
        if test_size is not None and test_size > available:
            problems.append(
                f"{key}.test_size: {test_size} is larger than the {available} test images; "
                f"allowed: 1..{available} or null for all"
            )
        if ds["validation_size"] >= TRAIN_SET_SIZES[name]:
            problems.append(f"{key}.validation_size: must be below {TRAIN_SET_SIZES[name]}")
        if ds["validation_attack_size"] > ds["validation_size"]:
            problems.append(
                f"{key}.validation_attack_size: {ds['validation_attack_size']} exceeds "
                f"validation_size={ds['validation_size']}"
            )
    return problems


def _gan_choice_problems(key: str, ds: dict[str, Any]) -> list[str]:
    """The candidates must be saved GAN steps, and the choice's attacks this dataset's rows."""
    gan = ds["gan"]
    if not gan["candidates"]:
        return []
    saved = {*gan["checkpoints"], gan["steps"]}
    problems = [
        f"{key}.gan.candidates: {step} is not a saved GAN step; allowed: {sorted(saved)}"
        for step in gan["candidates"]
        if step not in saved
    ]
    if len(gan["candidates"]) < 2:
        problems.append(f"{key}.gan.candidates: a choice needs two or more; leave it empty to use gan.steps")
    unknown = [a for a in gan["choose_on"] if a != "none" and a not in ds["attacks"]]
    if unknown:
        problems.append(
            f"{key}.gan.choose_on: {unknown} are not attacks of this dataset; allowed: none, "
            + ", ".join(ds["attacks"])
        )
    return problems


def _attack_problems(config: dict[str, Any]) -> list[str]:
    problems, calibration = [], config["detection"]["calibration_attack"]
    for name, ds in config["datasets"].items():
        if calibration not in ds["attacks"]:
            problems.append(
                f"detection.calibration_attack: {calibration!r} is not among datasets.{name}.attacks "
                f"({', '.join(ds['attacks'])})"
            )
        if config["sweep"]["sigmas"]:
            missing = [a for a in config["sweep"]["attacks"] if a not in ds["attacks"]]
            problems += [f"sweep.attacks: {a!r} is not among datasets.{name}.attacks" for a in missing]
    return problems


def _cleaning_problems(config: dict[str, Any]) -> list[str]:
    cleaning = config["cleaning"]
    steps, recorded = cleaning["steps"], cleaning["record_steps"]
    if recorded and steps < max(recorded) and steps not in recorded:
        return [
            f"cleaning.steps: {steps} is below the longest recorded step ({max(recorded)}) but not "
            f"among cleaning.record_steps {recorded}; allowed: one of them, or at least the largest"
        ]
    return []


def _unknown_datasets(config: dict[str, Any]) -> list[str]:
    """Sections that name datasets must name configured ones."""
    named = {
        "figures.gan_quality_datasets": config["figures"]["gan_quality_datasets"],
        "robustness.datasets": config["robustness"]["datasets"],
        "discriminator_study.datasets": config["discriminator_study"]["datasets"],
        "adversarial_training.datasets": config["adversarial_training"]["datasets"],
        "variants.datasets": config["variants"]["datasets"],
        "paper_steps.datasets": config["paper_steps"]["datasets"],
        "reproduction.dataset": [config.get("reproduction", {}).get("dataset")],
    }
    problems = [
        f"{key}: {name!r} is not a configured dataset"
        for key, names in named.items()
        for name in names
        if name is not None and name not in config["datasets"]
    ]
    spec = config["paper_steps"]
    if spec["datasets"] and spec["steps"] <= config["cleaning"]["steps"]:
        problems.append(f"paper_steps.steps: must exceed cleaning.steps ({config['cleaning']['steps']})")
    for name in (n for n in spec["datasets"] if n in config["datasets"]):
        missing = [a for a in spec["attacks"] if a not in config["datasets"][name]["attacks"]]
        problems += [f"paper_steps.attacks: {a!r} is not among datasets.{name}.attacks" for a in missing]
    return problems


def _study_problems(config: dict[str, Any]) -> list[str]:
    problems, robustness, study = [], config["robustness"], config["discriminator_study"]
    for name in (n for n in study["datasets"] if n in config["datasets"]):
        ds = config["datasets"][name]
        for attack in sorted({study["validation_attack"], *study["test_attacks"]} - set(ds["attacks"])):
            problems.append(f"discriminator_study: attack {attack!r} is not among datasets.{name}.attacks")
        if study["long_gan_steps"] is not None and study["long_gan_steps"] <= ds["gan"]["steps"]:
            problems.append(f"discriminator_study.long_gan_steps: must exceed datasets.{name}.gan.steps")
    if study["datasets"] and 0 not in study["d_weights"]:
        problems.append("discriminator_study.d_weights: must include 0 (Defense-GAN, the baseline)")
    for section in ("adversarial_training", "variants"):
        for name in sorted(set(config[section]["datasets"]) - set(robustness["datasets"])):
            problems.append(
                f"{section}.datasets: {name!r} is not among robustness.datasets; "
                "what it trains is only measured by the robustness suite"
            )
    return problems


def _suite_problems(config: dict[str, Any]) -> list[str]:
    """robustness.defenses may only name defences the config builds for every suite dataset."""
    robustness = config["robustness"]
    built = {"none", *config["cleaning"]["methods"]}
    for name in robustness["datasets"]:
        built |= set(available_defenses(config, name))
    unknown = sorted(set(robustness.get("defenses") or []) - built)
    return [
        f"robustness.defenses: {d!r} is not built by this config; allowed: {', '.join(sorted(built))}"
        for d in unknown
    ]


SEMANTIC_CHECKS = (
    _dataset_problems,
    _attack_problems,
    _cleaning_problems,
    _unknown_datasets,
    _study_problems,
    _suite_problems,
)


def canonical(value: T) -> T:
    """``value`` with every mapping's keys sorted, recursively: Snakemake compares params by
    their text, so a config rewritten in another key order must give the same params."""
    if isinstance(value, dict):
        return cast(T, {key: canonical(value[key]) for key in sorted(value)})
    if isinstance(value, list | tuple):
        return cast(T, [canonical(item) for item in value])
    return value


def format_number(value: float) -> str:
    """Canonical text of a number in file names (sigma 1.0 -> '1', 0.5 -> '0.5')."""
    return f"{float(value):g}"


def run_steps(cleaning: dict[str, Any]) -> int:
    """Steps a cleaning job runs: enough for the tables and for every recorded snapshot."""
    return max([int(cleaning["steps"]), *map(int, cleaning["record_steps"])])
