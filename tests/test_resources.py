"""The GPU rules: one list (cowboy_pipeline.resources.GPU_SCRIPTS), every rule that runs one
of them mapped to a GPU in each GPU profile, and a job's device from what it asked for."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from cowboy_core import devices
from cowboy_core.devices import DeviceError
from cowboy_pipeline.resources import GPU_SCRIPTS, asked_for_gpu, job_device

from .conftest import REPO

# A script trains, attacks or cleans: its work grows with images x steps.
HEAVY_CALL = re.compile(
    r"Execution\.from_env|clean_attack|\btrain_\w+\(|\.clean\(|clean_detailed|run_suite|attack\("
)


def rule_scripts() -> dict[str, str]:
    """Every rule of rules/*.smk and the script it runs (``use rule A as B`` runs A's)."""
    scripts: dict[str, str] = {}
    parents: dict[str, str] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        rule = None
        for line in smk.read_text().splitlines():
            if match := re.match(r"rule (\w+):", line):
                rule = match.group(1)
            elif match := re.match(r"use rule (\w+) as (\w+)", line):
                rule, parents[match.group(2)] = match.group(2), match.group(1)
            elif rule and (match := re.search(r'workflow_scripts/(\w+)\.py"', line)):
                scripts[rule] = match.group(1)
    for child, parent in parents.items():
        scripts.setdefault(child, scripts.get(parent) or scripts[parents[parent]])
    return scripts


GPU_RULES = sorted(rule for rule, script in rule_scripts().items() if script in GPU_SCRIPTS)


def test_the_rules_are_found_and_the_suite_copies_inherit_their_script():
    scripts = rule_scripts()
    assert scripts["robustness_doubled_shard"] == "robustness" and scripts["variant_grid"] == "grid_setting"
    assert {"clean", "card_grid", "deployment", "chaos", "train_adversarial", "robustness_scaled"} <= set(
        GPU_RULES
    )
    assert "tables" not in GPU_RULES and "score" not in GPU_RULES


def test_every_script_that_trains_attacks_or_cleans_is_a_gpu_script():
    heavy = {p.stem for p in (REPO / "workflow_scripts").glob("*.py") if HEAVY_CALL.search(p.read_text())}
    assert heavy == set(GPU_SCRIPTS), (sorted(heavy - GPU_SCRIPTS), sorted(GPU_SCRIPTS - heavy))


@pytest.mark.parametrize("profile", ["slurm", "gpu"])
def test_every_gpu_rule_has_a_gpu_in_the_profile_and_no_other_rule_has_one(profile: str):
    config = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    resources = config["set-resources"]
    missing = [rule for rule in GPU_RULES if int(resources.get(rule, {}).get("gpu", 0)) < 1]
    assert not missing, f"profiles/{profile}: no GPU for {missing}"
    extra = [rule for rule, spec in resources.items() if spec.get("gpu") and rule not in GPU_RULES]
    assert not extra, f"profiles/{profile}: a GPU for rules that do not need one: {extra}"
    unknown = set(resources) - set(rule_scripts())
    assert not unknown, f"profiles/{profile} names rules that do not exist: {sorted(unknown)}"
    if profile == "slurm":
        assert all(
            resources[rule]["runtime"] >= 60 and resources[rule]["slurm_partition"] for rule in GPU_RULES
        )


def test_data_is_staged_by_a_local_rule_and_compute_jobs_never_download():
    data = (REPO / "rules" / "data.smk").read_text()
    assert re.search(r"localrules:\s+stage_data,", data)
    prepare = data.split("rule prepare_train:", 1)[1]
    assert "download" not in prepare
    for script in ("prepare_train", "prepare_eval"):
        assert "download" not in (REPO / "workflow_scripts" / f"{script}.py").read_text()


@pytest.mark.parametrize(
    ("resources", "asked"),
    [({}, False), ({"gpu": 0}, False), ({"gpu": 1}, True), ({"gpus": 2}, True), ({"gres": "gpu:1"}, True),
     ({"gres": None, "mem_mb": 1000}, False)],
)  # fmt: skip
def test_a_job_asks_for_a_gpu_through_its_resources(resources: dict[str, object], asked: bool):
    assert asked_for_gpu(resources) is asked


def test_a_cpu_job_runs_on_the_cpu_whatever_cowboy_device_says(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COWBOY_DEVICE", "cuda")
    assert job_device({"mem_mb": 1000}) == torch.device("cpu")


def test_a_gpu_job_without_usable_cuda_fails_and_never_falls_back(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COWBOY_DEVICE", "cpu")  # an inherited override changes nothing
    monkeypatch.setattr(devices, "cuda_problem", lambda: "this torch (2.x+cpu) is a CPU-only build")
    with pytest.raises(DeviceError, match=r"^device .cuda. was asked for, but this torch .* CPU-only build$"):
        job_device({"gpu": 1})
    monkeypatch.setattr(devices, "cuda_problem", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert job_device({"gpu": 1}) == torch.device("cuda")


def test_cuda_problem_names_the_cause(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in str(devices.cuda_problem())
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    causes = {
        "The NVIDIA driver on your system is too old (found version 12020)": "driver is too old",
        "Found no NVIDIA driver on your system": "no NVIDIA driver on this node",
        "No CUDA GPUs are available": "no CUDA device is visible",
    }
    for message, cause in causes.items():

        def fail(message: str = message) -> None:
            raise RuntimeError(message)

        monkeypatch.setattr(torch.cuda, "init", fail)
        assert cause in str(devices.cuda_problem()), message
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert "no CUDA device is visible" in str(devices.cuda_problem())


def test_unknown_devices_are_refused_in_one_line():
    for name in ("tpu", "cuda:x", "gpu", ""):
        with pytest.raises(DeviceError, match=r"use cpu, cuda, cuda:N or auto$"):
            devices.parse_device(name)


def test_the_profiles_exist_where_the_readme_points():
    assert Path(REPO / "profiles" / "gpu" / "config.yaml").exists()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            "DeviceError(\"device 'cuda' was asked for, but no CUDA device is visible\")",
            "no CUDA device is visible",
        ),
        (
            "torch.OutOfMemoryError('CUDA out of memory.\\nTried to allocate 2 GiB')",
            "lower COWBOY_GPU_MEMORY",
        ),
    ],
)
def test_a_jobs_fixable_errors_end_it_in_one_line_with_exit_2(raised: str, expected: str):
    import subprocess
    import sys

    code = (
        "import torch\nfrom cowboy_core.devices import DeviceError\n"
        "from cowboy_pipeline import runtime\nruntime._errors_in_one_line('clean')\n"
        f"raise {raised}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow_scripts")},
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("cowboy: rule clean: ") and expected in lines[0]
