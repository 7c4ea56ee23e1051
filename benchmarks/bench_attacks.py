"""Cost of attacking the defence: one attack step through BPDA, the exact unrolled gradient,
the truncated gradient (last 5 steps) and the smoothed surrogate, measured in one run.

    python benchmarks/bench_attacks.py --out benchmarks/results/attacks.json [--device cuda]

One attack step = the deployed cleaning of a batch (forward) and the gradient of the
classifier's loss with respect to the inputs through the chosen wrapper. Rates are
sample-steps per second: images x cleaning steps, so that they compare with the cleaning
benchmark. Medians of 3; the CPU's flags are recorded, since only ratios from one run compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cowboy_core import Cowboy, Execution
from cowboy_core.adaptive import Gradient, differentiable_clean
from cowboy_core.diagnostics import surrogate_of
from cowboy_core.io import write_text
from cowboy_core.models import Classifier, DCGANDiscriminator, DCGANGenerator, freeze
from cowboy_core.settings import Settings


def cpu_flags() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    lines = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    flags = set(lines.get("Flags", "").split())
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma"]
    return f"{lines.get('Model name', '?')}; " + " ".join(f for f in wanted if f in flags)


def step_seconds(
    defense: Cowboy,
    classifier: torch.nn.Module,
    x: torch.Tensor,
    gradient: Gradient,
    surrogate: Cowboy | None,
) -> float:
    point = x.clone().requires_grad_(True)
    start = time.perf_counter()
    cleaned = differentiable_clean(defense, point, seed=0, gradient=gradient, surrogate=surrogate)
    loss = F.cross_entropy(classifier(cleaned), torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
    torch.autograd.grad(loss, point)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=25, help="cleaning steps (the pipeline's 25)")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny nets and sizes, to check it runs")
    args = parser.parse_args()
    width = 8 if args.smoke else 32
    if args.smoke:
        args.steps, args.batches = 2, [4]
    device = torch.device(args.device)
    torch.manual_seed(0)
    g = freeze(DCGANGenerator(channels=1, image_size=28, width=width))
    d = freeze(DCGANDiscriminator(channels=1, image_size=28, width=width))
    classifier = freeze(Classifier(channels=1, image_size=28)).to(device)
    defense = Cowboy(g, d, Settings(steps=args.steps), execution=Execution(device=device))
    surrogate = surrogate_of(defense, 0.25)
    rows = []
    for batch in args.batches:
        x = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
        for gradient in Gradient:
            step_seconds(defense, classifier, x[:2], gradient, surrogate)  # warm-up
            seconds = statistics.median(
                step_seconds(defense, classifier, x, gradient, surrogate) for _ in range(3)
            )
            rows.append(
                {
                    "batch": batch,
                    "gradient": gradient.value,
                    "seconds_per_attack_step": seconds,
                    "sample_steps_per_s": batch * args.steps / seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        bpda = next(r for r in rows if r["batch"] == row["batch"] and r["gradient"] == "bpda")
        row["cost_relative_to_bpda"] = row["seconds_per_attack_step"] / bpda["seconds_per_attack_step"]
    report = {
        "machine": {
            "cpu": cpu_flags(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device),
        },
        "cleaning_steps": args.steps,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
