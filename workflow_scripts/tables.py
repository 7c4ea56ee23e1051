"""Tables 1 and 2, detection metrics, accuracies with 95% CIs (the paper's cleaning protocol and
the deployed card's settings), and the validation sigma sweep."""

import math

import pandas as pd

from cowboy_core.io import write_dataframe
from cowboy_pipeline.runtime import finish_job, start_job
from cowboy_pipeline.tables import accuracy_long, card_accuracy, detection_table, sweep_table, table1, table2

start_job(snakemake)
inp, out, params = snakemake.input, snakemake.output, snakemake.params
clean = pd.concat([pd.read_parquet(path) for path in inp.clean], ignore_index=True)
card_clean = pd.concat([pd.read_parquet(path) for path in inp.card_clean], ignore_index=True)
# The paper's protocol, then the card's settings beside it (quantities "{method}_card").
accuracy = pd.concat([accuracy_long(clean, params.sigma, params.steps), card_accuracy(card_clean)])
write_dataframe(accuracy, out.accuracy)
write_dataframe(table1(accuracy, params.datasets), out.table1)
write_dataframe(table2(accuracy, params.datasets), out.table2)

det = params.detection
p = math.inf if det["p"] == "inf" else float(det["p"])
detection = detection_table(
    pd.concat([pd.read_parquet(path) for path in inp.val_scores], ignore_index=True),
    pd.concat([pd.read_parquet(path) for path in inp.test_scores], ignore_index=True),
    calibration_attack=det["calibration_attack"],
    p=p,
    min_accuracy_drop=det["min_accuracy_drop"],
    fpr=det["fpr"],
)
write_dataframe(detection, out.detection)

sweep_frames = [pd.read_parquet(path) for path in inp.sweep]
sweep = (
    sweep_table(pd.concat(sweep_frames, ignore_index=True)) if sweep_frames else sweep_table(clean.iloc[0:0])
)
write_dataframe(sweep, out.sweep)
finish_job()
