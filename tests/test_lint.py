import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow  # starts Snakemake


def test_snakemake_lint_is_clean_but_for_the_environment_directive():
    """Rules carry no conda/container directive: the environment is this installed package
    (pyproject.toml / environment.yml), which the scripts import. Every other lint must pass."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", "tests/config/tiny.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    lints = [
        line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip().startswith("* ")
    ]
    others = [lint for lint in lints if "conda environment or container" not in lint]
    assert others == []
    # snakemake --lint exits 1 when it prints any lint; then the only lints are the expected
    # ones. Any other failure (a parse error, a bad config) prints no lint and must not pass.
    assert proc.returncode == 0 or (proc.returncode == 1 and lints), proc.stderr[-2000:]


@pytest.mark.parametrize("config", ["config/quick.yaml", "config/reproduce-fmnist.yaml"])
def test_the_workflow_loads_without_warnings(config: str):
    """A config that publishes nothing (the main command's) and one that publishes: Snakemake
    warns about nothing on loading (a rule named in localrules that the config leaves out of
    the workflow printed a warning on every run of the main command)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--configfile", config],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "localrules directive" not in proc.stdout + proc.stderr
    assert ("publish" in proc.stdout.split()) == ("reproduce" in config)  # the rule is there or not
