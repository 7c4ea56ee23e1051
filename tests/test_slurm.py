"""The workflow through a real single-node SLURM (slurmctld + slurmd + munge on localhost).

CI installs Debian's slurmctld, slurmd, slurm-client and munge (see .ci/run); the daemons
are started here as root and stopped by PID at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import os
import re
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
NodeName=localhost CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


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
    etc = Path("/etc/slurm/slurm.conf")
    etc.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if etc.exists() or etc.is_symlink():
        backup = etc.with_suffix(".conf.cowboy-backup")
        etc.rename(backup)
    etc.symlink_to(conf)
    pids: list[int] = []
    try:
        _start_daemons(conf, pids)
        yield root
    finally:
        _stop(pids)
        etc.unlink(missing_ok=True)
        if backup is not None:
            backup.rename(etc)


def _profile(workdir: Path) -> Path:
    profile = workdir / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "executor": "slurm",
                "jobs": 4,
                "latency-wait": 10,
                "slurm-status-command": "squeue",
                "slurm-init-seconds-before-status-checks": 5,
                "seconds-between-status-checks": 2,
                "slurm-no-account": True,
                "default-resources": {
                    "slurm_partition": "debug",
                    "runtime": 10,
                    "mem_mb": 1500,
                    "cpus_per_task": 1,
                },
            }
        )
    )
    return profile


def _small_config(workdir: Path) -> Path:
    """The tiny config, plus MNIST, whose files are not under the data root: its data job is
    the one that fails."""
    fashion = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())["datasets"]["fashion_mnist"]
    attacks = {"fgsm": {"epsilon": 0.3}, "pgd": {"epsilon": 0.3, "steps": 3}}
    return tiny_config(
        workdir,
        datasets={"fashion_mnist": {**fashion, "attacks": attacks}, "mnist": {**fashion, "attacks": attacks}},
        sweep__sigmas=[],
    )


# Every kind of job start-up through sbatch (data, both trainings, an attack), without the
# tiny workflow's hundred jobs (those run in tests/test_workflow.py), and one job that fails
# inside SLURM, all in one run with --keep-going: the plugin's polling interval grows by 10 s
# on every check that finds nothing finished, and each run pays it again (a second run for
# the failure cost 47 s).
TARGETS = [
    "results/attacks/fashion_mnist/test/fgsm.safetensors",
    "results/models/fashion_mnist/gan/step10.safetensors",
]
FAILING = "results/data/mnist/train.safetensors"  # MNIST's files are missing: it exits 2


@pytest.fixture(scope="module")
def sbatch_run(
    slurm: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workdir = tmp_path_factory.mktemp("sbatch")
    _small_config(workdir)
    config = workdir / "config.yaml"
    cmd = snakemake_cmd(
        workdir, *TARGETS, FAILING, "--keep-going", "--profile", str(_profile(workdir)),
        "--configfile", str(config),
    )  # fmt: skip
    started = time.time()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=workdir, env={**os.environ, **PIPELINE_ENV}, timeout=600
    )
    print(f"SLURM: one run through sbatch in {time.time() - started:.0f} s", file=sys.stderr)
    return workdir, proc


def test_tiny_workflow_runs_through_sbatch(sbatch_run: tuple[Path, subprocess.CompletedProcess[str]]):
    workdir, proc = sbatch_run
    assert all((workdir / target).exists() for target in TARGETS), proc.stderr[-5000:]
    # The controller's own records: every job Snakemake submitted for Fashion-MNIST ran and
    # completed in SLURM; MNIST's data job is the one that did not.
    jobs = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True).stdout
    completed = set(re.findall(r"JobId=(\d+) .*JobState=COMPLETED", jobs))
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", proc.stderr + proc.stdout))
    assert len(submitted) == 6  # prepare_train, prepare_eval, train_classifier, attack, train_gan; MNIST's
    assert len(submitted - completed) == 1, (sorted(submitted), sorted(completed))


def test_failing_rule_fails_the_run_and_leaves_no_output(
    sbatch_run: tuple[Path, subprocess.CompletedProcess[str]],
):
    workdir, proc = sbatch_run
    assert proc.returncode != 0
    assert "Error in rule prepare_train" in proc.stderr + proc.stdout
    assert "mnist" in (proc.stderr + proc.stdout).split("Error in rule prepare_train", 1)[1][:800]
    assert not (workdir / FAILING).exists()
