"""The ``cowboy`` command: score, detect and clean images with a GAN checkpoint from the pipeline.

Exit codes: 0 on success, 2 for bad arguments or input (one-line message on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .cleaning import Cowboy
from .io import CheckpointError, atomic_path, load_models

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
    if args.threshold is not None:
        return float(args.threshold)
    if args.detection_csv is None:
        return None
    import pandas as pd

    path = Path(args.detection_csv)
    if not path.exists():
        raise InputError(f"{path}: no such file; run the pipeline or pass --threshold")
    table = pd.read_csv(path)
    if args.dataset is not None:
        table = table[table["dataset"] == args.dataset]
    values = table["threshold"].unique()
    if len(values) != 1:
        raise InputError(f"{path}: {len(values)} thresholds; choose one with --dataset")
    return float(values[0])


def build_defense(args: argparse.Namespace, threshold: float | None) -> tuple[Cowboy, int]:
    try:
        gan, _ = load_models(args.gan, device=args.device)
    except CheckpointError as err:
        raise InputError(str(err)) from err
    if "generator" not in gan or "discriminator" not in gan:
        raise InputError(f"{args.gan}: not a GAN checkpoint (holds {sorted(gan)})")
    defense = Cowboy(
        gan["generator"],
        gan["discriminator"],
        sigma=args.sigma,
        steps=args.steps,
        lr=args.lr,
        restarts=args.restarts,
        method=args.method,
        optimizer=args.optimizer,
        threshold=threshold,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
    )
    return defense, int(defense.input_shape[0])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cowboy",
        description=(
            "Detect adversarial images with a GAN's discriminator and clean them with its "
            "generator and discriminator (Santhanam & Grnarova). Images are .npy/.pt tensors "
            "(uint8 pixels, or floats in [-1, 1]) of shape (N, C, H, W), or a folder of PNGs."
        ),
        epilog=(
            "examples:\n"
            "  cowboy score  --gan results/models/fashion_mnist/gan/step2000.safetensors "
            "--images x.npy --out scores.csv\n"
            "  cowboy detect --gan GAN --images pngs/ --detection-csv results/detection.csv "
            "--out flags.csv\n"
            "  cowboy clean  --gan GAN --images x.npy --out cleaned/ --sigma 1 --steps 500"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gan", required=True, type=Path, help="GAN checkpoint (.safetensors)")
    common.add_argument("--images", required=True, type=Path, help=".npy, .pt or folder of PNGs")
    common.add_argument("--out", required=True, type=Path, help="output file or folder")
    common.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    common.add_argument(
        "--batch-size", type=int, help="rows per forward pass (default: the fastest for the device)"
    )
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    detect = argparse.ArgumentParser(add_help=False)
    detect.add_argument("--threshold", type=float, help="flag inputs with D below this")
    detect.add_argument("--detection-csv", type=Path, help="take the threshold from the pipeline")
    detect.add_argument("--dataset", help="which dataset's threshold in --detection-csv")
    clean = argparse.ArgumentParser(add_help=False)
    clean.add_argument("--sigma", type=float, default=1.0, help="sigma of eq. (4) (default 1)")
    clean.add_argument("--steps", type=int, default=500, help="cleaning steps (default 500)")
    clean.add_argument("--lr", type=float, default=0.05, help="step size (default 0.05)")
    clean.add_argument("--restarts", type=int, default=1, help="random z0 per image (default 1)")
    clean.add_argument("--method", choices=["cowboy", "defense_gan"], default="cowboy")
    clean.add_argument("--optimizer", choices=["gd", "momentum", "adam"], default="gd")
    clean.add_argument("--seed", type=int, default=0, help="seed of z0 (default 0)")
    commands.add_parser("score", parents=[common], help="write D(x) per image (CSV/Parquet)")
    commands.add_parser("detect", parents=[common, detect], help="write D(x) and flags (CSV/Parquet)")
    commands.add_parser(
        "clean",
        parents=[common, detect, clean],
        help="clean images (all, or only flagged ones with a threshold); write .npy or PNGs",
    )
    return parser


def run(args: argparse.Namespace) -> None:
    needs_threshold = args.command == "detect"
    if args.command == "score":
        args.threshold, args.detection_csv, args.dataset = None, None, None
    if args.command != "clean":
        args.sigma, args.steps, args.lr, args.restarts = 1.0, 0, 0.05, 1
        args.method, args.optimizer, args.seed = "cowboy", "gd", 0
    threshold = threshold_from(args)
    if needs_threshold and threshold is None:
        raise InputError("detect needs --threshold or --detection-csv")
    defense, channels = build_defense(args, threshold)
    images, names = read_images(args.images, channels)
    scores = defense.score(images).cpu()
    if args.command in ("score", "detect"):
        rows: dict[str, list[object]] = {"name": list(names), "d_score": scores.tolist()}
        if threshold is not None:
            rows["flagged"] = (scores < threshold).tolist()
        write_table(rows, args.out)
        return
    to_clean = scores < threshold if threshold is not None else torch.ones_like(scores, dtype=torch.bool)
    output = images.clone()
    if bool(to_clean.any()):
        output[to_clean] = defense.clean(images[to_clean], seed=args.seed).cpu()
    write_images(output, names, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args)
    except (InputError, ValueError, CheckpointError, OSError) as err:
        message = " ".join(str(err).split())
        print(f"cowboy {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
