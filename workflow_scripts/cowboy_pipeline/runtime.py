"""Entry-point plumbing for the workflow scripts: logs, seeds, threads and the device.

Seeds are set here and only here, at the entry point; library functions take explicit
seeds or generators. A job's device comes from what its rule asked the profile for
(:func:`cowboy_pipeline.resources.job_device`), never from COWBOY_DEVICE, and the errors a
user can fix (no usable CUDA, missing or corrupt data, a checkpoint refused, memory that
cannot fit) end the job with one line and exit code 2, in its log and on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from cowboy_core.data import DataNotFoundError
from cowboy_core.devices import DeviceError
from cowboy_core.io import CheckpointError, load_models, load_tensors, read_metadata, write_text
from cowboy_core.memory import MemoryPlanError
from cowboy_pipeline.resources import job_device

# Errors whose message names the problem and the fix: one line, exit 2, no traceback. A CUDA
# out-of-memory error outside a cleaning's descent (an attack's backward pass) joins them.
ONE_LINE_ERRORS = (DeviceError, DataNotFoundError, MemoryPlanError, CheckpointError, torch.OutOfMemoryError)

LOG = logging.getLogger("cowboy")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def start_job(snakemake: Any, *, seed_offset: int = 0) -> torch.device:
    """Send stderr to the rule's log, seed, set threads; return the device."""
    if snakemake.log:
        os.makedirs(os.path.dirname(str(snakemake.log[0])) or ".", exist_ok=True)
        handle = open(str(snakemake.log[0]), "a", buffering=1)  # noqa: SIM115
        sys.stderr = handle
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    seed = int(getattr(snakemake.params, "seed", 0)) + seed_offset
    seed_everything(seed)
    torch.set_num_threads(max(1, int(snakemake.threads)))
    _errors_in_one_line(str(snakemake.rule))
    _export_job(snakemake)
    device = job_device(snakemake.resources)
    LOG.info(
        "rule %s wildcards=%s device=%s threads=%s seed=%s",
        snakemake.rule,
        dict(snakemake.wildcards.items()),
        device,
        snakemake.threads,
        seed,
    )
    if os.environ.get("COWBOY_DEVICE", "auto") not in ("auto", device.type):
        LOG.info(
            "COWBOY_DEVICE=%s is ignored: a pipeline job runs where its rule asked",
            os.environ["COWBOY_DEVICE"],
        )
    return device


def _export_job(snakemake: Any) -> None:
    """With COWBOY_EXPORT_JOB=DIR, write the job as it started (rule, files, params, wildcards,
    resources) to DIR/{rule}.json, for benchmarks/replay_job.py to run again where Snakemake is
    not installed (benchmarks/gpu_check.sh on a bare GPU node)."""
    folder = os.environ.get("COWBOY_EXPORT_JOB")
    if not folder:
        return

    def named(items: Any) -> dict[str, Any]:
        return {"items": list(items), "names": {k: v for k, v in items.items()}}

    job = {
        "rule": str(snakemake.rule),
        "threads": int(snakemake.threads),
        **{key: named(getattr(snakemake, key)) for key in ("input", "output", "log", "wildcards")},
        "params": named(snakemake.params),
        "resources": {k: v for k, v in snakemake.resources.items() if not str(k).startswith("_")},
    }
    os.makedirs(folder, exist_ok=True)
    write_text(os.path.join(folder, f"{snakemake.rule}.json"), json.dumps(job, indent=2, default=str))


def _errors_in_one_line(rule: str) -> None:
    """From here on, an uncaught :data:`ONE_LINE_ERRORS` ends the job with one line naming the
    rule, in its log and on the job's own stderr, and exit code 2."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        if not isinstance(error, ONE_LINE_ERRORS):
            previous(kind, error, trace)
            return
        message = " ".join(str(error).split())
        if isinstance(error, torch.OutOfMemoryError):
            message = (
                f"CUDA ran out of memory; lower COWBOY_GPU_MEMORY or set COWBOY_BATCH_SIZE ({message[:200]})"
            )
        line = f"cowboy: rule {rule}: {message}"
        for stream in dict.fromkeys([sys.stderr, sys.__stderr__]):
            if stream is not None:
                print(line, file=stream, flush=True)
        logging.shutdown()
        os._exit(2)

    sys.excepthook = hook


def finish_job() -> NoReturn:
    """End a job whose outputs are all written, without the interpreter's teardown.

    Tearing torch and its libraries down at exit takes about half a second, a quarter of the
    smallest job, and the tiny workflows run over a hundred jobs. Every output is already in
    place (each is written atomically), so the job flushes its log and streams and leaves with
    status 0. Only a script's last line calls it: an error before it exits with its own code.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def stable_offset(*parts: str) -> int:
    """A seed offset derived from names (not Python's salted hash), stable across runs."""
    value = 0
    for ch in "/".join(parts):
        value = (value * 131 + ord(ch)) % 1_000_003
    return value


def load_split(path: str, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Images in [-1, 1], labels and source indices of one split of a prepared dataset file."""
    from cowboy_core.data import to_unit_range

    tensors, meta = load_tensors(path)
    if f"{split}_images" not in tensors:
        splits = sorted(k[: -len("_images")] for k in tensors if k.endswith("_images"))
        raise ValueError(f"{path} has no split {split!r}; it holds: {', '.join(splits)}")
    return (
        to_unit_range(tensors[f"{split}_images"]),
        tensors[f"{split}_labels"],
        tensors[f"{split}_index"],
        meta,
    )


def load_checked(path: str, meta: dict[str, Any], device: torch.device, *names: str) -> list[nn.Module]:
    """The named models of a checkpoint, refused unless trained for the image shape in ``meta``
    (a prepared dataset's metadata)."""
    shape = {"channels": meta["channels"], "image_size": meta["image_size"]}
    models = load_models(path, device=device, expect={name: shape for name in names})[0]
    return [models[name] for name in names]


def gan_step(path: str) -> int:
    """The training step a saved GAN reached, from its metadata: the same for a candidate and
    its copy as the chosen GAN (results/models/{dataset}/gan/chosen.safetensors)."""
    return int(read_metadata(path)["step"])


def read_tables(paths: list[str]) -> Any:
    """The Parquet or CSV tables at ``paths`` (by suffix), stacked into one DataFrame."""
    import pandas as pd

    read = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
    return pd.concat([read["." + str(path).rsplit(".", 1)[-1]](path) for path in paths], ignore_index=True)
