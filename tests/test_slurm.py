"""The workflow through a real single-node SLURM (slurmctld + slurmd + munge on localhost),
submitted with the project's own profiles/slurm (its partitions and sizes fitted to this node).

The node has a CPU partition and a GPU partition whose one GPU is a generic resource backed by
no GPU (/dev/null): SLURM schedules a GPU job onto it, and the job then finds no CUDA. A GPU-marked
job must fail loudly there (one line, exit 2), never run on the CPU; a CPU-marked job must run
on the CPU although the submitting shell says COWBOY_DEVICE=cuda.

CI installs Debian's slurmctld, slurmd, slurm-client and munge (see .ci/run); the daemons
are started here as root and stopped by PID at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import PIPELINE_ENV, REPO, snakemake_cmd, tiny_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("slurmctld") is None or os.geteuid() != 0,
        reason="needs root and Debian's slurmctld/slurmd/munge (installed by .ci/run)",
    ),
]

SLURM_CONF = """\
ClusterName=cowboy-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
DefMemPerCPU=2000
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=localhost CPUs={cpus} RealMemory={memory} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
"""
# A GPU that SLURM counts and schedules but that is no GPU: Debian's SLURM (22.05) drops a GPU
# declared without a device file from the node ("Removing file-less GPU"), so /dev/null backs
# it. SLURM sets the job's CUDA_VISIBLE_DEVICES for it; CUDA then finds no driver.
GRES_CONF = "NodeName=localhost Name=gpu Count=1 File=/dev/null\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _write_conf(root: Path) -> Path:
    (root / "state").mkdir()
    (root / "spool").mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root,
            state=root / "state",
            spool=root / "spool",
            ctld_port=_free_port(),
            d_port=_free_port(),
            cpus=os.cpu_count() or 2,
            memory=8000,
        )
    )
    (root / "gres.conf").write_text(GRES_CONF)
    return conf


def _start_daemons(conf: Path, pids: list[int]) -> None:
    """munged, slurmctld and one slurmd, each PID appended as soon as it runs."""
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o755)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    pids.append(subprocess.Popen(["munged", "--foreground", "--force"], **quiet).pid)
    _wait(lambda: Path("/run/munge/munge.socket.2").exists(), 20, "munged")
    pids.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], **quiet).pid)
    pids.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], **quiet).pid)

    def node_idle() -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        return out.returncode == 0 and "idle" in out.stdout

    _wait(node_idle, 60, "the SLURM node to become idle")


def _stop(pids: list[int]) -> None:
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    time.sleep(1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("slurm")
    conf = _write_conf(root)
    # The plugin's job step drops SLURM_CONF before its inner srun, so the config must sit
    # where SLURM looks by default.
    links = {Path("/etc/slurm/slurm.conf"): conf, Path("/etc/slurm/gres.conf"): root / "gres.conf"}
    backups: dict[Path, Path] = {}
    for etc, target in links.items():
        etc.parent.mkdir(parents=True, exist_ok=True)
        if etc.exists() or etc.is_symlink():
            backups[etc] = etc.with_suffix(".conf.cowboy-backup")
            etc.rename(backups[etc])
        etc.symlink_to(target)
    pids: list[int] = []
    try:
        _start_daemons(conf, pids)
        yield root
    finally:
        _stop(pids)
        for etc in links:
            etc.unlink(missing_ok=True)
        for etc, backup in backups.items():
            backup.rename(etc)


def _profile(workdir: Path) -> Path:
    """profiles/slurm as a user adapts it to this node: no account, the node's memory and CPUs,
    quick status checks; every rule's partition and GPU stay the project's."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile.pop("slurm_account", None)
    profile["default-resources"].pop("slurm_account")
    profile["default-resources"].update({"mem_mb": 1500, "cpus_per_task": 1, "runtime": 10})
    for resources in profile["set-resources"].values():
        resources.update({"mem_mb": 1500, "runtime": 10})
        if "cpus_per_gpu" in resources:
            resources["cpus_per_gpu"] = 1
    profile.pop("set-threads", None)
    profile.update(
        {
            "jobs": 4,
            "latency-wait": 10,
            "restart-times": 0,
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 5,
            "seconds-between-status-checks": 2,
            "slurm-no-account": True,
        }
    )
    folder = workdir / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


