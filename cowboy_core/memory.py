"""How many rows a chunk holds on a GPU, planned before the work starts.

Every chunk runs at exactly its planned row count (padded), so that a row's bits never depend
on its neighbours. On CUDA the count comes from the device's memory budget and what one row
costs for the job:

* cleaning: one descent step's autograd graph through G and D (freed every step);
* the unrolled attack: every step's graph kept, with its backward graph (``create_graph``);
* training: a training step's graph through the unrewritten models.

The cost is counted from the activations of one forward pass of the models being run (one row,
no gradients), times how many bytes autograd saves per activation, measured on CPU with
autograd's saved-tensor hooks (``tests/test_memory.py`` holds the estimate within 20% of that
measurement at widths 32 and 64). The same models, settings and budget always give the same
rows, so results stay bit-identical from run to run. ``COWBOY_GPU_MEMORY`` (bytes, or with a
K, M, G or T suffix) sets the budget; otherwise it is the device's total memory.
"""

from __future__ import annotations

import enum
import os
import re

import torch
from torch import nn

# Bytes autograd saves per activation byte of G and D (weights aside), measured with saved-tensor
# hooks on the DCGANs at widths 32 and 64 (28x28x1, prepared as execution.prepare rewrites them):
# a cleaning step saves 0.48-0.49 of its activations; an unrolled descent of m steps saves
# 0.49 + 0.79 m (each step keeps its forward and its backward graph): 1.26-1.28 at m = 1,
# 19.9-20.2 at m = 25.
SAVED_PER_ACTIVATION_STEP = 0.49
SAVED_PER_ACTIVATION_UNROLLED = 0.79
# A GAN training step keeps the unfused batch norms and runs D on a real and a fake row per
# row of the batch: its discriminator update saves 1.18 of the activations of G then D (in
# eval mode, one row) at widths 32 and 64, its generator update 0.77, one after the other.
SAVED_PER_ACTIVATION_TRAINING = 1.18
# The share of the budget chunks may fill: the rest holds the weights, the gradients being
# formed in the backward pass (as large as the largest saved layer) and the allocator's slack.
BUDGET_SHARE = 0.5
# Rows are a multiple of this (a GPU's kernels like round batches) and at most MAX_ROWS (past a
# few thousand rows a DCGAN step is compute-bound, and a lone input pays for every padded row).
ROW_MULTIPLE = 64
MAX_ROWS = 4096


class Job(enum.Enum):
    """What a chunk's rows are used for, which sets what one row costs."""

    CLEANING = "cleaning"
    UNROLLED = "unrolled"
    TRAINING = "training"


class MemoryPlanError(ValueError):
    """The budget cannot hold even one chunk, or it is written wrong; one line with the fix."""


def parse_bytes(text: str) -> int:
    """'12000000000', '12G', '512M' -> bytes (powers of 1,024 for the suffixes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if match is None:
        raise MemoryPlanError(f"COWBOY_GPU_MEMORY={text!r} is not a size; write bytes or e.g. 40G")
    value, suffix = float(match.group(1)), match.group(2)
    return int(value * 1024 ** " KMGT".index(suffix or " "))


def memory_budget(device: torch.device) -> int:
    """Bytes the chunks of one job may plan with: ``COWBOY_GPU_MEMORY``, or the device's total."""
    setting = os.environ.get("COWBOY_GPU_MEMORY")
    if setting:
        return parse_bytes(setting)
    return int(torch.cuda.get_device_properties(device).total_memory)


def activations_per_row(models: list[nn.Module], first_input: torch.Tensor) -> int:
    """Elements every leaf module of ``models`` outputs for one row, the models chained in order
    (G then D), counted on one forward pass without gradients."""
    total = 0

    def count(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() if isinstance(output, torch.Tensor) else 0

    hooks = [
        module.register_forward_hook(count)
        for model in models
        for module in model.modules()
        if not list(module.children())
    ]
    try:
        with torch.no_grad():
            value = first_input
            for model in models:
                value = model(value)
    finally:
        for hook in hooks:
            hook.remove()
    return total + first_input.numel()


def row_bytes(activations: int, job: Job, *, steps: int = 1, element_bytes: int = 4) -> int:
    """Bytes one row costs for ``job``, from its activations per forward pass."""
    per = activations * element_bytes
    if job is Job.CLEANING:
        return int(SAVED_PER_ACTIVATION_STEP * per)
    if job is Job.UNROLLED:
        return int((SAVED_PER_ACTIVATION_STEP + SAVED_PER_ACTIVATION_UNROLLED * steps) * per)
    return int(SAVED_PER_ACTIVATION_TRAINING * per)


def plan_rows(budget: int, cost: int, *, minimum: int = 1, lower: str = "the steps or restarts") -> int:
    """Rows per chunk: as many as half the budget holds at ``cost`` bytes a row, a multiple of
    :data:`ROW_MULTIPLE` up to :data:`MAX_ROWS`; refused when fewer than ``minimum`` fit."""
    fits = int(budget * BUDGET_SHARE) // max(cost, 1)
    rows = min(MAX_ROWS, fits // ROW_MULTIPLE * ROW_MULTIPLE if fits >= ROW_MULTIPLE else fits)
    if rows < minimum:
        raise MemoryPlanError(
            f"a chunk needs {minimum} row(s) at {cost / 1e6:.1f} MB each, but the memory budget is "
            f"{budget / 1e9:.2f} GB; raise COWBOY_GPU_MEMORY, or lower {lower}"
        )
    return rows


def check_batch_fits(models: list[nn.Module], first_input: torch.Tensor, batch: int, job: Job) -> None:
    """On CUDA, refuse before any work a batch whose ``job`` (training: batch rows fixed by the
    experiment) cannot fit the memory budget; nothing to plan on the CPU."""
    device = first_input.device
    if device.type != "cuda":
        return
    modes = [model.training for model in models]
    for model in models:
        model.eval()  # one row through batch norm
    try:
        cost = row_bytes(
            activations_per_row(models, first_input), job, element_bytes=first_input.element_size()
        )
    finally:
        for model, mode in zip(models, modes, strict=True):
            model.train(mode)
    plan_rows(memory_budget(device), cost, minimum=batch, lower="the batch size")


def out_of_memory_message(rows: int, budget: int | None, err: BaseException) -> str:
    """One line for a CUDA out-of-memory error: the rows, the budget and the setting to lower."""
    planned = f"{budget / 1e9:.2f} GB" if budget is not None else "unplanned"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"CUDA ran out of memory at {rows} rows per chunk (memory budget {planned}): lower "
        f"COWBOY_GPU_MEMORY or set COWBOY_BATCH_SIZE below {rows} ({first})"
    )
