"""Kill and resume: a SIGKILLed GAN segment or cleaning job is redone, never trusted."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from cowboy_core.io import load_tensors

from .conftest import PIPELINE_ENV, copy_tree, job_counts, run_snakemake, snakemake_cmd, tiny_config

pytestmark = pytest.mark.slow

GAN_STEPS = 60
FINAL = f"results/models/fashion_mnist/gan/step{GAN_STEPS}.safetensors"
# Long enough that the kill, 2 s after the job's log appears, lands mid-descent.
CLEAN_STEPS = 200
CLEANED = f"fashion_mnist/test/fgsm/cowboy_sigma1_run{CLEAN_STEPS}_ckpt20"


def _config(workdir: Path) -> Path:
    # The discriminator study is off: its longer GAN must outlast these 60 steps, and this
    # test is about the main GAN's chain.
    return tiny_config(
        workdir,
        datasets__fashion_mnist__gan={"steps": GAN_STEPS, "batch_size": 32, "checkpoints": [10]},
        discriminator_study__datasets=[],
    )


def _start(workdir: Path, target: str) -> subprocess.Popen[str]:
    cmd = snakemake_cmd(workdir, target, "--cores", "2", "--configfile", str(workdir / "config.yaml"))
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **PIPELINE_ENV},
    )


def _kill_when(proc: subprocess.Popen[str], started: Path, timeout: float = 300) -> None:
    """SIGKILL the whole snakemake process group once ``started`` exists and has grown."""
    deadline = time.time() + timeout
    while time.time() < deadline and not (started.exists() and started.stat().st_size > 0):
        if proc.poll() is not None:
            raise AssertionError("the workflow ended before it could be killed")
        time.sleep(0.2)
    time.sleep(2.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_gan_segment_resumes_from_last_checkpoint(tmp_path: Path):
    straight = tmp_path / "straight"
    killed = tmp_path / "killed"
    for workdir in (straight, killed):
        workdir.mkdir()
        _config(workdir)
    run_snakemake(straight, FINAL, "--cores", "2", "--configfile", str(straight / "config.yaml"))

    proc = _start(killed, FINAL)
    _kill_when(proc, killed / f"results/logs/train_gan/fashion_mnist/step{GAN_STEPS}.log")
    assert (killed / "results/models/fashion_mnist/gan/step10.state.pt").exists()
    assert not (killed / FINAL).exists()

    # After a SIGKILL, Snakemake's directory lock stays; a user unlocks once, as Snakemake says.
    run_snakemake(killed, "--unlock", "--configfile", str(killed / "config.yaml"))
    dry = run_snakemake(killed, FINAL, "-n", "--cores", "2", "--configfile", str(killed / "config.yaml"))
    assert job_counts(dry.stdout) == {"train_gan": 1}  # only the killed segment is redone
    run_snakemake(killed, FINAL, "--cores", "2", "--configfile", str(killed / "config.yaml"))
    a, _ = load_tensors(straight / FINAL)
    b, _ = load_tensors(killed / FINAL)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_killed_cleaning_leaves_no_partial_output(tiny_run: Path, tmp_path: Path):
    # The tiny run's attack and GAN, reused: a longer cleaning changes only cleaning jobs.
    copy_tree(tiny_run, tmp_path / "run")
    tmp_path = tmp_path / "run"
    config = tiny_config(
        tmp_path, cleaning__steps=CLEAN_STEPS, cleaning__record_steps=[3], paper_steps__datasets=[]
    )
    target = f"results/clean/{CLEANED}.parquet"
    dry = run_snakemake(tmp_path, target, "-n", "--cores", "2", "--configfile", str(config))
    assert job_counts(dry.stdout) == {"clean": 1}  # nothing upstream reruns
    proc = _start(tmp_path, target)
    _kill_when(proc, tmp_path / f"results/logs/clean/{CLEANED}.log")
    run_snakemake(tmp_path, "--unlock", "--configfile", str(config))
    out_dir = (tmp_path / target).parent
    assert not (tmp_path / target).exists()
    assert not list(out_dir.glob(f"*run{CLEAN_STEPS}*"))  # neither the output nor a partial one
    run_snakemake(tmp_path, target, "--cores", "2", "--configfile", str(config))
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / target)) == 2 * 48
    assert not list(out_dir.glob(".*.tmp"))
