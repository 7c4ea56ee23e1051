"""tests/mutation_summary.py: the per-module table, the explained survivors, and the refusal
to overwrite the committed report with a run in which no mutant ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

SCRIPT = REPO / "tests/mutation_summary.py"


def _summarise(tmp_path: Path, results: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "results.txt").write_text(results)
    (tmp_path / "docs/quality").mkdir(parents=True)
    (tmp_path / "docs/quality/equivalent_mutants.md").write_text("- `cowboy_core.a.x_f__mutmut_2`\n")
    # A stand-in for `mutmut show NAME` (mutmut is not among the test extras).
    fake = tmp_path / "bin/mutmut"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "diff of $2"\n')
    fake.chmod(0o755)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "results.txt", "mutation.md", "survivors.txt"],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )


def test_the_table_counts_each_module_and_lists_the_unexplained_survivors(tmp_path: Path):
    results = (
        "    cowboy_core.a.x_f__mutmut_1: killed\n"
        "    cowboy_core.a.x_f__mutmut_2: survived\n"
        "    cowboy_core.a.x_f__mutmut_3: survived\n"
        "    cowboy_core.b.x_g__mutmut_1: not checked\n"
    )
    done = _summarise(tmp_path, results)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "mutation.md").read_text()
    assert "| cowboy_core.a | 3 | 1 | 2 | 1 | 0 | 0 | 0 | 33.3 |" in table
    assert "| cowboy_core.b | 0 | 0 | 0 | 0 | 0 | 0 | 1 | 0.0 |" in table
    assert table.rstrip().endswith("Survivors not explained there: 1\n- `cowboy_core.a.x_f__mutmut_3`")
    diffs = (tmp_path / "survivors.txt").read_text()
    assert diffs == "diff of cowboy_core.a.x_f__mutmut_2\n\ndiff of cowboy_core.a.x_f__mutmut_3\n"


def test_a_run_in_which_no_mutant_ran_leaves_the_report_alone(tmp_path: Path):
    (tmp_path / "mutation.md").write_text("the committed report")
    results = "    cowboy_core.a.x_f__mutmut_1: not checked\n    cowboy_core.a.x_f__mutmut_2: not checked\n"
    done = _summarise(tmp_path, results)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "results.txt: no mutant ran; fix the run (see its log) and rerun tests/mutation.sh"
    )
    assert (tmp_path / "mutation.md").read_text() == "the committed report"
