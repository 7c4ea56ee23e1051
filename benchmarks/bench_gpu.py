"""What the GPU check measures on the device (benchmarks/gpu_check.sh): the cleaning at the
reproduction's width with compile off and on, and the unrolled attack at the rows planned from
the memory budget, with its peak memory against the plan's estimate. One JSON.

    python -m benchmarks.bench_gpu --device cuda --out OUT.json [--smoke]

On CUDA every chunk runs at the planned rows (up to 4,096), as production does. ``--smoke``
runs the same code on the CPU in seconds, at width 8 and 16-row chunks, without compile (half a
minute to compile on a CPU), so that it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.bench_attacks import cpu_flags
from benchmarks.bench_cleaning import random_gan, synchronize
from cowboy_core import Cowboy, Execution, Job, Settings
from cowboy_core.io import write_text
from cowboy_core.memory import activations_per_row, row_bytes

# The deployed card's settings (docs/reproduction/fashion_mnist.choice.csv): backtracking GD,
# 50 steps of at most 0.05.
CARD = Settings(optimizer="backtracking", lr=0.05, steps=50)


def cleaning(
    device: torch.device, width: int, *, compile: bool, batch: int | None, steps: int
) -> dict[str, Any]:
    """Sample-steps per second of the plain cleaning over two full chunks (after a warm-up)."""
    g, d = random_gan(1, 28, width)
    execution = Execution(device=device, compile=compile, batch_size=batch)
    defense = Cowboy(g, d, Settings(steps=steps), execution=execution)
    x = torch.rand(2 * defense.rows, 1, 28, 28, device=device) * 2 - 1
    start = time.perf_counter()
    defense.clean(x[:1])  # warm-up, and compilation
    synchronize(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    defense.clean(x)
    synchronize(device)
    seconds = time.perf_counter() - start
    rate = x.shape[0] * steps / seconds
    return {"compile": compile, "rows": defense.rows, "sample_steps_per_s": rate, "first_call_seconds": warm}


def unrolled(device: torch.device, width: int, *, batch: int | None, steps: int) -> dict[str, Any]:
    """One chunk of the exact unrolled attack gradient at the planned rows: its peak memory
    (allocated on CUDA), against the plan's estimate, and its seconds."""
    g, d = random_gan(1, 28, width)
    settings = Settings(**{**CARD.__dict__, "steps": steps})
    execution = Execution(device=device, batch_size=batch, job=Job.UNROLLED)
    defense = Cowboy(g, d, settings, execution=execution)
    first = torch.zeros(1, defense.latent_dim, device=device)
    estimate = row_bytes(
        activations_per_row([defense.generator, defense.discriminator], first), Job.UNROLLED, steps=steps
    )
    x = (torch.rand(defense.unrolled_rows, 1, 28, 28, device=device) * 2 - 1).requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    loss = F.mse_loss(defense.clean_unrolled(x), torch.zeros_like(x))
    loss.backward()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "steps": steps, "rows": defense.unrolled_rows, "estimate_bytes_per_row": estimate,
        "estimate_gb": estimate * defense.unrolled_rows / 1e9, "budget_gb": (execution.budget() or 0) / 1e9,
        "peak_allocated_gb": peak / 1e9 if peak is not None else None, "seconds": seconds,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true", help="the CPU, width 8, 16-row chunks, few steps")
    args = parser.parse_args()
    device = torch.device(args.device)
    width, batch, steps = (8, 16, 3) if args.smoke else (32, None, 25)
    report: dict[str, Any] = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "cpu_flags": cpu_flags(),
        "dcgan_width": width,
        # Compile on the CPU takes half a minute and does not pay (README): the smoke skips it.
        "cleaning": [
            cleaning(device, width, compile=c, batch=batch, steps=steps)
            for c in (False, True)[: 1 + (not args.smoke)]
        ],
    }
    rates = [row["sample_steps_per_s"] for row in report["cleaning"]]
    report["compile_speed_ratio"] = rates[1] / rates[0] if len(rates) == 2 else None
    report["unrolled"] = [
        unrolled(device, w, batch=batch, steps=s)
        for w, s in ((width, 3 if args.smoke else 50), (64, 2 if args.smoke else 50))
    ]
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
