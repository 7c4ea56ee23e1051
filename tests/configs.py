"""Configs as Snakemake builds them: the Snakefile's default, then each ``--configfile`` over
it, merged by Snakemake's own update_config, then checked against the schema."""

import copy
from typing import Any

import yaml
from snakemake.utils import update_config

from cowboy_pipeline.config import load_schema, validate_config

from .conftest import REPO

DEFAULT = REPO / "config" / "quick.yaml"  # the Snakefile's configfile, under every --configfile
SCHEMA = load_schema(REPO / "config" / "schema.yaml")


def merged(paths: list[str]) -> dict[str, Any]:
    """The config Snakemake builds from ``--configfile`` paths relative to the repository."""
    config: dict[str, Any] = {}
    for path in [DEFAULT, *(REPO / p for p in paths)]:
        update_config(config, yaml.safe_load(path.read_text()) or {})
    return config


def checked(*names: str) -> dict[str, Any]:
    """Each config, stacked in order as above, validated and defaulted: ``config/<name>`` for a
    bare name (the configs a user picks), else a path in the repository (an experiment's
    config beside its results in docs/reproduction/, or a test config in tests/config/)."""
    paths = [name if "/" in name else f"config/{name}" for name in names]
    return validate_config(merged(paths), copy.deepcopy(SCHEMA))
