"""Cleaning throughput and convergence, measured in one run (issue: performance).

    python -m benchmarks.bench_cleaning --out benchmarks/results/cleaning.json [--quick | --smoke]

Measures, on this machine (``--device cuda`` on a GPU node): the fp32 matmul peak; cowboy
sample-steps/s over batch sizes, adding BN folding, channels_last, the sub-pixel rewrite and
bf16 one at a time; torch.compile (CUDA graphs on a GPU); the peer style (batch 100, restarts
in a Python loop, unfolded models, torch.optim) and one image at a time; accuracy against
steps for GD, momentum and Adam, early stopping, and bf16's accuracy against fp32, on real
Fashion-MNIST FGSM validation images (when the pipeline's trained models exist); and the
peak memory of cleaning 10,000 images in a fresh process. Timings are medians of 3 runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_attacks import cpu_flags
from benchmarks.cleaning_convergence import Bf16, convergence
from cowboy_core import Cowboy, Execution
from cowboy_core.io import write_text
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator, freeze
from cowboy_core.settings import Settings


def peak_gflops(seconds: float, device: torch.device) -> float:
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    torch.mm(a, b)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        runs += 1
    synchronize(device)
    return 2 * 2048**3 * runs / (time.perf_counter() - start) / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_gan(channels: int, size: int, width: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    g = DCGANGenerator(channels=channels, image_size=size, width=width)
    d = DCGANDiscriminator(channels=channels, image_size=size, width=width)
    g.train(), d.train()
    with torch.no_grad():  # realistic BN running statistics
        for _ in range(5):
            d(g(torch.randn(64, g.latent_dim)))
    return freeze(g), freeze(d)


def useful_flops_per_sample_step(g: torch.nn.Module, d: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one step of the original models (a rewrite's extra zero taps do not count)."""
    execution = Execution(fold_bn=False, subpixel=False, channels_last=False, device=x.device)
    plain = Cowboy(g, d, execution=execution)
    z = torch.randn(x.shape[0], plain.latent_dim, device=x.device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        loss, _ = plain.objective(z, x)
        loss.sum().backward()
    return counter.get_total_flops() / x.shape[0]


def median_rate(run: Callable[[], None], sample_steps: int, device: torch.device, repeats: int) -> float:
    """Median sample-steps per second over ``repeats`` runs; this VM's timings vary by ~20%."""
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        rates.append(sample_steps / (time.perf_counter() - start))
    return statistics.median(rates)


def time_cowboy(defense: Cowboy, x: torch.Tensor, steps: int, repeats: int = 3) -> float:
    """Sample-steps per second of ``defense`` on ``x`` (after a warm-up run)."""
    timed = defense.with_settings(steps=steps)
    timed.clean(x[:1])  # warm-up (and compilation): the same padded chunk shape as every call
    rows = x.shape[0] * timed.settings.restarts * steps
    return median_rate(lambda: timed.clean(x), rows, x.device, repeats)


def steps_for(batch: int) -> int:
    """Enough steps that one timed run lasts about a second or more."""
    return max(5, min(200, 16384 // batch))


def peer_style(
    g: torch.nn.Module,
    d: torch.nn.Module,
    x: torch.Tensor,
    steps: int,
    restarts: int,
    lr: float,
    sigma: float,
    batch: int,
) -> None:
    """The public reimplementation style: fp32, unfolded models, batches of ``batch`` images,
    restarts in a sequential loop, torch.optim.SGD."""
    for p in list(g.parameters()) + list(d.parameters()):
        p.requires_grad_(False)
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        for _ in range(restarts):
            z = torch.randn(xb.shape[0], g.latent_dim, device=x.device, requires_grad=True)
            opt = torch.optim.SGD([z], lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                fake = g(z)
                loss = ((fake - xb) ** 2).flatten(1).sum(1) / (2 * sigma**2) - F.logsigmoid(d(fake))
                loss.sum().backward()
                opt.step()


def peer_rate(
    g: torch.nn.Module, d: torch.nn.Module, x: torch.Tensor, steps: int, restarts: int, batch: int
) -> float:
    def run() -> None:
        peer_style(g, d, x, steps, restarts, lr=0.05, sigma=1.0, batch=batch)

    peer_style(g, d, x[:batch], 2, 1, lr=0.05, sigma=1.0, batch=batch)  # warm-up
    return median_rate(run, x.shape[0] * restarts * steps, x.device, repeats=3)


# Each variant adds one optimisation to the one before; "fast" is the library's default.
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"fold_bn": False, "channels_last": False, "subpixel": False},
    "+fold_bn": {"fold_bn": True, "channels_last": False, "subpixel": False},
    "+channels_last": {"fold_bn": True, "channels_last": True, "subpixel": False},
    "+subpixel (default)": {},
}


def throughput(args: argparse.Namespace, report: dict[str, Any], device: torch.device) -> None:
    rows = []
    for channels, size in ((1, 28), (3, 32)):
        g, d = random_gan(channels, size, args.width)
        if args.smoke:
            batches = [4, 64]
        elif (channels, size) == (1, 28):
            full = [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096]
            batches = [1, 16, 64, 256, 1024] if args.quick else full
        else:
            batches = [64, 256] if args.quick else [64, 256, 1024]
        x_all = torch.rand(max(batches), channels, size, size, device=device) * 2 - 1
        flops = useful_flops_per_sample_step(g, d, x_all[:4])
        for batch in batches:
            x = x_all[:batch]
            variants = dict(VARIANTS) if batch in (64, 256, 1024) else {"+subpixel (default)": {}}
            if batch in (64, 256):
                variants["bf16 (default + autocast)"] = {"bf16": True}
            for name, kwargs in variants.items():
                models = (Bf16(g), Bf16(d)) if kwargs.pop("bf16", False) else (g, d)
                defense = Cowboy(*models, execution=Execution(batch_size=batch, device=device, **kwargs))
                steps = 2 if args.smoke else steps_for(batch) if "bf16" not in name else 5
                rate = time_cowboy(defense, x, steps, repeats=1 if "bf16" in name else 3)
                rows.append(
                    {
                        "image": f"{channels}x{size}x{size}",
                        "batch": batch,
                        "variant": name,
                        "sample_steps_per_s": rate,
                        "gflops": rate * flops / 1e9,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    report["throughput"] = rows
    mnist = [r for r in rows if r["image"] == "1x28x28" and not r["variant"].startswith("bf16")]
    best = max(mnist, key=lambda r: r["sample_steps_per_s"])
    report["best_sample_steps_per_s"] = best["sample_steps_per_s"]
    report["best_config"] = {"batch": best["batch"], "variant": best["variant"]}
    report["best_gflops"] = best["gflops"]
    report["peak_fraction"] = best["gflops"] / report["peak_gflops"]
    default = {r["batch"]: r for r in mnist if r["variant"] == "+subpixel (default)"}
    report["bf16_speed_ratio"] = {
        str(r["batch"]): r["sample_steps_per_s"] / default[r["batch"]]["sample_steps_per_s"]
        for r in rows
        if r["variant"].startswith("bf16") and r["image"] == "1x28x28"
    }


def peer_comparison(args: argparse.Namespace, report: dict[str, Any], device: torch.device) -> None:
    """The same workload the peer style runs (restarts in a Python loop, batch 100), one
    image at a time, and under torch.compile."""
    g, d = (model.to(device) for model in random_gan(1, 28, args.width))
    x = torch.rand(8 if args.smoke else 100 if args.quick else 200, 1, 28, 28, device=device) * 2 - 1
    restarts, steps = (1, 2) if args.smoke else (2, 10) if args.quick else (4, 20)
    peer = peer_rate(g, d, x, steps, restarts, batch=min(100, x.shape[0]))
    ours = time_cowboy(
        Cowboy(g, d, Settings(restarts=restarts), execution=Execution(device=device)), x, steps
    )
    loop = peer_rate(g, d, x[:2], 2, 1, batch=1) if args.smoke else peer_rate(g, d, x[:8], 50, 1, batch=1)
    report["peer_sample_steps_per_s"] = peer
    report["loop_sample_steps_per_s"] = loop
    report["ours_same_workload_sample_steps_per_s"] = ours
    report["speedup_vs_peer"] = ours / peer
    report["speedup_vs_loop"] = ours / loop
    if not args.smoke:  # compiling takes half a minute on a CPU; benchmarks/bench_gpu.py times it on a GPU
        torch_compile(report, g, d, x, device, steps=20)


def torch_compile(
    report: dict[str, Any],
    g: torch.nn.Module,
    d: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    *,
    steps: int,
) -> None:
    """torch.compile (CUDA graphs on a GPU): compile seconds, and the steady-state ratio."""
    x = x[:100]
    eager = Cowboy(g, d, Settings(steps=steps), execution=Execution(device=device))
    compiled = Cowboy(g, d, Settings(steps=2), execution=Execution(device=device, compile=True))
    start = time.perf_counter()
    compiled.clean(x)
    synchronize(device)
    compile_seconds = time.perf_counter() - start
    ratio = time_cowboy(compiled, x, steps) / time_cowboy(eager, x, steps)
    report["compile"] = {"device": device.type, "seconds_to_compile": compile_seconds, "speed_ratio": ratio}
    print(json.dumps(report["compile"]), flush=True)


def memory_for(images: int, width: int, device: torch.device) -> float:
    """Peak memory (MB) of a fresh process cleaning ``images`` 28x28 images with the default
    settings (2 steps; memory does not grow with steps): RSS on CPU, allocated on CUDA."""
    peak = (
        f"torch.cuda.max_memory_allocated('{device}') / 2**20"
        if device.type == "cuda"
        else "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"
    )
    code = (
        "import resource, torch\n"
        "from benchmarks.bench_cleaning import random_gan\n"
        "from cowboy_core import Cowboy, Execution, Settings\n"
        f"g, d = random_gan(1, 28, {width})\n"
        f"x = torch.rand({images}, 1, 28, 28, device='{device}') * 2 - 1\n"
        f"Cowboy(g, d, Settings(steps=2), execution=Execution(device='{device}')).clean(x)\n"
        f"print({peak})\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny nets and sizes, to check it runs")
    parser.add_argument("--results", default="results", help="pipeline results with trained models")
    parser.add_argument("--width", type=int, default=32, help="DCGAN width (the quick config's)")
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--gd-steps", type=int, help="plain-GD steps of the curve (default 5000)")
    parser.add_argument("--curve-images", type=int, help="validation images for the curve")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.smoke:
        args.quick, args.width, args.gd_steps, args.curve_images = True, 8, 20, 8
    device = torch.device(args.device)
    torch.manual_seed(0)
    report: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_flags": cpu_flags(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device),
        },
        "dcgan_width": args.width,
    }
    peak_seconds = 0.1 if args.smoke else 2.0 if args.quick else 5.0
    report["peak_gflops"] = peak_gflops(peak_seconds, device)
    throughput(args, report, device)
    peer_comparison(args, report, device)
    # Measured again after the sweep: a busy moment at the start must not inflate peak_fraction.
    report["peak_gflops"] = max(report["peak_gflops"], peak_gflops(peak_seconds, device))
    report["peak_fraction"] = report["best_gflops"] / report["peak_gflops"]
    convergence(args, report, device)
    if report.get("steps_to_match_gd5000"):
        # Wall time to 5,000-step GD's accuracy: the peer runs 5,000 GD steps at its rate,
        # cowboy runs steps_to_match_gd5000 steps of its best optimizer at its own rate.
        peer_seconds = report["gd_final_steps"] / report["peer_sample_steps_per_s"]
        ours_seconds = report["steps_to_match_gd5000"] / report["ours_same_workload_sample_steps_per_s"]
        report["time_to_accuracy_speedup_vs_peer"] = peer_seconds / ours_seconds
    images = 64 if args.smoke else 10_000
    report[f"peak_memory_mb_cleaning_{images}"] = memory_for(images, args.width, device)
    report["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_text(args.out, json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("throughput", "convergence")}, indent=2))


if __name__ == "__main__":
    main()
