# What the rules share: the checked config, the wildcard constraints, and the path and params
# functions, bound to the config (plain, unit-tested Python in workflow_scripts/cowboy_pipeline:
# paths.py for the reproduction, gan_choice.py for the GAN it uses, study_paths.py for the
# discriminator study, suite_paths.py for the robustness suite and the defences it attacks).
# Resources live in profiles/.
import sys
from pathlib import Path

# The pipeline's own package, next to its scripts (Snakemake puts this folder on the
# scripts' path too); the library, cowboy_core, is installed.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from cowboy_core.choices import NO_ATTACK, Optimizer, attack_pattern
from cowboy_core.settings import Method
from cowboy_pipeline import gan_choice as gan_choice_functions
from cowboy_pipeline import paper_steps as paper_steps_functions
from cowboy_pipeline import paths as path_functions
from cowboy_pipeline import study_paths as study_functions
from cowboy_pipeline import suite_paths as suite_functions
from cowboy_pipeline.config import ConfigError, canonical, format_number, load_schema, validate_config

try:
    validate_config(config, load_schema(Path(workflow.basedir) / "config" / "schema.yaml"))
except ConfigError as err:
    # A readable message and exit code 2 (a usage error), not a traceback, before any job starts.
    sys.stderr.write(f"cowboy: {err}\n")
    sys.exit(2)

paths = path_functions.bind(path_functions, config)
study = path_functions.bind(study_functions, config)
suite = path_functions.bind(suite_functions, config)
gan_choice = path_functions.bind(gan_choice_functions, config)
paper_steps = path_functions.bind(paper_steps_functions, config)
DATASETS = list(config["datasets"])
CLEANING = config["cleaning"]
SEED = config["seed"]
TABLE_STEPS = CLEANING["steps"]  # the snapshot step the tables report (Parquet column "steps")


# Built from the library's enums: one source of truth for every axis of the experiment.
wildcard_constraints:
    dataset="|".join(DATASETS) or "none",
    split="val|test",
    attack=f"{NO_ATTACK}|{attack_pattern()}",
    defense="|".join(["none", *Method, *suite_functions.ADVERSARIAL_DEFENSES, suite_functions.VARIANT_DEFENSE]),
    variant=suite_functions.VARIANT_NAME,
    method="|".join(Method),
    epsilon=r"[0-9.]+(e[+-]?[0-9]+)?",
    scale=r"\d+",
    start=r"\d+",
    stop=r"\d+",
    sigma=r"[0-9.e+-]+",
    run_steps=r"\d+",
    ckpt=r"\d+|chosen",
    gan=r"seed\d+_step\d+",
    gseed=r"\d+",
    d_weight=r"[0-9.e+-]+",
    optimizer="|".join(Optimizer),
    lr=r"[0-9.e+-]+",
    restarts=r"\d+",
    n=r"\d+",
    settings="card|paper",
