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