# One run, with --keep-going: the plugin's polling interval grows by 10 s on every check that
# finds nothing finished, and each run pays it again. Data is staged on the submit host (a
# local rule); the two data jobs go to the CPU partition, the classifier's training to the GPU.
CPU_TARGETS = ["results/data/fashion_mnist/train.safetensors", "results/data/fashion_mnist/eval.safetensors"]
GPU_TARGET = "results/models/fashion_mnist/classifier.safetensors"


@pytest.fixture(scope="module")
def sbatch_run(
    slurm: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workdir = tmp_path_factory.mktemp("sbatch")
    config = tiny_config(workdir, sweep__sigmas=[])
    cmd = snakemake_cmd(
        workdir, *CPU_TARGETS, GPU_TARGET, "--keep-going", "--profile", str(_profile(workdir)),
        "--configfile", str(config),
    )  # fmt: skip
    started = time.time()
    env = {**os.environ, **PIPELINE_ENV, "COWBOY_DEVICE": "cuda"}  # as the old README advised
    env.pop("COWBOY_BATCH_SIZE", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=600)
    print(f"SLURM: one run through sbatch in {time.time() - started:.0f} s", file=sys.stderr)
    return workdir, proc


def test_cpu_jobs_run_on_the_cpu_partition_whatever_cowboy_device_says(
    sbatch_run: tuple[Path, subprocess.CompletedProcess[str]],
):
    workdir, proc = sbatch_run
    assert all((workdir / target).exists() for target in CPU_TARGETS), proc.stderr[-5000:]
    for rule in ("prepare_train", "prepare_eval"):
        log = (workdir / f"results/logs/{rule}/fashion_mnist.log").read_text()
        assert "device=cpu" in log and "COWBOY_DEVICE=cuda is ignored" in log, log
    jobs = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True).stdout
    cpu_jobs = [line for line in jobs.splitlines() if "Partition=cpu" in line]
    assert len(cpu_jobs) == 2 and all("JobState=COMPLETED" in line for line in cpu_jobs), jobs


def test_a_gpu_job_is_scheduled_with_its_gpu_and_fails_loudly_without_cuda(
    sbatch_run: tuple[Path, subprocess.CompletedProcess[str]],
):
    workdir, proc = sbatch_run
    assert proc.returncode != 0 and not (workdir / GPU_TARGET).exists()
    jobs = subprocess.run(["scontrol", "show", "jobs", "-d", "-o"], capture_output=True, text=True).stdout
    gpu_jobs = [line for line in jobs.splitlines() if "Partition=gpu" in line]
    assert len(gpu_jobs) == 1, jobs
    # SLURM allocated the node's GPU to the job, and the job failed.
    assert "JOB_GRES=gpu:1" in gpu_jobs[0] and "JobState=FAILED" in gpu_jobs[0], gpu_jobs[0]
    log = (workdir / "results/logs/train_classifier/fashion_mnist.log").read_text()
    assert log.count("\n") == 1 and log.startswith(
        "cowboy: rule train_classifier: device 'cuda' was asked for, but"
    )
    assert "Traceback" not in log and "device=cpu" not in log
    job_log = next((workdir / ".snakemake/slurm_logs/rule_train_classifier").rglob("*.log")).read_text()
    assert "train_classifier.py' returned non-zero exit status 2" in job_log  # the script's own exit 2
    failure = log.strip()
    print(f"SLURM GPU job: {gpu_jobs[0][:400]}\n{failure}", file=sys.stderr)
