"""The defence card users load: G, D, the calibrated threshold and the cleaning settings the
validation chooser picked (results/defense/{dataset}.choice.csv), with where each came from."""

import math
import sys

import pandas as pd

from cowboy_core import Cowboy, Execution
from cowboy_core.settings import Settings
from cowboy_pipeline.runtime import load_checked, load_split, start_job
from cowboy_pipeline.tables import validation_calibration

device = start_job(snakemake)
wc = snakemake.wildcards
_, _, _, meta = load_split(snakemake.input.data, "val")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
det = snakemake.params.detection
calibration = validation_calibration(
    pd.read_parquet(snakemake.input.val_scores),
    calibration_attack=det["calibration_attack"],
    p=math.inf if det["p"] == "inf" else float(det["p"]),
    min_accuracy_drop=det["min_accuracy_drop"],
)
grid = pd.read_csv(snakemake.input.choice)
winner = grid[grid["chosen"]]
if winner.empty:
    sys.stderr.write(
        f"cowboy: no setting in {snakemake.input.choice} keeps every flip rate at most "
        f"{grid['max_flip_rate'].iloc[0]}; add stable settings to card.grid or relax card.max_flip_rate\n"
    )
    sys.exit(2)
chosen = winner.iloc[0]
keys = ("method", "optimizer", "lr", "steps", "sigma", "restarts")
settings = {key: chosen[key].item() if hasattr(chosen[key], "item") else chosen[key] for key in keys}
settings |= snakemake.params.fixed
defense = Cowboy(generator, discriminator, Settings(**settings), execution=Execution(device=device))
defense.threshold, defense.threshold_power = calibration.threshold, calibration.p
provenance = {
    "gan": snakemake.input.gan,
    "threshold": {
        "source": snakemake.input.val_scores,
        "split": "val",
        "calibration_attack": det["calibration_attack"],
        "calibration_is_adversarial": bool(calibration.is_adversarial),
        "calibration_accuracy_drop": float(calibration.accuracy_drop),
    },
    "settings": {
        "source": snakemake.input.choice,
        "rule": f"highest {chosen['objective_name']} with every flip rate <= {chosen['max_flip_rate']}",
        "chosen": str(chosen["setting"]),
        "objective": float(chosen["objective"]),
        "validation_accuracy_clean": float(chosen["accuracy_clean"]),
        "validation_accuracy_attack": float(chosen["accuracy_attack"]),
        "flip_rates": {c: float(chosen[f"flip_rate_{c}"]) for c in ("alone", "rechunked", "perturbed")},
        "validation_images": int(chosen["n"]),
    },
}
defense.save(snakemake.output[0], provenance=provenance)
