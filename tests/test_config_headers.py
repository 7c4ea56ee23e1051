"""Every config's header command: the overlays it stacks validate, and its targets land where
the stacked config writes. An overlay is only read on a run hours long; a typo in one would
otherwise surface there, after the runs it stacks on."""

import shlex
from pathlib import Path

import pytest

from cowboy_pipeline.config import ConfigError, validate_config

from .configs import SCHEMA, merged
from .conftest import REPO


def header_command(path: Path) -> list[str] | None:
    """The `snakemake ...` command in a config's leading comment, its continued lines joined."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    starts = [i for i, line in enumerate(header) if line.startswith("snakemake ")]
    if not starts:
        return None
    command, i = [], starts[0]
    while True:
        command.append(header[i].removesuffix("\\").strip())
        if not header[i].endswith("\\"):
            return shlex.split(" ".join(command))
        i += 1


# The configs a user picks (config/) and each experiment's, beside its results (docs/reproduction/).
CONFIG_FILES = [
    *sorted((REPO / "config").glob("*.yaml")),
    *sorted((REPO / "docs" / "reproduction").rglob("*.yaml")),
]
HEADERS = {
    str(path.relative_to(REPO)): command
    for path in CONFIG_FILES
    if (command := header_command(path)) is not None
}


def test_the_overlays_with_a_command_are_found():
    assert "docs/reproduction/variants/encoder-rec-eps0.1/config.yaml" in HEADERS and len(HEADERS) >= 12
    assert "config/reproduce-mnist.yaml" in HEADERS


def test_every_experiment_config_lives_beside_its_results_and_config_holds_only_what_users_pick():
    picks = {"config.yaml", "quick.yaml", "reproduce-fmnist.yaml", "reproduce-mnist.yaml", "full-fmnist.yaml"}
    assert {p.name for p in (REPO / "config").glob("*.yaml")} == {*picks, "schema.yaml"}
    for path in (REPO / "docs" / "reproduction").rglob("*.yaml"):
        assert header_command(path) is not None, f"{path} has no command in its header"


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_a_header_command_stacks_configs_that_validate_and_names_targets_they_write(name: str):
    tokens = HEADERS[name]
    configs = [t for t in tokens if t.endswith(".yaml")]
    assert name in configs, f"{name}'s header command does not use it"
    config = validate_config(merged(configs), SCHEMA)
    targets = [t for t in tokens if t.startswith(("docs/", "results/")) and not t.endswith(".yaml")]
    assert targets, f"{name}'s header command names no target"
    targets = [t for t in targets if t.startswith("docs/")]  # results/ is copied by hand, as the header says
    homes = [config.get(section, {}).get("output_dir") for section in ("reproduction", "which_defence")]
    for target in targets:
        assert any(home and Path(target).parent == Path(home) for home in homes), (target, homes)


def test_a_misspelt_key_in_an_overlay_fails_the_stack(tmp_path: Path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("robustness:\n  shard_image: 50\n")
    with pytest.raises(ConfigError, match="shard_image"):
        validate_config(merged(["config/reproduce-fmnist.yaml", str(overlay)]), SCHEMA)
