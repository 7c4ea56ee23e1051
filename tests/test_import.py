import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts a fresh interpreter


def test_import_does_not_pull_in_snakemake():
    code = "import sys, cowboy_core; from cowboy_core import Cowboy; print('snakemake' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
