"""Safe, atomic persistence: safetensors for weights, weights-only torch.load for resume state.

Nothing here ever unpickles arbitrary objects: a checkpoint is data, not code.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe or does not match what the caller expects."""


@contextlib.contextmanager
def atomic_path(path: PathLike, *, clear_stale: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    A killed job or a full disk therefore never leaves a half-written output behind. With
    ``clear_stale``, temporary files left by a killed earlier writer of ``path`` are removed
    first; pass False where several processes may write the same file at once.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A job killed by SIGKILL cannot clean up; Snakemake runs one writer per output, so any
    # temporary file of this output is a dead job's.
    for stale in target.parent.glob(f".{target.name}.*.tmp") if clear_stale else ():
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_tensors(
    path: PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write tensors (and JSON-serialisable metadata) as safetensors, atomically."""
    meta = {key: json.dumps(value) for key, value in (metadata or {}).items()}
    payload = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(payload, str(tmp), metadata=meta)


def load_tensors(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors file written by :func:`save_tensors`; errors name the file."""
    file = _existing(path)
    with _readable(file):
        tensors = load_file(str(file))
    return tensors, read_metadata(file)


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata of a file written by :func:`save_tensors`, from its header alone: no
    tensor is read (say, which training step a saved GAN reached)."""
    file = _existing(path)
    from safetensors import safe_open

    with _readable(file), safe_open(str(file), framework="pt") as handle:
        raw_meta = handle.metadata() or {}
        return {key: json.loads(value) for key, value in raw_meta.items()}


def _existing(path: PathLike) -> Path:
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"{file}: no such file. Run the step that produces it first.")
    return file


@contextlib.contextmanager
def _readable(file: Path) -> Iterator[None]:
    """Turn a failed read into a :class:`CheckpointError` that names the file and the fix."""
    try:
        yield
    except (SafetensorError, OSError, json.JSONDecodeError, RuntimeError) as err:
        raise CheckpointError(
            f"{file}: not a readable safetensors checkpoint ({err}). "
            "It may be truncated or corrupt; delete it and rerun the step that writes it."
        ) from err


def save_state(path: PathLike, state: Mapping[str, Any]) -> None:
    """Save resume state (tensors, numbers, strings, nested dicts) atomically with torch.save."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_state(path: PathLike) -> dict[str, Any]:
    """Load resume state with ``weights_only=True``: pickled code is refused, never run."""
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"{file}: no such file.")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{file}: refused to load, it holds pickled objects other than plain tensors "
            f"and containers ({err}). Only load state written by cowboy."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{file}: truncated or corrupt ({err}). Delete it and rerun the step that writes it."
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a dict of resume state, found {type(state)}.")
    return state


def write_dataframe(frame: Any, path: PathLike) -> None:
    """Write a pandas DataFrame as Parquet or CSV (chosen by suffix), atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        if target.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif target.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            raise ValueError(f"{target}: unsupported table suffix; use .parquet or .csv")


def write_text(path: PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_models(
    path: PathLike, models: Mapping[str, torch.nn.Module], metadata: Mapping[str, Any] | None = None
) -> None:
    """Save named cowboy models (weights plus their ``arch``) in one safetensors file."""
    from .models import model_arch

    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        for key, value in model.state_dict().items():
            tensors[f"{name}.{key}"] = value
    meta = dict(metadata or {})
    meta["models"] = {name: model_arch(model) for name, model in models.items()}
    save_tensors(path, tensors, meta)


def load_models(
    path: PathLike,
    *,
    device: torch.device | str = "cpu",
    expect: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, torch.nn.Module], dict[str, Any]]:
    """Rebuild the models saved by :func:`save_models`.

    ``expect`` maps a model name to arch keys it must have (say ``{"generator":
    {"channels": 1}}``); a checkpoint trained for another shape is refused.
    """
    from .models import build_model

    tensors, metadata = load_tensors(path)
    archs = metadata.get("models")
    if not isinstance(archs, dict):
        raise CheckpointError(f"{path}: no model architecture in its metadata; not a cowboy checkpoint")
    for name, wanted in (expect or {}).items():
        if name not in archs:
            raise CheckpointError(f"{path}: holds {sorted(archs)}, not the expected model {name!r}")
        clash = {k: (archs[name].get(k), v) for k, v in wanted.items() if archs[name].get(k) != v}
        if clash:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs expected {b!r}" for k, (a, b) in clash.items())
            raise CheckpointError(f"{path}: {name} was trained with another configuration ({detail})")
    models: dict[str, torch.nn.Module] = {}
    for name, arch in archs.items():
        try:
            model = build_model(arch)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights of {name} do not fit its architecture: {err}") from err
        models[name] = model.to(device)
    return models, metadata
