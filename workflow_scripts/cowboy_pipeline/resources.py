"""Which jobs run on a GPU: the one list of them, and the device a job gets from what it asked.

A rule whose work grows with images x steps (training, attacks, cleaning, the attack suite)
asks a profile for a GPU; every other rule runs on the CPU. The list is of scripts, so that
every rule that runs one (``use rule ... as``, the variants' and the study's copies) is marked
with it. ``tests/test_resources.py`` fails when such a rule has no GPU in a profile, and when a
script that trains, attacks or cleans is missing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cowboy_core.devices import require_device

GPU_SCRIPTS = frozenset(
    {
        "train_classifier",  # the classifier, and PGD adversarial training (train_adversarial)
        "train_gan",  # the GAN's segments, and the study's seeded GANs
        "train_encoder",
        "rec_classifier",  # cleans the training images, then fine-tunes
        "attack",
        "epsilon_sweep",  # every attack at every epsilon on the validation images
        "adversarial_choice",  # PGD on the validation images, per trained classifier
        "clean",
        "clean_card",
        "clean_long",  # the paper's 5,000 steps on a subset
        "grid_setting",  # the card's and the variants' validation grid
        "card_alone",
        "chaos",
        "deployment",
        "robustness",  # and robustness_scaled, _shard, _doubled, _doubled_shard
        "discriminator_study_clean",
    }
)


def asked_for_gpu(resources: Mapping[str, Any] | Any) -> bool:
    """Whether a job's resources (``snakemake.resources``) ask for a GPU: SLURM's ``gpu``
    (``--gpus``), a ``gres`` naming one, or a local ``gpu`` resource."""
    get = (
        resources.get
        if isinstance(resources, Mapping)
        else lambda key, default=None: getattr(resources, key, default)
    )
    gpus = get("gpu", 0) or get("gpus", 0) or 0
    return bool(int(gpus)) or "gpu" in str(get("gres", "") or "")


def job_device(resources: Mapping[str, Any] | Any) -> torch.device:
    """CUDA for a job that asked for a GPU, checked usable here (a DeviceError otherwise, never
    the CPU); the CPU for every other job, whatever COWBOY_DEVICE says."""
    return require_device("cuda") if asked_for_gpu(resources) else torch.device("cpu")
