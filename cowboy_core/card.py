"""The defence card: G, D, the section 3.4 threshold and p, the cleaning settings and their
provenance, in one safetensors file. Every field is checked when a card is read, because a
card is what users deploy: a NaN threshold would switch detection off without a word.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from .io import CheckpointError, PathLike, load_models, save_models
from .settings import Settings, SettingsError, check_settings, finite_number, plain_integer

CARD_KEYS = {"input_shape", "threshold", "threshold_power", "settings", "provenance"}
# Keys of cards written before the names were spelled out (2026-12): rewrite those cards.
RENAMED_KEYS = {"p": "threshold_power"}
MODEL_NAMES = {"generator", "discriminator", "encoder"}


class CardError(CheckpointError):
    """A defence card that is missing, corrupt, tampered with or out of range."""


def check_card(card: Any) -> dict[str, Any]:
    """The card's header, every field range-checked; :class:`CardError` names the bad one."""
    if not isinstance(card, dict):
        raise CardError("not a defence card; the pipeline writes results/defense/*.safetensors")
    unknown, missing = sorted(set(card) - CARD_KEYS), sorted(CARD_KEYS - set(card))
    if unknown or missing:
        which = f"unknown key {unknown[0]!r}" if unknown else f"missing key {missing[0]!r}"
        if unknown and unknown[0] in RENAMED_KEYS:
            which += f" (now {RENAMED_KEYS[unknown[0]]!r}: rerun the pipeline's defense_card rule)"
        raise CardError(f"{which} in the card; a card has exactly {', '.join(sorted(CARD_KEYS))}")
    threshold, power, shape = card["threshold"], card["threshold_power"], card["input_shape"]
    if not (finite_number(threshold) and 0 < threshold < 1):
        raise CardError(
            f"threshold = {threshold!r} is out of range; a D-score threshold is finite, in (0, 1)"
        )
    if not (power == math.inf or (finite_number(power) and power >= 1)):
        raise CardError(f"threshold_power = {power!r} is out of range; the L^p average needs p >= 1 (or inf)")
    if not (isinstance(shape, list) and shape and all(plain_integer(s) and s > 0 for s in shape)):
        raise CardError(f"input_shape = {shape!r} must be a list of positive integers")
    if not isinstance(card["provenance"], dict):
        raise CardError("provenance must be a mapping; rewrite the card with the pipeline")
    _check_classifier_record(card["provenance"].get("classifier"))
    try:
        check_settings(card["settings"])
    except SettingsError as err:
        raise CardError(str(err)) from None
    return card


def classifier_fingerprint(classifier: nn.Module) -> str:
    """SHA-256 of a classifier's weights and buffers, in registration order: the same network
    however it was loaded (names are left out, so a wrapper's prefix does not change it)."""
    digest = hashlib.sha256()
    for tensor in classifier.state_dict().values():
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_classifier_record(record: Any) -> None:
    """provenance.classifier, when a card has it: the classifier its settings were chosen in
    front of, by source and fingerprint (cards written before 2026-12 have none)."""
    if record is None:
        return
    if not (
        isinstance(record, dict)
        and set(record) == {"source", "sha256"}
        and isinstance(record["source"], str)
        and isinstance(record["sha256"], str)
        and re.fullmatch(r"[0-9a-f]{64}", record["sha256"])
    ):
        raise CardError(
            f"provenance.classifier = {record!r} must be {{source: path, sha256: 64 hex digits}}; "
            "rewrite the card with the pipeline"
        )


def save_card(
    path: PathLike,
    generator: nn.Module,
    discriminator: nn.Module,
    *,
    input_shape: tuple[int, ...],
    threshold: float,
    threshold_power: float,
    settings: Settings,
    provenance: dict[str, Any],
    encoder: nn.Module | None = None,
) -> None:
    """Write a card after checking it as :func:`read_card` will (with E when it has one)."""
    card = {
        "input_shape": list(input_shape),
        "threshold": float(threshold),
        "threshold_power": float(threshold_power),
        "settings": asdict(settings),
        "provenance": provenance,
    }
    check_card(card)
    models = {"generator": generator, "discriminator": discriminator}
    _check_models(set(models) | ({"encoder"} if encoder is not None else set()), card)
    save_models(path, models | ({"encoder": encoder} if encoder is not None else {}), {"defense": card})


def read_card(path: PathLike, *, device: Any = "cpu") -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """The models (generator, discriminator and, for an encoder start, encoder) and the
    checked header of the card at ``path``."""
    models, meta = load_models(path, device=device)
    if "defense" not in meta or not {"generator", "discriminator"} <= set(models):
        raise CardError(f"{path}: not a defence card; the pipeline writes results/defense/*.safetensors")
    try:
        card = check_card(meta["defense"])
        _check_models(set(models), card)
    except CardError as err:
        raise CardError(f"{path}: {err}") from None
    return models, card


def _check_models(names: set[str], card: dict[str, Any]) -> None:
    """A card holds G and D, and E exactly when its cleaning starts from the encoder."""
    if names - MODEL_NAMES:
        unknown = sorted(names - MODEL_NAMES)[0]
        raise CardError(
            f"unknown model {unknown!r} in the card; a card holds {', '.join(sorted(MODEL_NAMES))}"
        )
    wants_encoder = card["settings"].get("start") == "encoder"
    if wants_encoder and "encoder" not in names:
        raise CardError(
            "settings.start is 'encoder' but the card holds no encoder; write it with its encoder"
        )
    if "encoder" in names and not wants_encoder:
        raise CardError(
            "the card holds an encoder that its settings do not use; set settings.start to 'encoder'"
        )


def describe(card: dict[str, Any]) -> str:
    """A card's header for people: threshold, settings and provenance."""
    lines = [
        f"input shape: {tuple(card['input_shape'])}",
        f"threshold:   {card['threshold']:.6g} (L^p average of D, p = {card['threshold_power']:g})",
        "settings:",
        *(f"  {key}: {value}" for key, value in card["settings"].items()),
        "provenance:",
    ]
    lines += _nested(card["provenance"], indent=2)
    return "\n".join(lines)


def _nested(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        out = []
        for key, inner in value.items():
            if isinstance(inner, dict | list) and inner:
                out += [f"{pad}{key}:", *_nested(inner, indent + 2)]
            else:
                out.append(f"{pad}{key}: {inner}")
        return out
    if isinstance(value, list):
        return [line for item in value for line in _nested(item, indent)] if value else [f"{pad}[]"]
    return [f"{pad}- {value}"]
