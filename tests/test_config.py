"""Bad configs fail before any job starts, naming the key and the allowed values."""

import copy
from pathlib import Path

import pytest
import yaml

from cowboy_pipeline.config import ConfigError, validate_config

from .configs import SCHEMA
from .conftest import REPO, run_snakemake

TINY = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())


def _set(config, dotted, value):
    node = config
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


class _Delete:
    """Deletes the key. Its repr is fixed so that the test ids are the same on every run
    (an object()'s repr holds its address, which `pytest --lf` and -k cannot match)."""

    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()
FM = "datasets.fashion_mnist"

BAD = [
    ("datasets.imagenet", {"classifier": {"steps": 1}, "gan": {"steps": 1}, "attacks": {}}, "imagenet"),
    (f"{FM}.attacks.cw", {"epsilon": 0.1}, "cw"),
    ("cleaning.sigma", 0, "cleaning.sigma"),
    ("cleaning.sigma", -1.0, "cleaning.sigma"),
    ("cleaning.sigma", "big", "cleaning.sigma"),
    ("cleaning.steps", 0, "cleaning.steps"),
    ("cleaning.steps", -5, "cleaning.steps"),
    (f"{FM}.attacks.fgsm.epsilon", 1.5, "attacks.fgsm.epsilon"),
    (f"{FM}.attacks.pgd.epsilon", 0, "attacks.pgd.epsilon"),
    ("detection.p", 0.5, "detection.p"),
    (f"{FM}.gan.checkpoints", [10, 999], "gan.checkpoints"),
    ("cleaning.sigma", _DELETE, "sigma"),
    (f"{FM}.gan", _DELETE, "gan"),
    (f"{FM}.classifier.steps", "ten", "classifier.steps"),
    ("sweep.sigmas", [0.5, 0.5], "sweep.sigmas"),
    (f"{FM}.test_size", 20000, "test_size"),
    ("cleaning.optimizer", "sgd", "cleaning.optimizer"),
    ("cleaning.methods", ["cowboy", "apegan"], "cleaning.methods"),
    ("cleaning.record_steps", [3, 100], "cleaning.steps"),
    ("detection.calibration_attack", "cw", "detection.calibration_attack"),
    ("threads", 8, "threads"),
    ("cleaning.precision", "bf16", "cleaning"),  # an execution setting, not experiment config
    ("robustness.defenses", ["cw"], "robustness.defenses"),
    ("robustness.defenses", ["variant_unbuilt"], "robustness.defenses"),  # no such variant card
    ("robustness.defenses", [], "robustness.defenses"),
    ("robustness.defenses", ["variant_enc_rec"], "robustness.defenses"),  # "_" separates "_eps"
    ("variants.cards.enc_rec", {"grid": {"gd": {"optimizer": "gd"}}}, "enc_rec"),  # in file names
    ("robustness.earlier_runs", [{"label": "card"}], "robustness.earlier_runs"),  # no table
]


def test_schema_lists_the_librarys_values():
    """The experiment's axes live in the library's enums; the schema must not drift from them."""
    from cowboy_core import AttackName, DatasetName, Method, Optimizer
    from cowboy_core.choices import attack_pattern

    props = SCHEMA["properties"]
    images = {d.value for d in DatasetName} - {DatasetName.GAUSSIANS.value}
    assert set(props["datasets"]["propertyNames"]["enum"]) == images
    assert props["cleaning"]["properties"]["methods"]["items"]["enum"] == list(Method)
    assert props["cleaning"]["properties"]["optimizer"]["enum"] == list(Optimizer)
    patterns = SCHEMA["$defs"]["dataset"]["properties"]["attacks"]["patternProperties"]
    names = {n for p in patterns for n in p.strip("^$").split("(-")[0].strip("()").split("|")}
    assert names == set(AttackName)
    assert props["detection"]["properties"]["calibration_attack"]["pattern"] == f"^{attack_pattern()}$"


@pytest.mark.parametrize(("key", "value", "named"), BAD, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD])
def test_bad_config_names_the_key(key, value, named):
    config = copy.deepcopy(TINY)
    _set(config, key, value)
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert named in str(info.value)


def test_the_schema_allows_the_variant_names_the_wildcards_match():
    """A variant card named with "_" once passed the schema and then found no rule."""
    from cowboy_pipeline.suite_paths import VARIANT_DEFENSE, VARIANT_NAME

    variants = SCHEMA["properties"]["variants"]["properties"]["cards"]
    assert variants["propertyNames"]["pattern"] == f"^{VARIANT_NAME}$"
    defenses = SCHEMA["properties"]["robustness"]["properties"]["defenses"]["items"]["pattern"]
    assert defenses.endswith(f"|{VARIANT_DEFENSE})$")


def test_messages_list_allowed_values():
    config = copy.deepcopy(TINY)
    config["cleaning"]["optimizer"] = "sgd"
    with pytest.raises(ConfigError, match="allowed: gd, momentum, adam"):
        validate_config(config, SCHEMA)
    config = copy.deepcopy(TINY)
    config["datasets"]["fashion_mnist"]["attacks"]["fgsm"]["epsilon"] = 2
    with pytest.raises(ConfigError, match="<= 1"):
        validate_config(config, SCHEMA)


def test_a_pattern_message_says_what_that_key_allows_not_the_attack_names():
    config = copy.deepcopy(TINY)
    config.setdefault("robustness", {})["defenses"] = ["bogus"]
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert "bogus" in str(info.value) and "variant_" in str(info.value) and "fgsm" not in str(info.value)
    config = copy.deepcopy(TINY)
    config["detection"]["calibration_attack"] = "cw"
    with pytest.raises(ConfigError, match="allowed: fgsm, pgd"):
        validate_config(config, SCHEMA)


def test_good_configs_validate_and_get_defaults():
    for name in ("tests/config/tiny", "config/quick", "config/config", "config/reproduce-fmnist"):
        path = REPO / f"{name}.yaml"
        if path.exists():
            config = validate_config(yaml.safe_load(path.read_text()), SCHEMA)
            assert config["cleaning"]["optimizer"] in ("gd", "momentum", "adam")


@pytest.mark.slow
def test_snakemake_refuses_bad_config_without_traceback(tmp_path: Path):
    config = copy.deepcopy(TINY)
    config["cleaning"]["sigma"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(path), check=False)
    assert proc.returncode == 2  # a usage error, as the CLI gives
    assert "cleaning.sigma" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()
