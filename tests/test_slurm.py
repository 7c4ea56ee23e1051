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

from .conftest import PIPELINE_ENV, snakemake_cmd, tiny_config

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
    return tiny_config(
        workdir,
        datasets__fashion_mnist__attacks={"fgsm": {"epsilon": 0.3}, "pgd": {"epsilon": 0.3, "steps": 3}},
        sweep__sigmas=[],
    )


# Every kind of job start-up through sbatch (data, both trainings, an attack), without the
# tiny workflow's hundred jobs: those run in tests/test_workflow.py.
TARGETS = [
    "results/attacks/fashion_mnist/test/fgsm.safetensors",
    "results/models/fashion_mnist/gan/step10.safetensors",
]


def _submit(
    workdir: Path, *extra: str, env: dict[str, str] | None = None, targets: list[str] = TARGETS
) -> subprocess.CompletedProcess[str]:
    config = workdir / "config.yaml"
    cmd = snakemake_cmd(
        workdir,
        *targets,
        "--profile",
        str(_profile(workdir)),
        "--configfile",
        str(config),
        *extra,
    )
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**os.environ, **PIPELINE_ENV, **(env or {})},
        timeout=600,
    )


def test_tiny_workflow_runs_through_sbatch(slurm: Path, tmp_path: Path):
    _small_config(tmp_path)
    started = time.time()
    proc = _submit(tmp_path)
    elapsed = time.time() - started
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert all((tmp_path / target).exists() for target in TARGETS)
    # The controller's own records: every job Snakemake submitted ran and completed in SLURM.
    jobs = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True).stdout
    completed = set(re.findall(r"JobId=(\d+) .*JobState=COMPLETED", jobs))
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", proc.stderr + proc.stdout))
    assert len(submitted) == 5  # prepare_train, prepare_eval, train_classifier, attack, train_gan
    assert submitted <= completed, (sorted(submitted), sorted(completed))
    print(f"SLURM: {len(submitted)} jobs through sbatch in {elapsed:.0f} s", file=sys.stderr)


def test_failing_rule_fails_the_run_and_leaves_no_output(slurm: Path, tmp_path: Path):
    _small_config(tmp_path)
    first = ["results/data/fashion_mnist/train.safetensors"]
    proc = _submit(tmp_path, env={"COWBOY_DEVICE": "cuda:7"}, targets=first)  # no GPU here: it fails
    assert proc.returncode != 0
    assert "Error in rule" in proc.stderr + proc.stdout
    assert (
        not list((tmp_path / "results" / "data").rglob("*.safetensors"))
        if (tmp_path / "results" / "data").exists()
        else True
    )
