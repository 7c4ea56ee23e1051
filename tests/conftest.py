"""Shared fixtures: tiny models and tensors (unit tests), and a tiny workflow run (slow tests)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from cowboy_core import execution
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator, freeze

REPO = Path(__file__).resolve().parents[1]

# Every cleaning opens a tqdm bar (disabled unless asked), and tqdm guards its bars with a
# multiprocessing lock that forked processes share. mutmut forks a child per mutant, two at a
# time, and kills one that runs out of time wherever it is: a child killed inside tqdm's lock
# leaves it held for good, and every later child waits on it until it too "times out" (the
# first run of 2026-12-06 stalled that way, halfway). A lock of each process's own, and no
# monitor thread to hold it across a fork, keep the children apart.
tqdm.set_lock(threading.RLock())
tqdm.monitor_interval = 0


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests clean a handful of rows: chunks of 8 rows instead of the CPU default of 64
    padded ones keep them fast. A test of the default asks for it explicitly; pipeline runs
    and other subprocesses keep the real default."""
    monkeypatch.setitem(execution.DEFAULT_BATCH, "cpu", 8)


@pytest.fixture
def tiny_gan() -> tuple[DCGANGenerator, DCGANDiscriminator]:
    torch.manual_seed(0)
    generator = DCGANGenerator(channels=1, image_size=28, latent_dim=8, width=8)
    discriminator = DCGANDiscriminator(channels=1, image_size=28, width=8)
    return freeze(generator), freeze(discriminator)  # type: ignore[return-value]


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


# The tiny pipelines clean a handful of images: chunks of 16 rows instead of the CPU default of
# 64 padded ones make their robustness jobs three times faster (a machine setting, as a
# profile would set it; every run of a test uses the same, so its results stay comparable).
PIPELINE_ENV = {"COWBOY_DEVICE": "cpu", "COWBOY_BATCH_SIZE": "16"}


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """The command line that runs the repository's workflow in ``workdir``."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow with ``workdir`` as its working directory."""
    cmd = snakemake_cmd(workdir, *args)
    env = {**os.environ, **PIPELINE_ENV, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def tiny_config(workdir: Path, **overrides: object) -> Path:
    """Copy tests/config/tiny.yaml into ``workdir``, applying top-level YAML overrides."""
    import yaml

    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    for dotted, value in overrides.items():
        node = config
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    path = workdir / "config.yaml"
    # The file's key order, as a person writes it: tests that rewrite it sorted check that
    # key order alone reruns nothing.
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config, run to completion once per session."""
    workdir = tmp_path_factory.mktemp("tiny")
    config = tiny_config(workdir)
    run_snakemake(workdir, "--cores", "2", "--configfile", str(config))
    return workdir


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    block = dry_run_stdout.split("Job stats:", 1)[-1]
    for line in block.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def refusal(error: type[Exception], call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """The message of the ``error`` that ``call(*args, **kwargs)`` raises (the test fails if none)."""
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def tamper(path, edit):
    """Rewrite the card's JSON header as a person with a text editor would."""
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    header = json.loads(meta["defense"])
    edit(header)
    meta["defense"] = json.dumps(header)  # json writes NaN as NaN, as Python's own reader accepts
    out = path.with_name("tampered.safetensors")
    save_file(tensors, str(out), metadata=meta)
    return out


def saved_card(folder: Path, generator, discriminator, x: torch.Tensor, steps: int):  # type: ignore[no-untyped-def]
    """A card whose threshold is the median D-score of ``x``: it flags some inputs, not all."""
    from cowboy_core import Cowboy
    from cowboy_core.settings import Settings

    defense = Cowboy(generator, discriminator, Settings(steps=steps))
    defense.threshold = float(defense.score(x).median())
    defense.save(folder / "card.safetensors")
    return folder / "card.safetensors", defense
