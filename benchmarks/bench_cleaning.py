"""Cleaning throughput and convergence, measured in one run (issue: performance).

    python benchmarks/bench_cleaning.py --out benchmarks/results/cleaning.json [--quick]

Measures, on this machine: fp32 matmul peak; cowboy sample-steps/s over batch sizes, with
and without BN folding, channels_last and bf16; the peer style (batch 100, restarts in a
Python loop, unfolded models, torch.optim) and one image at a time; accuracy against steps
for plain GD and for Adam on real Fashion-MNIST FGSM images (when the pipeline's trained
models exist); and the peak memory of cleaning 10,000 images in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cowboy_core import Cowboy
from cowboy_core.io import load_models, load_tensors, write_text
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator, freeze
from cowboy_core.runtime import load_split


def peak_gflops(seconds: float) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        runs += 1
    return 2 * 2048**3 * runs / (time.perf_counter() - start) / 1e9


def random_gan(channels: int, size: int, width: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    g = DCGANGenerator(channels=channels, image_size=size, width=width)
    d = DCGANDiscriminator(channels=channels, image_size=size, width=width)
    g.train(), d.train()
    with torch.no_grad():  # realistic BN running statistics
        for _ in range(5):
            d(g(torch.randn(64, g.latent_dim)))
    return freeze(g), freeze(d)


def flops_per_sample_step(defense: Cowboy, x: torch.Tensor) -> float:
    z = torch.randn(x.shape[0], defense.latent_dim, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        loss, _ = defense.loss(z, x)
        loss.sum().backward()
    return counter.get_total_flops() / x.shape[0]


def time_cowboy(defense: Cowboy, x: torch.Tensor, steps: int) -> float:
    """Sample-steps per second of ``defense`` on ``x`` (after one warm-up run)."""
    defense.steps = 2
    defense.clean(x[: min(len(x), 8)])
    defense.steps = steps
    start = time.perf_counter()
    defense.clean(x)
    return x.shape[0] * defense.restarts * steps / (time.perf_counter() - start)


def peer_style(
    g: torch.nn.Module,
    d: torch.nn.Module,
    x: torch.Tensor,
    steps: int,
    restarts: int,
    lr: float,
    sigma: float,
    batch: int,
) -> float:
    """The public reimplementation style: fp32, unfolded models, batches of ``batch`` images,
    restarts in a sequential loop, torch.optim.SGD. Returns sample-steps per second."""
    for p in list(g.parameters()) + list(d.parameters()):
        p.requires_grad_(False)
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        for _ in range(restarts):
            z = torch.randn(xb.shape[0], 100, requires_grad=True)
            opt = torch.optim.SGD([z], lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                fake = g(z)
                loss = ((fake - xb) ** 2).flatten(1).sum(1) / (2 * sigma**2) - F.logsigmoid(d(fake))
                loss.sum().backward()
                opt.step()
    return x.shape[0] * restarts * steps / (time.perf_counter() - start)


def throughput(args: argparse.Namespace, report: dict[str, Any]) -> None:
    steps = 5 if args.quick else 20
    rows = []
    for channels, size in ((1, 28), (3, 32)):
        g, d = random_gan(channels, size, args.width)
        batches = [1, 16, 64, 256, 1024] if args.quick else [1, 4, 16, 64, 256, 512, 1024, 2048, 4096]
        if (channels, size) != (1, 28):
            batches = [64, 256, 1024]
        for batch in batches:
            x = torch.rand(max(batch, 8), channels, size, size) * 2 - 1
            x = x[:batch]
            variants = {
                "fp32": {"fold_bn": False},
                "fp32+fold_bn": {"fold_bn": True},
                "fp32+fold_bn+channels_last": {"fold_bn": True, "channels_last": True},
            }
            if batch in (64, 256):
                variants["bf16+fold_bn+channels_last"] = {
                    "fold_bn": True,
                    "channels_last": True,
                    "precision": "bf16",
                }
            for name, kwargs in variants.items():
                defense = Cowboy(g, d, steps=steps, batch_size=batch, **kwargs)
                rate = time_cowboy(defense, x, steps if batch > 1 else max(steps, 20))
                gflops = rate * flops_per_sample_step(defense, x[:4]) / 1e9
                rows.append(
                    {
                        "image": f"{channels}x{size}x{size}",
                        "batch": batch,
                        "variant": name,
                        "sample_steps_per_s": rate,
                        "gflops": gflops,
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
    bf16 = [r for r in rows if r["variant"].startswith("bf16") and r["image"] == "1x28x28"]
    fp32_same = {r["batch"]: r for r in mnist if r["variant"] == "fp32+fold_bn+channels_last"}
    report["bf16_speed_ratio"] = {
        str(r["batch"]): r["sample_steps_per_s"] / fp32_same[r["batch"]]["sample_steps_per_s"] for r in bf16
    }

    g, d = random_gan(1, 28, args.width)
    n_peer = 100 if args.quick else 200
    x = torch.rand(n_peer, 1, 28, 28) * 2 - 1
    restarts = 2 if args.quick else 4
    peer = peer_style(g, d, x, steps, restarts, lr=0.05, sigma=1.0, batch=100)
    ours = time_cowboy(
        Cowboy(
            g,
            d,
            steps=steps,
            restarts=restarts,
            batch_size=best["batch"],
            fold_bn=True,
            channels_last="channels_last" in best["variant"],
        ),
        x,
        steps,
    )
    loop = peer_style(g, d, x[:8], steps, 1, lr=0.05, sigma=1.0, batch=1)
    report["peer_sample_steps_per_s"] = peer
    report["loop_sample_steps_per_s"] = loop
    report["ours_same_workload_sample_steps_per_s"] = ours
    report["speedup_vs_peer"] = ours / peer
    report["speedup_vs_loop"] = ours / loop


def convergence(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Accuracy against steps on real Fashion-MNIST FGSM test images, GD vs Adam/momentum."""
    root = Path(args.results)
    gan_files = sorted(
        (root / "models/fashion_mnist/gan").glob("step*.safetensors"), key=lambda p: int(p.stem[4:])
    )
    attack = root / "attacks/fashion_mnist/val/fgsm.safetensors"
    if not gan_files or not attack.exists():
        report["steps_to_match_gd5000"] = None
        report["convergence_note"] = f"no trained models under {root}; run the pipeline first"
        return
    gan, _ = load_models(gan_files[-1])
    classifier = load_models(root / "models/fashion_mnist/classifier.safetensors")[0]["classifier"].eval()
    _, labels, _, _ = load_split(str(root / "data/fashion_mnist/eval.safetensors"), "val")
    attack_tensors, attack_meta = load_tensors(attack)
    adversarial = attack_tensors["adversarial"]
    report["convergence_attack"] = {
        "attack": "fgsm",
        "epsilon": attack_meta["epsilon"],
        "split": "val",
        "images": args.curve_images or (64 if args.quick else 256),
    }
    n = args.curve_images or (64 if args.quick else 256)
    x, y = adversarial[:n], labels[:n]
    gd_steps = args.gd_steps or (500 if args.quick else 5000)
    record = sorted({s for s in (10, 25, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000) if s <= gd_steps})
    curves: dict[str, list[dict[str, float]]] = {}
    settings = {
        "gd": {"optimizer": "gd", "lr": 0.05, "steps": gd_steps},
        "momentum": {"optimizer": "momentum", "lr": 0.01, "steps": min(gd_steps, 500)},
        "adam": {"optimizer": "adam", "lr": 0.01, "steps": min(gd_steps, 500)},
    }
    for name, s in settings.items():
        defense = Cowboy(
            gan["generator"],
            gan["discriminator"],
            sigma=args.sigma,
            steps=s["steps"],
            lr=s["lr"],
            optimizer=s["optimizer"],
            batch_size=1024,
        )
        start = time.perf_counter()
        result = defense.clean_detailed(x, seed=0, record_at=[r for r in record if r <= s["steps"]])
        elapsed = time.perf_counter() - start
        curves[name] = [
            {
                "steps": step,
                "accuracy": float((classifier(images).argmax(1) == y).float().mean()),
                "seconds": elapsed * step / s["steps"],
            }
            for step, images in sorted(result.snapshots.items())
        ]
        print(name, curves[name], flush=True)
    report["convergence"] = curves
    target = curves["gd"][-1]["accuracy"]
    report["gd_final_steps"] = gd_steps
    report["gd_final_accuracy"] = target
    report["gd_best_accuracy"] = max(c["accuracy"] for c in curves["gd"])
    best_name = max(("momentum", "adam"), key=lambda k: max(c["accuracy"] for c in curves[k]))
    matching = [c["steps"] for c in curves[best_name] if c["accuracy"] >= target]
    report["best_optimizer"] = best_name
    report["steps_to_match_gd5000"] = min(matching) if matching else None
    plot_convergence(curves, Path(args.out).with_suffix(".png"))


