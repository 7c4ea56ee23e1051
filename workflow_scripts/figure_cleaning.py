"""Figure 5: original, adversarial and cowboy-cleaned images for each dataset and attack."""

from cowboy_core.io import load_tensors
from cowboy_pipeline.plots import grids_figure, save_figure
from cowboy_pipeline.runtime import start_job

start_job(snakemake)
panels = []
shown = set()
for path in snakemake.input.grids:
    tensors, meta = load_tensors(path)
    name = f"{meta['dataset']} / {meta['attack']}"
    if meta["dataset"] not in shown:
        shown.add(meta["dataset"])
        panels.append((f"{meta['dataset']}: original test images", tensors["original"]))
    panels.append((f"{name}: adversarial", tensors["adversarial"]))
    panels.append((f"{name}: cleaned by cowboy", tensors["cleaned"]))
save_figure(grids_figure(panels, "Figure 5: original, adversarial and cleaned"), snakemake.output[0])
