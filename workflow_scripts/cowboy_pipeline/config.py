"""Workflow configuration: JSON-Schema validation with defaults, plus checks a schema cannot express.

Every error names the offending key and what is allowed, so that a typo fails before any
job starts and without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from cowboy_core.attacks import AttackName

# Test-set sizes of the torchvision datasets, to refuse a subset larger than the set.
TEST_SET_SIZES = {"mnist": 10000, "fashion_mnist": 10000, "cifar10": 10000, "svhn": 26032}
TRAIN_SET_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "svhn": 73257}


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


def _describe(error: ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    attack_names = f"{', '.join(AttackName)}, optionally labelled ({AttackName.FGSM}-std)"
    if error.validator == "additionalProperties" and "patternProperties" in schema:
        return f"{key}: {error.message}; allowed: {attack_names}"
    if error.validator == "pattern":
        return f"{key}: {error.instance!r} is not allowed; allowed: {attack_names}"
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
    problems: list[str] = []
    if not config["datasets"]:
        problems.append("datasets: empty; list at least one of mnist, fashion_mnist, cifar10, svhn")
    for name, ds in config["datasets"].items():
        key = f"datasets.{name}"
        gan_steps = ds["gan"]["steps"]
        late = [s for s in ds["gan"]["checkpoints"] if s > gan_steps]
        if late:
            problems.append(
                f"{key}.gan.checkpoints: {late} lie beyond gan.steps={gan_steps}; allowed: 1..{gan_steps}"
            )
        test_size = ds.get("test_size")
        if test_size is not None and test_size > TEST_SET_SIZES[name]:
            problems.append(
                f"{key}.test_size: {test_size} is larger than the {TEST_SET_SIZES[name]} test images; "
                f"allowed: 1..{TEST_SET_SIZES[name]} or null for all"
            )
        if ds["validation_size"] >= TRAIN_SET_SIZES[name]:
            problems.append(f"{key}.validation_size: must be below {TRAIN_SET_SIZES[name]}")
        if ds["validation_attack_size"] > ds["validation_size"]:
            problems.append(
                f"{key}.validation_attack_size: {ds['validation_attack_size']} exceeds "
                f"validation_size={ds['validation_size']}"
            )
        calib = config["detection"]["calibration_attack"]
        if calib not in ds["attacks"]:
            problems.append(
                f"detection.calibration_attack: {calib!r} is not among {key}.attacks "
                f"({', '.join(ds['attacks'])})"
            )
        for attack in config["sweep"]["attacks"]:
            if config["sweep"]["sigmas"] and attack not in ds["attacks"]:
                problems.append(f"sweep.attacks: {attack!r} is not among {key}.attacks")
    cleaning = config["cleaning"]
    recorded = cleaning["record_steps"]
    if recorded and cleaning["steps"] < max(recorded) and cleaning["steps"] not in recorded:
        problems.append(
            f"cleaning.steps: {cleaning['steps']} is below the longest recorded step "
            f"({max(cleaning['record_steps'])}) but not among cleaning.record_steps "
            f"{cleaning['record_steps']}; allowed: one of them, or at least the largest"
        )
    for name in config["figures"]["gan_quality_datasets"]:
        if name not in config["datasets"]:
            problems.append(f"figures.gan_quality_datasets: {name!r} is not a configured dataset")
    robustness = config["robustness"]
    for name in robustness["datasets"]:
        if name not in config["datasets"]:
            problems.append(f"robustness.datasets: {name!r} is not a configured dataset")
    if robustness["datasets"] and robustness["check_epsilon"] not in robustness["epsilons"]:
        problems.append(
            f"robustness.check_epsilon: {robustness['check_epsilon']} is not among robustness.epsilons "
            f"{robustness['epsilons']}"
        )
    study = config["discriminator_study"]
    for name in study["datasets"]:
        if name not in config["datasets"]:
            problems.append(f"discriminator_study.datasets: {name!r} is not a configured dataset")
            continue
        for attack in {study["validation_attack"], *study["test_attacks"]} - set(
            config["datasets"][name]["attacks"]
        ):
            problems.append(f"discriminator_study: attack {attack!r} is not among datasets.{name}.attacks")
        if (
            study["long_gan_steps"] is not None
            and study["long_gan_steps"] <= config["datasets"][name]["gan"]["steps"]
        ):
            problems.append(f"discriminator_study.long_gan_steps: must exceed datasets.{name}.gan.steps")
    if study["datasets"] and 0 not in study["d_weights"]:
        problems.append("discriminator_study.d_weights: must include 0 (Defense-GAN, the baseline)")
    repro = config.get("reproduction", {}).get("dataset")
    if repro is not None and repro not in config["datasets"]:
        problems.append(f"reproduction.dataset: {repro!r} is not a configured dataset")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively: Snakemake compares params by
    their text, so a config rewritten in another key order must give the same params."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def format_number(value: float) -> str:
    """Canonical text of a number in file names (sigma 1.0 -> '1', 0.5 -> '0.5')."""
    return f"{float(value):g}"


def run_steps(cleaning: dict[str, Any]) -> int:
    """Steps a cleaning job runs: enough for the tables and for every recorded snapshot."""
    return max([int(cleaning["steps"]), *map(int, cleaning["record_steps"])])
