"""Every benchmark has a smoke mode, run here so that it cannot rot (no timings asserted)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_padding_benchmark_smoke_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_padding", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(proc.stdout)
    assert {row["inputs"] for row in rows} == {1, 4} and all(row["sample_steps_per_s"] > 0 for row in rows)
