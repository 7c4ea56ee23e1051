"""Run a workflow script again from the job that COWBOY_EXPORT_JOB exported, without Snakemake.

benchmarks/gpu_check.sh runs one GPU-marked job of the tiny pipeline this way on a bare GPU
node, where Snakemake's dependencies do not fit the wheelhouse that can be carried there: the
same script, the same inputs and params, and a GPU asked for in its resources (or none, on the
CPU: the smoke mode). The script ends the process itself (runtime.finish_job), with its code.

    python -m benchmarks.replay_job JOB_DIR/train_classifier.json workflow_scripts/train_classifier.py [--gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any


class Named(list[Any]):
    """Snakemake's named lists, as scripts read them: by position, by name and by items()."""

    def __init__(self, items: list[Any], names: dict[str, Any]) -> None:
        super().__init__(items)
        self._names = names

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None

    def items(self) -> Any:
        return self._names.items()

    def get(self, name: str, default: Any = None) -> Any:
        return self._names.get(name, default)


def job_object(job: dict[str, Any], *, gpu: bool) -> Any:
    """The ``snakemake`` object a script reads, from an exported job; ``gpu`` sets what the job
    asks for, as a profile would."""
    resources = {k: v for k, v in job["resources"].items() if k not in ("gpu", "gpus", "gres")}
    resources |= {"gpu": 1} if gpu else {}
    named = ("input", "output", "log", "wildcards", "params")
    fields = {key: Named(job[key]["items"], job[key]["names"]) for key in named}
    resources_named = Named(list(resources.values()), resources)
    return argparse.Namespace(rule=job["rule"], threads=job["threads"], resources=resources_named, **fields)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", type=Path, help="the exported job ({rule}.json), in the folder of its inputs")
    parser.add_argument("script", type=Path, help="the rule's script")
    parser.add_argument(
        "--gpu", action="store_true", help="the job asks for a GPU (it then runs on CUDA or fails)"
    )
    args = parser.parse_args()
    job = json.loads(args.job.read_text())
    script = args.script.resolve()
    sys.path.insert(0, str(script.parent))  # the pipeline's package, as Snakemake's scripts see it
    os.chdir(args.job.parent)  # the job's paths are relative to its working directory
    runpy.run_path(
        str(script), init_globals={"snakemake": job_object(job, gpu=args.gpu)}, run_name="__main__"
    )


if __name__ == "__main__":
    main()
