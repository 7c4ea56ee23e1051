"""The defence card users load: G, D, the calibrated threshold and the cleaning settings,
with where each number came from."""

import numpy as np
import pandas as pd

from cowboy_core import Cowboy, Execution
from cowboy_core.workflow.runtime import load_checked, load_split, start_job

device = start_job(snakemake)
wc, params = snakemake.wildcards, snakemake.params
_, _, _, meta = load_split(snakemake.input.data, "val")
generator, discriminator = load_checked(snakemake.input.gan, meta, device, "generator", "discriminator")
detection = pd.read_csv(snakemake.input.detection).query("dataset == @wc.dataset").iloc[0]
settings = dict(params.settings)
defense = Cowboy(generator, discriminator, **settings, execution=Execution(device=device))
defense.threshold, defense.p = float(detection["threshold"]), float(detection["p"])
sweep = pd.read_csv(snakemake.input.sweep).query("dataset == @wc.dataset and method == @settings['method']")
at_setting = sweep[np.isclose(sweep["sigma"], settings["sigma"]) & (sweep["steps"] == settings["steps"])]
provenance = {
    "gan": snakemake.input.gan,
    "threshold": {
        "source": snakemake.input.detection,
        "split": "val",
        "calibration_attack": detection["calibration_attack"],
        "calibration_is_adversarial": bool(detection["calibration_is_adversarial"]),
        "calibration_accuracy_drop": float(detection["calibration_accuracy_drop"]),
    },
    "settings": {
        "source": "config: cleaning.{sigma,steps,lr,optimizer,restarts,early_stop_tol}",
        "validation_accuracy": at_setting[["attack", "accuracy", "n"]].to_dict("records"),
    },
}
defense.save(snakemake.output[0], provenance=provenance)
