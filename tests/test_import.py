import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts a fresh interpreter


def test_import_does_not_pull_in_snakemake():
    code = "import sys, cowboy_core; from cowboy_core import Cowboy; print('snakemake' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_pipeline_jobs_start_up_imports_no_scipy_stats_or_plotting():
    """Every Snakemake job starts an interpreter that imports the library and the runtime:
    scipy.stats (about a second) and matplotlib are imported where they are used, not there."""
    code = (
        "import sys, cowboy_core, cowboy_pipeline.runtime, cowboy_core.attacks, cowboy_core.training;"
        "print(sorted(m for m in ('scipy.stats', 'matplotlib', 'snakemake') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="workflow_scripts"
    )
    assert out.stdout.strip() == "[]"


def test_reading_the_workflow_imports_no_torch(tmp_path):
    """Every Snakemake start parses the Snakefile: a dry run, a report, each SLURM job. It reads
    the axes' names from cowboy_core.choices, so it must not pay torch's import (about 1.7 CPU
    seconds) on top of its own."""
    from .conftest import PIPELINE_ENV, snakemake_cmd, tiny_config

    config = tiny_config(tmp_path)
    cmd = snakemake_cmd(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    cmd.insert(1, "-X")
    cmd.insert(2, "importtime")
    env = {**os.environ, **PIPELINE_ENV}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    timed = [line for line in out.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in timed}
    assert "cowboy_core.choices" in imported  # the measurement sees the workflow's own imports
    assert not {"torch", "scipy", "matplotlib"} & imported
