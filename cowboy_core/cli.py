"""The ``cowboy`` command: score, detect and clean images with a GAN checkpoint from the pipeline.

Exit codes: 0 on success, 2 for bad arguments or input (one-line message on stderr).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .card import describe, read_card
from .choices import Optimizer
from .cleaning import Cowboy
from .defended import Policy, apply_policy
from .devices import DeviceError, pick_device
from .execution import Execution
from .io import CheckpointError, atomic_path, load_models
from .settings import DEFAULT_SETTINGS, Method, Settings

IMAGE_SUFFIXES = (".png",)


class InputError(ValueError):
    """Bad user input for the command line; reported in one line with exit code 2."""


def read_images(path: Path, channels: int) -> tuple[torch.Tensor, list[str]]:
    """Images in [-1, 1] from a .npy/.pt tensor or a folder of PNGs, with a name per image.

    uint8 tensors are taken as [0, 255] pixels; float tensors must already lie in [-1, 1].
    """
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no .png images in this folder")
        mode = "L" if channels == 1 else "RGB"
        arrays = [np.asarray(Image.open(f).convert(mode), dtype=np.uint8) for f in files]
        if len({a.shape for a in arrays}) != 1:
            raise InputError(f"{path}: the PNGs differ in size; all must have the GAN's size")
        stacked = np.stack(arrays)
        tensor = torch.from_numpy(stacked[:, None] if channels == 1 else stacked.transpose(0, 3, 1, 2))
        names = [f.name for f in files]
    else:
        if path.suffix == ".npy":
            try:
                tensor = torch.from_numpy(np.load(path, allow_pickle=False))
            except ValueError as err:
                raise InputError(f"{path}: not a plain numeric .npy array ({err})") from err
        elif path.suffix == ".pt":
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # weights_only refuses pickled code; report it plainly
                raise InputError(f"{path}: not a plain tensor file ({err})") from err
            if not isinstance(loaded, torch.Tensor):
                raise InputError(f"{path}: holds a {type(loaded).__name__}, expected one tensor")
            tensor = loaded
        else:
            raise InputError(f"{path}: unsupported input; use .npy, .pt or a folder of .png files")
        if tensor.dim() == 3 and channels == 1:
            tensor = tensor.unsqueeze(1)
        names = [f"{i:06d}" for i in range(tensor.shape[0])]
    if tensor.dtype == torch.uint8:
        return tensor.float() / 127.5 - 1.0, names
    if not tensor.is_floating_point():
        raise InputError(f"{path}: dtype {tensor.dtype}; use uint8 pixels or floats in [-1, 1]")
    return tensor.float(), names


def write_images(images: torch.Tensor, names: list[str], out: Path) -> None:
    """Cleaned images as .npy (floats in [-1, 1]) or, for a folder, one PNG per input name."""
    if out.suffix == ".npy":
        with atomic_path(out) as tmp, open(tmp, "wb") as handle:
            np.save(handle, images.cpu().numpy())
        return
    if out.suffix:
        raise InputError(f"{out}: cleaned images go to a .npy file or a folder")
    from PIL import Image

    from .data import to_uint8

    out.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(images.cpu())
    for name, image in zip(names, pixels, strict=True):
        array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        stem = Path(name).stem
        with atomic_path(out / f"{stem}.png") as tmp:
            Image.fromarray(array).save(tmp, format="PNG")


def write_table(rows: dict[str, list[object]], out: Path) -> None:
    import pandas as pd

    from .io import write_dataframe

    if out.suffix not in (".csv", ".parquet"):
        raise InputError(f"{out}: write scores to a .csv or .parquet file")
    write_dataframe(pd.DataFrame(rows), out)


def threshold_from(args: argparse.Namespace) -> float | None:
    """--threshold, else the one threshold of --detection-csv (for --dataset), else None."""
    if args.threshold is not None or args.detection_csv is None:
        return None if args.threshold is None else float(args.threshold)
    import pandas as pd

    if not args.detection_csv.exists():
        raise InputError(f"{args.detection_csv}: no such file; run the pipeline or pass --threshold")
    table = pd.read_csv(args.detection_csv)
    if args.dataset is not None:
        table = table[table["dataset"] == args.dataset]
    values = table["threshold"].unique()
    if len(values) != 1:
        raise InputError(f"{args.detection_csv}: {len(values)} thresholds; choose one with --dataset")
    return float(values[0])


def build_defense(args: argparse.Namespace) -> Cowboy:
    """The defence of --defense (a card), or of --gan with the default settings; explicit
    options override either."""
    if (args.defense is None) == (args.gan is None):
        raise InputError("pass either --defense CARD (results/defense/*.safetensors) or --gan CHECKPOINT")
    chosen = {key: getattr(args, key, None) for key in asdict(DEFAULT_SETTINGS)}
    overrides = {key: value for key, value in chosen.items() if value is not None}
    device = pick_device(args.device)  # a CUDA that cannot run here fails now, in one line
    execution = Execution(device=device, batch_size=args.batch_size, progress=not args.quiet)
    try:
        if args.defense is not None:
            defense = Cowboy.load(args.defense, execution=execution, **overrides)
        else:
            gan, _ = load_models(args.gan, device=device)
            if not {"generator", "discriminator"} <= set(gan):
                raise InputError(f"{args.gan}: not a GAN checkpoint (holds {sorted(gan)})")
            defense = Cowboy(
                gan["generator"], gan["discriminator"], Settings(**overrides), execution=execution
            )
    except CheckpointError as err:
        raise InputError(str(err)) from err
    threshold = threshold_from(args)
    if threshold is not None and not (math.isfinite(threshold) and 0 < threshold < 1):
        raise InputError(f"threshold {threshold!r} is out of range; a D-score threshold is finite, in (0, 1)")
    defense.threshold = threshold if threshold is not None else defense.threshold
    return defense


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cowboy",
        description=(
            "Detect adversarial images with a GAN's discriminator and clean them with its "
            "generator and discriminator (Santhanam & Grnarova). Images are .npy/.pt tensors "
            "(uint8 pixels, or floats in [-1, 1]) of shape (N, C, H, W), or a folder of PNGs. "
            "A defence card (results/defense/DATASET.safetensors) carries G, D, the calibrated "
            "threshold and the cleaning settings chosen by the pipeline."
        ),
        epilog=(
            "examples:\n"
            "  cowboy score  --defense results/defense/fashion_mnist.safetensors \\\n"
            "                --images x.npy --out scores.csv\n"
            "  cowboy detect --defense CARD --images pngs/ --out flags.csv\n"
            "  cowboy clean  --defense CARD --images x.npy --out cleaned/   (only the flagged)\n"
            "  cowboy clean  --defense CARD --images x.npy --out cleaned/ --policy clean-all\n"
            "  cowboy show   results/defense/fashion_mnist.safetensors"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--defense", type=Path, help="defence card written by the pipeline (.safetensors)")
    common.add_argument("--gan", type=Path, help="a bare GAN checkpoint instead of a card")
    common.add_argument("--images", required=True, type=Path, help=".npy, .pt or folder of PNGs")
    common.add_argument("--out", required=True, type=Path, help="output file or folder")
    common.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    common.add_argument(
        "--batch-size", type=int, help="rows per forward pass (default: the fastest for the device)"
    )
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    detect = argparse.ArgumentParser(add_help=False)
    detect.add_argument("--threshold", type=float, help="flag inputs with D below this (default: the card's)")
    detect.add_argument("--detection-csv", type=Path, help="take the threshold from the pipeline's table")
    detect.add_argument("--dataset", help="which dataset's threshold in --detection-csv")
    clean = argparse.ArgumentParser(add_help=False)
    default = DEFAULT_SETTINGS
    hint = "default: the card's, else"
    clean.add_argument(
        "--policy",
        choices=[p.value for p in Policy if p is not Policy.REJECT],
        help="clean the flagged images, or all (default: the flagged ones when a threshold is known)",
    )
    clean.add_argument("--sigma", type=float, help=f"sigma of eq. (4) ({hint} {default.sigma:g})")
    clean.add_argument("--steps", type=int, help=f"cleaning steps ({hint} {default.steps})")
    clean.add_argument("--lr", type=float, help=f"step size ({hint} {default.lr:g})")
    clean.add_argument("--restarts", type=int, help=f"random z0 per image ({hint} {default.restarts})")
    clean.add_argument("--method", choices=list(Method), help=f"({hint} {default.method})")
    clean.add_argument("--optimizer", choices=list(Optimizer), help=f"({hint} {default.optimizer})")
    clean.add_argument("--seed", type=int, default=0, help="seed of z0 (default 0)")
    show = commands.add_parser("show", help="print a defence card: settings, threshold, provenance")
    show.add_argument("card", type=Path, help="defence card (results/defense/*.safetensors)")
    commands.add_parser("score", parents=[common], help="write D(x) per image (CSV/Parquet)")
    commands.add_parser("detect", parents=[common, detect], help="write D(x) and flags (CSV/Parquet)")
    commands.add_parser(
        "clean", parents=[common, detect, clean], help="clean the flagged (or all) images; write .npy or PNGs"
    )
    return parser


def run(args: argparse.Namespace) -> None:
    if args.command == "show":
        _, card = read_card(args.card)
        print(describe(card))
        return
    defense = build_defense(args)
    images, names = read_images(args.images, int(defense.input_shape[0]))
    if args.command == "clean":
        known = defense.threshold is not None
        policy = args.policy or (Policy.DETECT_THEN_CLEAN if known else Policy.CLEAN_ALL)
        cleaned, _ = apply_policy(defense, images, policy, seed=args.seed)
        write_images(cleaned, names, args.out)
        return
    scores = defense.score(images).cpu()
    rows: dict[str, list[object]] = {"name": list(names), "d_score": scores.tolist()}
    if args.command == "detect":
        if defense.threshold is None:
            raise InputError("detect needs a threshold: --defense CARD, --threshold or --detection-csv")
        rows["flagged"] = (scores < defense.threshold).tolist()
    write_table(rows, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "show":
        args.defense = args.card
    if args.command != "clean":  # score and detect never clean
        for key in ("sigma", "steps", "lr", "restarts", "method", "optimizer"):
            setattr(args, key, None)
    if args.command == "score":
        args.threshold, args.detection_csv = None, None
    try:
        run(args)
    except (InputError, ValueError, CheckpointError, OSError, DeviceError) as err:
        message = " ".join(str(err).split())
        print(f"cowboy {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