def plot_convergence(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, curve in curves.items():
        ax.plot([c["seconds"] for c in curve], [c["accuracy"] for c in curve], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("seconds of cleaning (this machine)")
    ax.set_ylabel("accuracy after cleaning")
    ax.set_title("Fashion-MNIST FGSM (validation): accuracy against time")
    ax.legend()
    from cowboy_core.plots import save_figure

    save_figure(fig, path)


def memory_for_10k(width: int) -> float:
    """Peak RSS (MB) of a fresh process cleaning 10,000 28x28 images (2 steps; memory does not
    grow with steps)."""
    code = (
        "import resource, torch\n"
        "from benchmarks.bench_cleaning import random_gan\n"
        "from cowboy_core import Cowboy\n"
        f"g, d = random_gan(1, 28, {width})\n"
        "x = torch.rand(10000, 1, 28, 28) * 2 - 1\n"
        "Cowboy(g, d, steps=2, restarts=1, batch_size=2048).clean(x)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
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
    parser.add_argument("--results", default="results", help="pipeline results with trained models")
    parser.add_argument("--width", type=int, default=32, help="DCGAN width (the quick config's)")
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--gd-steps", type=int, help="plain-GD steps of the curve (default 5000)")
    parser.add_argument("--curve-images", type=int, help="validation images for the curve")
    args = parser.parse_args()
    torch.manual_seed(0)
    report: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "dcgan_width": args.width,
    }
    report["peak_gflops"] = peak_gflops(2.0 if args.quick else 5.0)
    throughput(args, report)
    convergence(args, report)
    report["peak_rss_mb_cleaning_10k"] = memory_for_10k(args.width)
    report["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_text(args.out, json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("throughput", "convergence")}, indent=2))


if __name__ == "__main__":
    main()
