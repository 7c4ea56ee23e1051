"""Writing a defence card from a validation choice: the chosen row (or a refusal that says
why none was chosen), the threshold calibrated on validation, and the provenance of each."""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd
from torch import nn

from cowboy_core import Cowboy
from cowboy_core.card import classifier_fingerprint
from cowboy_core.detection import Calibration
from cowboy_core.io import load_models

from .runtime import gan_step, load_checked, load_split
from .tables import validation_calibration


class NoStableSetting(RuntimeError):
    """The chooser found no setting within the constraints: no card is written."""


def chosen_row(choice: str) -> pd.Series:
    """The chosen setting of a chooser's table, or :class:`NoStableSetting` naming the bound."""
    grid = pd.read_csv(choice)
    winner = grid[grid["chosen"]]
    if winner.empty:
        raise NoStableSetting(
            f"no setting in {choice} keeps every flip rate at most {grid['max_flip_rate'].iloc[0]}; "
            "add stable settings to the grid or relax card.max_flip_rate"
        )
    return winner.iloc[0]


def gan_and_choice(inputs: Any, device: Any) -> tuple[nn.Module, nn.Module, pd.Series]:
    """G and D, checked against the data they were trained on, and the chooser's row; exit 2
    with the chooser's reason when it chose nothing."""
    _, _, _, meta = load_split(inputs.data, "val")
    generator, discriminator = load_checked(inputs.gan, meta, device, "generator", "discriminator")
    try:
        return generator, discriminator, chosen_row(inputs.choice)
    except NoStableSetting as err:
        sys.stderr.write(f"cowboy: {err}\n")
        sys.exit(2)


def calibrate(val_scores: str, detection: dict[str, Any]) -> Calibration:
    """Section 3.4's threshold on the validation split's D-scores of the calibration attack."""
    return validation_calibration(
        pd.read_parquet(val_scores),
        calibration_attack=detection["calibration_attack"],
        p=math.inf if detection["p"] == "inf" else float(detection["p"]),
        min_accuracy_drop=detection["min_accuracy_drop"],
    )


def classifier_record(path: str) -> dict[str, str]:
    """The classifier the chooser measured the settings in front of, by path and fingerprint.
    It is not an input of the card's rule: the choice the rule reads was measured with this
    file, so Snakemake already remakes the card after it changes, and cards written before
    the record existed stay valid."""
    (classifier,) = load_models(path)[0].values()
    return {"source": path, "sha256": classifier_fingerprint(classifier)}


def save_chosen_card(
    defense: Cowboy,
    path: str,
    *,
    chosen: pd.Series,
    calibration: Calibration,
    sources: dict[str, str],
    detection: dict[str, Any],
) -> None:
    """Write ``defense`` with the calibrated threshold, and where the GAN, the threshold, the
    settings and the classifier they were chosen for came from (``sources``: gan, val_scores,
    choice, classifier and any further models)."""
    defense.threshold, defense.threshold_power = calibration.threshold, calibration.p
    named = ("val_scores", "choice", "classifier")
    provenance = {
        **{name: source for name, source in sources.items() if name not in named},
        "classifier": classifier_record(sources["classifier"]),
        "gan_steps": gan_step(sources["gan"]),
        "device": str(defense.device),  # where the card was written (its choice: choice.csv's rows)
        "threshold": {
            "source": sources["val_scores"],
            "split": "val",
            "calibration_attack": detection["calibration_attack"],
            "calibration_is_adversarial": bool(calibration.is_adversarial),
            "calibration_accuracy_drop": float(calibration.accuracy_drop or 0.0),
        },
        "settings": {
            "source": sources["choice"],
            "rule": f"highest {chosen['objective_name']} with every flip rate <= {chosen['max_flip_rate']}",
            "chosen": str(chosen["setting"]),
            "objective": float(chosen["objective"]),
            "validation_accuracy_clean": float(chosen["accuracy_clean"]),
            "validation_accuracy_attack": float(chosen["accuracy_attack"]),
            "flip_rates": {c: float(chosen[f"flip_rate_{c}"]) for c in ("alone", "rechunked", "perturbed")},
            "validation_images": int(chosen["n"]),
        },
    }
    defense.save(path, provenance=provenance)
