"""Shared fixtures: tiny models and tensors (unit tests), and a tiny workflow run (slow tests)."""

from __future__ import annotations

import fcntl
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
    """The tiny config, run to completion once per session: under pytest-xdist, once for all
    the workers. The first worker to ask runs it, holding a lock in the folder the workers
    share; the others wait on the lock and read the same run."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # each worker's base folder sits in the session's one
    workdir, built = shared / "tiny_run", shared / "tiny_run.built"
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not built.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a worker that failed to build it
            workdir.mkdir()
            run_snakemake(workdir, "--cores", "2", "--configfile", str(tiny_config(workdir)))
            built.touch()
    return workdir


def copy_tree(src: Path, dst: Path) -> None:
    # Without Snakemake's locks: under pytest-xdist another worker may be running a dry run
    # or a report in the shared tiny run while this one copies it.
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("locks"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files for pytest-xdist, which hands them to its workers in this order, a whole
    file each (``--dist loadfile``, so that a module's fixtures are built once): first the first
    file that reads the tiny run, so that a worker builds it while the other takes the slow
    files with pipelines of their own, then the tiny run's other readers, then the fast files.
    In one process the order changes nothing but the time."""

    def reads_tiny_run(item: pytest.Item) -> bool:
        return "tiny_run" in getattr(item, "fixturenames", ())

    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    first_reader = next((name for name, tests in files.items() if any(map(reads_tiny_run, tests))), None)

    def rank(name: str) -> int:
        tests = files[name]
        if name == first_reader:
            return 0
        if any(map(reads_tiny_run, tests)):
            return 2
        return 1 if any(test.get_closest_marker("slow") for test in tests) else 3

    items[:] = [item for name in sorted(files, key=rank) for item in files[name]]


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
