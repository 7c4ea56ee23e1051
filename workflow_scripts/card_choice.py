"""Choose the defence card's cleaning settings on validation: the best objective among the
grid's settings whose flip rates all stay at most card.max_flip_rate. Writes the whole grid,
with its constraint values, its feasibility and the choice."""

from cowboy_core.io import write_dataframe
from cowboy_pipeline.choice import FLIP_COLUMNS, choose, grid_table
from cowboy_pipeline.runtime import LOG, finish_job, read_tables, start_job

start_job(snakemake)
card = snakemake.params.card
setting_keys = ["setting", "method", "optimizer", "lr", "steps", "sigma", "restarts"]
grid = grid_table(read_tables(snakemake.input), setting_keys)
limits = {column: card["max_flip_rate"] for column in FLIP_COLUMNS}
grid = choose(grid, objective="objective", constraints=limits, tie_break=["steps", "setting"])
grid = grid.assign(objective_name=card["objective"], max_flip_rate=card["max_flip_rate"])
for row in grid.itertuples():
    LOG.info(
        "%s: objective %.4f, flips alone/rechunked/perturbed %.4f/%.4f/%.4f, feasible %s%s",
        row.setting,
        row.objective,
        row.flip_rate_alone,
        row.flip_rate_rechunked,
        row.flip_rate_perturbed,
        row.feasible,
        " (chosen)" if row.chosen else "",
    )
write_dataframe(grid, snakemake.output[0])
finish_job()
