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


HEADERS = {
    path.name: command
    for path in sorted((REPO / "config").glob("*.yaml"))
    if (command := header_command(path)) is not None
}


def test_the_overlays_with_a_command_are_found():
    assert "variants-encoder-rec-eps0.1-fmnist.yaml" in HEADERS and len(HEADERS) >= 15


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_a_header_command_stacks_configs_that_validate_and_names_targets_they_write(name: str):
    tokens = HEADERS[name]
    configs = [t for t in tokens if t.startswith("config/") and t.endswith(".yaml")]
    assert f"config/{name}" in configs, f"{name}'s header command does not use it"
    config = validate_config(merged(configs), SCHEMA)
    targets = [t for t in tokens if t.startswith("docs/")]
    assert targets, f"{name}'s header command names no target"
    homes = [config.get(section, {}).get("output_dir") for section in ("reproduction", "which_defence")]
    for target in targets:
        assert any(home and Path(target).parent == Path(home) for home in homes), (target, homes)


def test_a_misspelt_key_in_an_overlay_fails_the_stack(tmp_path: Path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("robustness:\n  shard_image: 50\n")
    with pytest.raises(ConfigError, match="shard_image"):
        validate_config(merged(["config/reproduce-fmnist.yaml", str(overlay)]), SCHEMA)
