"""A workflow job ends with cowboy_pipeline.runtime.finish_job, which skips the interpreter's
teardown of torch (about half a second a job) once every output is written."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

SCRIPTS = sorted((REPO / "workflow_scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_job_script_ends_with_finish_job_and_calls_it_nowhere_else(script: Path):
    tree = ast.parse(script.read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "finish_job"
    ]
    last = tree.body[-1]
    assert isinstance(last, ast.Expr) and calls == [last.value], (
        f"{script.name}: finish_job() must be its last line"
    )


@pytest.mark.slow  # starts a fresh interpreter with torch
def test_finish_job_flushes_the_log_and_the_streams_and_exits_zero(tmp_path: Path):
    log = tmp_path / "job.log"
    code = (
        "import logging, sys\n"
        "from cowboy_pipeline.runtime import LOG, finish_job\n"
        f"sys.stderr = open({str(log)!r}, 'a')\n"  # as start_job sends stderr to the rule's log
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True)\n"
        "LOG.info('outputs written')\n"
        "print('no newline yet', end='')\n"
        "finish_job()\n"
        "print('never reached')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "workflow_scripts"
    )
    assert done.returncode == 0 and done.stdout == "no newline yet"
    assert log.read_text() == "INFO:cowboy:outputs written\n"
