"""The convergence half of bench_cleaning (issue: performance): on real Fashion-MNIST FGSM
validation images and the pipeline's trained models, accuracy against steps for GD, momentum
and Adam, early stopping, and bf16's cleaned accuracy against fp32."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from cowboy_core import Cowboy, Execution
from cowboy_core.io import atomic_path, load_models, load_tensors
from cowboy_core.settings import Settings


class Bf16(torch.nn.Module):
    """A model run under bf16 autocast, returning fp32 (the loss stays fp32). Benchmark only:
    the library has no precision knob, because bf16 failed the accuracy check below."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.latent_dim = getattr(model, "latent_dim", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return self.model(x).float()


class Validation:
    """The pipeline's trained models and FGSM validation images: what the curves clean."""

    def __init__(self, root: Path, gan_file: Path, n: int, sigma: float, device: torch.device) -> None:
        attack = root / "attacks/fashion_mnist/val/fgsm.safetensors"
        self.gan = load_models(gan_file, device=device)[0]
        classifier = load_models(root / "models/fashion_mnist/classifier.safetensors", device=device)[0]
        self.classifier = classifier["classifier"].eval()
        labels = load_tensors(root / "data/fashion_mnist/eval.safetensors")[0]["val_labels"]
        tensors, meta = load_tensors(attack)
        self.x, self.y = tensors["adversarial"][:n].to(device), labels[:n].to(device)
        self.sigma, self.device = sigma, device
        self.description = {"attack": "fgsm", "epsilon": meta["epsilon"], "split": "val", "images": n}
        self.description["gan"] = gan_file.name

    def accuracy(self, images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((self.classifier(images).argmax(1) == self.y).float().mean())

    def defense(self, bf16: bool = False, **settings: Any) -> Cowboy:
        models = (self.gan["generator"], self.gan["discriminator"])
        models = (Bf16(models[0]), Bf16(models[1])) if bf16 else models
        return Cowboy(
            *models, Settings(sigma=self.sigma, **settings), execution=Execution(device=self.device)
        )


CURVES = {  # the optimizers compared; GD runs to gd_steps, the others to at most 500
    "gd": {"optimizer": "gd", "lr": 0.05},
    "momentum": {"optimizer": "momentum", "lr": 0.01},
    "adam": {"optimizer": "adam", "lr": 0.01},
}


def convergence(args: argparse.Namespace, report: dict[str, Any], device: torch.device) -> None:
    """On real Fashion-MNIST FGSM validation images: accuracy against steps for GD, momentum
    and Adam; early stopping; and the bf16 accuracy check."""
    root = Path(args.results)
    gans = sorted(
        (root / "models/fashion_mnist/gan").glob("step*.safetensors"), key=lambda p: int(p.stem[4:])
    )
    if not gans or not (root / "attacks/fashion_mnist/val/fgsm.safetensors").exists():
        report["steps_to_match_gd5000"] = None
        report["convergence_note"] = f"no trained models under {root}; run the pipeline first"
        return
    n = args.curve_images or (64 if args.quick else 256)
    val = Validation(root, gans[-1], n, args.sigma, device)
    report["convergence_attack"] = val.description
    gd_steps = args.gd_steps or (500 if args.quick else 5000)
    bf16_steps = min(10 if args.quick else 50, gd_steps)  # compared with GD's own snapshot there
    record = {10, 25, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, bf16_steps}
    curves, snapshots = {}, {}
    for name, settings in CURVES.items():
        steps = gd_steps if name == "gd" else min(gd_steps, 500)
        start = time.perf_counter()
        result = val.defense(**settings, steps=steps).clean_detailed(
            val.x, seed=0, record_at=[r for r in sorted(record) if r <= steps]
        )
        elapsed = time.perf_counter() - start
        curves[name] = [
            {"steps": step, "accuracy": val.accuracy(images), "seconds": elapsed * step / steps}
            for step, images in sorted(result.snapshots.items())
        ]
        print(name, curves[name], flush=True)
        snapshots[name] = result.snapshots
    report["convergence"] = curves
    steps_to_match(report, curves, gd_steps)
    early_stop(report, val, gd_steps, curves["gd"][-1])
    plot_convergence(curves, report["early_stop"], Path(args.out).with_suffix(".png"))
    bf16_check(report, val, bf16_steps, snapshots["gd"][bf16_steps])


def steps_to_match(report: dict[str, Any], curves: dict[str, list[dict[str, float]]], gd_steps: int) -> None:
    """The best optimizer is the one that reaches long GD's accuracy in the fewest steps."""
    target = curves["gd"][-1]["accuracy"]
    report["gd_final_steps"], report["gd_final_accuracy"] = gd_steps, target
    report["gd_best_accuracy"] = max(c["accuracy"] for c in curves["gd"])
    to_match = {
        name: min((c["steps"] for c in curves[name] if c["accuracy"] >= target), default=None)
        for name in ("momentum", "adam")
    }
    reached = {name: steps for name, steps in to_match.items() if steps is not None}
    best_name = min(reached, key=lambda k: reached[k]) if reached else "adam"
    report["best_optimizer"] = best_name
    report["steps_to_match_gd5000"] = reached.get(best_name)
    report["steps_to_match_gd5000_by_optimizer"] = to_match | {
        "gd": min(c["steps"] for c in curves["gd"] if c["accuracy"] >= target)
    }


def early_stop(report: dict[str, Any], val: Validation, gd_steps: int, gd_final: dict[str, float]) -> None:
    """GD over all the steps, each row frozen once its loss plateaus."""
    start = time.perf_counter()
    stopped = val.defense(optimizer="gd", lr=0.05, steps=gd_steps, early_stop_tol=1e-3).clean_detailed(val.x)
    report["early_stop"] = {
        "tol": 1e-3,
        "check_every": 50,
        "accuracy": val.accuracy(stopped.images),
        "accuracy_without": gd_final["accuracy"],
        "mean_steps_run": float(stopped.steps_run.float().mean()),
        "seconds": time.perf_counter() - start,
        "seconds_without": gd_final["seconds"],
    }
    print(json.dumps(report["early_stop"]), flush=True)


def bf16_check(report: dict[str, Any], val: Validation, steps: int, fp32: torch.Tensor) -> None:
    """bf16 is only worth using where it keeps cleaned accuracy within 0.5 points of fp32."""
    bf16 = val.defense(optimizer="gd", lr=0.05, steps=steps, bf16=True).clean(val.x)
    delta = val.accuracy(bf16) - val.accuracy(fp32)
    ratios = report.get("bf16_speed_ratio", {})
    report["bf16_check"] = {
        "steps": steps,
        "accuracy_fp32": val.accuracy(fp32),
        "accuracy_bf16": val.accuracy(bf16),
        "accuracy_delta_points": 100 * delta,
        "within_half_point": abs(delta) <= 0.005,
        "max_abs_pixel_difference": float((bf16 - fp32).abs().max()),
        "faster": bool(ratios) and max(ratios.values()) > 1,
    }
    print(json.dumps(report["bf16_check"]), flush=True)


def plot_convergence(
    curves: dict[str, list[dict[str, float]]], early_stop: dict[str, float], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, curve in curves.items():
        ax.plot([c["seconds"] for c in curve], [c["accuracy"] for c in curve], marker="o", label=name)
    ax.plot(
        [early_stop["seconds"]],
        [early_stop["accuracy"]],
        marker="*",
        markersize=12,
        linestyle="none",
        color="black",
        label=f"gd, early stop (mean {early_stop['mean_steps_run']:.0f} steps)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("seconds of cleaning (this machine)")
    ax.set_ylabel("accuracy after cleaning")
    ax.set_title("Fashion-MNIST FGSM (validation): accuracy against time")
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
